"""Rate-limiter benchmark: decisions per second and latency per call, beside ceilings measured
in the same run: a bare redis-py EVALSHA loop of a trivial script, and a bare asyncpg loop of
the database limiter's own statement (bench/_db_decisions.py).

    .venv/bin/python bench/ratelimit.py [--quick]
    .venv/bin/python bench/ratelimit.py --profile 2000   # the per-batch decision alone

`--cluster` measures instead the limiter on a Redis Cluster beside a single Redis server, each
with and without replicas confirming grants (bench/_ratelimit_cluster.py), and writes
bench/results-ratelimit-cluster.json.

`--profile N` times only the dispatcher's per-batch decision (per sender, and per org as the
baseline), N batches a sample, the two alternately, three rounds at 1 and at 8 callers, with
the CPU a batch costs this process and Redis. The batches' rows are made before each sample, so
only the decision is timed. It prints them and writes no results file.

Uses the PostgreSQL server of WA_BENCH_DATABASE_URL (default
postgresql://postgres@127.0.0.1:5432/postgres) in a database of its own, created and
dropped here, and the Redis at WA_BENCH_REDIS_URL (default: WA_TEST_REDIS_URL, else
redis://127.0.0.1:6379/0), where it deletes only its own keys. Prints a table and writes
bench/results-ratelimit.json."""

from __future__ import annotations

import argparse
import asyncio
import json
import os
import platform
import statistics
import time
import uuid
from collections.abc import Awaitable, Callable
from dataclasses import asdict, dataclass
from pathlib import Path
from typing import Any

from redis.asyncio import Redis

from _db_decisions import BareDecisions
from _sender_batches import (
    MESSAGES,
    ORGS,
    SENDERS_PER_ORG,
    Batches,
    count_round_trips,
    per_org,
    per_sender,
    profile,
    round_trips_per_batch,
)
from _support import create_database, drop_database
from wa_outbound.config import Settings
from wa_outbound.db import migrate
from wa_outbound.db.engine import create_engine
from wa_outbound.metrics import Metrics
from wa_outbound.orgs import organizations
from wa_outbound.ratelimit import (
    RateLimiter,
    RedisLimiter,
    create_rate_limiter,
    redis_client,
)
from wa_outbound.ratelimit.scripts import keys

REDIS_URL = os.environ.get(
    "WA_BENCH_REDIS_URL", os.environ.get("WA_TEST_REDIS_URL", "redis://127.0.0.1:6379/0")
)
RESULTS = Path(__file__).with_name("results-ratelimit.json")
CALLERS = 32
UNLIMITED_QUOTA = 10**15
UNLIMITED_MPS = 1e12  # the cap is not what these runs measure: every decision grants

Call = Callable[[int], Awaitable[object]]


@dataclass
class Row:
    name: str
    callers: int
    calls: int
    per_s: float
    p50_ms: float
    p99_ms: float
    messages_per_s: float | None = None


@dataclass
class Sample:
    calls: int
    elapsed_s: float
    latencies_s: list[float]


async def sample(call: Call, *, callers: int, calls: int) -> Sample:
    """`calls` calls in total, split over `callers` concurrent tasks (caller i passes i)."""
    latencies: list[float] = []
    per_caller = max(1, calls // callers)

    async def caller(index: int) -> None:
        for _ in range(per_caller):
            started = time.perf_counter()
            await call(index)
            latencies.append(time.perf_counter() - started)

    started = time.perf_counter()
    await asyncio.gather(*(caller(i) for i in range(callers)))
    return Sample(per_caller * callers, time.perf_counter() - started, latencies)


async def compare(
    cases: dict[str, Call], *, callers: int, calls: int, rounds: int, batch: int = 1
) -> list[Row]:
    """Run the cases in turns, `rounds` times, so that a noisy neighbour on the machine hits
    them alike; rate = median over rounds, latencies pooled over rounds."""
    for call in cases.values():  # warm-up: pools, scripts, allotments
        await sample(call, callers=callers, calls=max(callers, calls // 10))
    samples: dict[str, list[Sample]] = {name: [] for name in cases}
    for _ in range(rounds):
        for name, call in cases.items():
            samples[name].append(await sample(call, callers=callers, calls=calls))
    rows = []
    for name, taken in samples.items():
        latencies = [x for s in taken for x in s.latencies_s]
        quantiles = statistics.quantiles(latencies, n=100)
        per_s = statistics.median(s.calls / s.elapsed_s for s in taken)
        rows.append(
            Row(
                name=name,
                callers=callers,
                calls=sum(s.calls for s in taken),
                per_s=per_s,
                p50_ms=quantiles[49] * 1000,
                p99_ms=quantiles[98] * 1000,
                messages_per_s=per_s * batch if batch > 1 else None,
            )
        )
    return rows


async def run(quick: bool, profile_batches: int = 0) -> dict[str, object]:
    calls = 2_000 if quick else 10_000
    db_calls = 500 if quick else 2_000
    rounds = 3 if quick else 7
    dsn, url = await create_database()
    # A short pair interval: each batch's new recipients leave keys that expire within 1.6 s.
    settings = Settings(
        _env_file=None,
        database_url=url,
        redis_url=REDIS_URL,
        provider="sandbox",
        pair_interval_seconds=0.5,
    )
    engine = create_engine(settings)
    org_ids = [f"bench_{uuid.uuid4().hex[:12]}" for _ in range(CALLERS)]
    bare = redis_client(REDIS_URL)
    redis_limiter: RateLimiter = create_rate_limiter(settings, engine, Metrics())
    db_limiter: RateLimiter = create_rate_limiter(
        Settings(_env_file=None, database_url=url, provider="sandbox"), engine, Metrics()
    )
    rows: list[Row] = []
    round_trips: dict[str, float] = {}
    bare_db = BareDecisions(dsn)
    try:
        await migrate.upgrade(engine)
        async with engine.begin() as conn:
            for org_id in org_ids:
                await organizations.create_org(
                    conn,
                    name="bench",
                    org_id=org_id,
                    daily_quota=UNLIMITED_QUOTA,
                    messages_per_second=UNLIMITED_MPS,
                    actor="bench",
                )
        if profile_batches:
            assert isinstance(redis_limiter, RedisLimiter)
            return await profile_run(redis_limiter, Batches(org_ids[:ORGS]), profile_batches)
        sha = await bare.script_load("return 1")

        async def bare_call(_: int) -> object:
            return await bare.evalsha(sha, 0)

        async def redis_one(i: int) -> object:
            return await redis_limiter.acquire(org_ids[i], 1)

        async def redis_batch(i: int) -> object:
            return await redis_limiter.acquire(org_ids[i], 100)

        async def db_one(i: int) -> object:
            return await db_limiter.acquire(org_ids[i], 1)

        async def db_batch(i: int) -> object:
            return await db_limiter.acquire(org_ids[i], 100)

        # The ratio to the bare loop is a target: at one caller, five times as many turns of a
        # fifth of the calls, so that the machine's noise hits both loops alike.
        for callers, turns in ((1, 5), (CALLERS, 1)):
            rows += await compare(
                {"bare EVALSHA": bare_call, "redis n=1": redis_one},
                callers=callers,
                calls=calls // turns,
                rounds=rounds * turns,
            )
        rows += await compare(
            {"redis n=100": redis_batch}, callers=1, calls=calls, rounds=rounds, batch=100
        )
        # Against its bare loop at one caller, in turns as for Redis; at 32 callers, alone.
        await bare_db.open(1)
        await db_one(0)  # the org's counter row: the bare statement updates it
        assert await bare_db.call(0, org_ids[0], 1), "the bare decision found no counter row"
        db_cases = {"bare asyncpg decision": bare_db.caller(org_ids), "database n=1": db_one}
        rows += await compare(db_cases, callers=1, calls=db_calls // 5, rounds=rounds * 5)
        rows += await compare(
            {"database n=1": db_one}, callers=CALLERS, calls=db_calls, rounds=rounds
        )
        rows += await compare(
            {"database n=100": db_batch}, callers=1, calls=db_calls, rounds=rounds, batch=100
        )
        # The dispatcher's per-batch decision: per sender (now) beside per org (before).
        assert isinstance(redis_limiter, RedisLimiter)
        batches = Batches(org_ids[:ORGS])
        trips = count_round_trips(redis_limiter)
        cases = {
            "batch per sender": per_sender(redis_limiter, batches),
            "batch per org (before)": per_org(redis_limiter, batches),
        }
        for name, call in cases.items():
            round_trips[name] = await round_trips_per_batch(call, trips)
        batch_calls = calls // 20
        for callers in (1, 8):
            rows += await compare(
                cases, callers=callers, calls=batch_calls, rounds=rounds, batch=MESSAGES
            )
        assert redis_limiter.backend == "redis", "Redis did not decide: results are void"
    finally:
        await bare_db.close()
        await redis_limiter.close()
        await db_limiter.close()
        for org_id in org_ids:
            await bare.delete(*keys(org_id))
        await bare.aclose()
        await engine.dispose()
        await drop_database(dsn)
    return verdict(rows, quick, round_trips)


async def profile_run(limiter: RedisLimiter, batches: Batches, size: int) -> dict[str, object]:
    client = redis_client(REDIS_URL)
    assert isinstance(client, Redis)  # a single server's
    cases = {
        "batch per sender": per_sender(limiter, batches),
        "batch per org (before)": per_org(limiter, batches),
    }
    taken: dict[str, list[dict[str, float]]] = {}
    try:
        for call in cases.values():  # warm-up
            await profile(call, client, callers=8, batches=size // 10)
        for callers in (1, 8):
            for _ in range(3):
                for name, call in cases.items():
                    batches.prepare(size)  # the batches' rows are made before, not timed
                    got = await profile(call, client, callers=callers, batches=size)
                    taken.setdefault(f"{name}, {callers} callers", []).append(got)
    finally:
        await client.aclose()
    assert limiter.backend == "redis", "Redis did not decide: results are void"
    return {"profile": taken}


def show_profile(taken: dict[str, list[dict[str, float]]]) -> None:
    columns = ("messages_per_s", "python_cpu_us", "redis_cpu_us", "evalsha_per_batch", "evalsha_us")
    print(f"{'':36}" + "".join(f"{c:>26}" for c in columns))
    for name, samples in taken.items():
        cells = [" / ".join(f"{s[c]:,.0f}" for s in samples) for c in columns]
        print(f"{name:36}" + "".join(f"{cell:>26}" for cell in cells))


def verdict(rows: list[Row], quick: bool, round_trips: dict[str, float]) -> dict[str, object]:
    by = {(r.name, r.callers): r for r in rows}
    bare, one = by[("bare EVALSHA", 1)], by[("redis n=1", 1)]
    batch, db = by[("redis n=100", 1)], by[("database n=1", 1)]
    bare_db = by[("bare asyncpg decision", 1)]
    assert batch.messages_per_s is not None
    senders = by[("batch per sender", 8)]
    assert senders.messages_per_s is not None
    targets = {
        "batch per sender >= 100,000 msg/s (8 callers)": (senders.messages_per_s, 100_000),
        f"batch per sender: Redis round trips <= its {ORGS * SENDERS_PER_ORG} senders": (
            round_trips["batch per sender"],
            ORGS * SENDERS_PER_ORG,
        ),
        "redis single >= 90% of bare EVALSHA": (one.per_s / bare.per_s, 0.9),
        "redis single p50 <= 0.2 ms": (one.p50_ms, 0.2),
        "redis batch-of-100 >= 100,000 msg/s": (batch.messages_per_s, 100_000),
        "database >= 1,000 decisions/s": (db.per_s, 1_000),
        "database p50 <= 2 ms": (db.p50_ms, 2.0),
        "database single >= 80% of bare asyncpg decision": (db.per_s / bare_db.per_s, 0.8),
    }
    met = {
        name: (value >= goal if ">=" in name else value <= goal)
        for name, (value, goal) in targets.items()
    }
    return {
        "quick": quick,
        "python": platform.python_version(),
        "loop": type(asyncio.get_running_loop()).__module__,
        "rows": [asdict(r) for r in rows],
        "round_trips_per_batch": round_trips,
        "targets": {
            name: {"value": round(value, 4), "goal": goal, "met": met[name]}
            for name, (value, goal) in targets.items()
        },
    }


def figures(results: dict[str, Any]) -> dict[str, Any]:
    """The result keys of the issue: single-message decisions from one caller."""
    by = {(r["name"], r["callers"]): r for r in results["rows"]}
    bare, one = by[("bare EVALSHA", 1)], by[("redis n=1", 1)]
    batch, db = by[("redis n=100", 1)], by[("database n=1", 1)]
    bare_db = by[("bare asyncpg decision", 1)]
    return {
        "ratelimit_redis_decisions_per_s": one["per_s"],
        "ratelimit_redis_p50_ms": one["p50_ms"],
        "ratelimit_redis_batch_msgs_per_s": batch["messages_per_s"],
        "ratelimit_db_decisions_per_s": db["per_s"],
        "ratelimit_db_p50_ms": db["p50_ms"],
        "baseline_bare_evalsha_per_s": bare["per_s"],
        "ratio_ratelimit_redis_to_bare_evalsha": one["per_s"] / bare["per_s"],
        "baseline_bare_asyncpg_decision_per_s": bare_db["per_s"],
        "ratio_ratelimit_db_to_bare_asyncpg": db["per_s"] / bare_db["per_s"],
    }


def show(results: dict[str, object]) -> None:
    print(
        f"{'':24}{'callers':>8}{'calls':>8}{'calls/s':>11}{'p50 ms':>9}{'p99 ms':>9}{'msg/s':>11}"
    )
    for row in results["rows"]:  # type: ignore[attr-defined]
        msgs = f"{row['messages_per_s']:>11,.0f}" if row["messages_per_s"] else f"{'':>11}"
        print(
            f"{row['name']:24}{row['callers']:>8}{row['calls']:>8}{row['per_s']:>11,.0f}"
            f"{row['p50_ms']:>9.3f}{row['p99_ms']:>9.3f}{msgs}"
        )
    print()
    for name, trips in results["round_trips_per_batch"].items():  # type: ignore[attr-defined]
        print(f"  {name}: {trips:.2f} Redis round trips per batch of {MESSAGES}")
    print()
    for name, target in results["targets"].items():  # type: ignore[attr-defined]
        mark = "met " if target["met"] else "MISS"
        print(f"  [{mark}] {name}: {target['value']:,} (goal {target['goal']:,})")


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--quick", action="store_true", help="fewer calls, for a smoke run")
    parser.add_argument("--profile", type=int, default=0, help="batches a sample (see above)")
    parser.add_argument("--cluster", action="store_true", help="a cluster beside one server")
    args = parser.parse_args()
    if args.cluster:
        from _ratelimit_cluster import run_cluster, show_cluster

        async def cluster_run() -> dict[str, Any]:
            found = await run_cluster(args.quick, compare)
            found["rows"] = [asdict(row) for row in found["rows"]]
            return found

        try:
            import uvloop
        except ImportError:  # pragma: no cover
            cluster_results = asyncio.run(cluster_run())
        else:
            cluster_results = uvloop.run(cluster_run())
        show_cluster(cluster_results)
        written = RESULTS.with_name("results-ratelimit-cluster.json")
        written.write_text(json.dumps(cluster_results, indent=2) + "\n")
        print(f"\nwritten to {written}")
        return
    try:
        import uvloop  # uvicorn serves on uvloop when it is installed: measure on it too
    except ImportError:  # pragma: no cover
        results = asyncio.run(run(args.quick, args.profile))
    else:
        results = uvloop.run(run(args.quick, args.profile))
    if "profile" in results:
        show_profile(results["profile"])  # type: ignore[arg-type]
        return
    show(results)
    RESULTS.write_text(json.dumps(results, indent=2) + "\n")
    print(f"\nwritten to {RESULTS}")


if __name__ == "__main__":
    main()
