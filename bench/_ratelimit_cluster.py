"""The limiter on a Redis Cluster beside a single Redis server, side by side
(`bench/ratelimit.py --cluster`).

Starts its own servers on private ports (tests/redis_engines.py): a single `redis-server` with
one replica (7130, 7131) and a cluster of three masters with a replica each (7100-7105), all
keeping nothing on disk, on the machine that runs the bench (the servers and the bench share its
cores: a cluster's six processes are not faster than one here, the point is what routing by
slot and waiting for replicas cost per decision). Four limiters on the same database and orgs:
the single server and the cluster, each without and with `WAIT 1` (replicas confirming grants,
the default of the cluster and sentinel modes). Measured in alternating turns like the rest of
bench/ratelimit.py: single-message decisions at 1 and 32 callers, and the dispatcher's
per-batch decision (100 messages, 20 senders of 5 orgs) at 8 callers."""

from __future__ import annotations

import asyncio
import shutil
import sys
import tempfile
import uuid
from collections.abc import Awaitable, Callable
from pathlib import Path
from typing import Any

from _sender_batches import MESSAGES, ORGS, Batches
from _support import create_database, drop_database, machine
from wa_outbound.config import Settings
from wa_outbound.db import migrate
from wa_outbound.db.engine import create_engine
from wa_outbound.db.types import utcnow
from wa_outbound.dispatch.admission import Holds, admit
from wa_outbound.metrics import Metrics
from wa_outbound.orgs import organizations
from wa_outbound.ratelimit import DatabaseLimiter, RedisLimiter, RedisTarget
from wa_outbound.ratelimit.allotment import Allotter
from wa_outbound.ratelimit.database import default_limits

sys.path.insert(0, str(Path(__file__).resolve().parents[1] / "tests"))
from redis_engines import Cluster, Server, redis_args

SINGLE_PORT, SINGLE_REPLICA_PORT = 7130, 7131
CALLERS = 32
Compare = Callable[..., Awaitable[list[Any]]]


def per_sender(
    limiter: RedisLimiter, batches: Batches, short: dict[str, int], name: str
) -> Callable[[int], Awaitable[object]]:
    """The dispatcher's per-batch decision (as _sender_batches.per_sender), counting in `short`
    the messages not granted (a Redis timeout on a loaded machine hands a batch to the
    database, whose holds may then keep an org back for a moment) instead of failing."""
    senders: Holds[uuid.UUID] = Holds()
    orgs: Holds[str] = Holds()

    async def call(_: int) -> object:
        admission = await admit(limiter, batches.batch(), senders=senders, orgs=orgs, now=utcnow())
        short[name] = short.get(name, 0) + MESSAGES - len(admission.granted)
        return admission

    return call


def start_servers(workdir: Path) -> tuple[Cluster, list[Server]]:
    single = Server(SINGLE_PORT, redis_args(SINGLE_PORT), workdir / "single")
    replica = Server(
        SINGLE_REPLICA_PORT,
        redis_args(SINGLE_REPLICA_PORT, "--replicaof", "127.0.0.1", str(SINGLE_PORT)),
        workdir / "single-replica",
    )
    cluster = Cluster(workdir / "cluster")
    servers = [single, replica]
    try:
        for server in servers:
            server.start()
        cluster.start()
    except BaseException:
        cluster.stop()
        for server in servers:
            server.stop()
        raise
    return cluster, servers


async def run_cluster(quick: bool, compare: Compare) -> dict[str, Any]:
    calls = 2_000 if quick else 10_000
    rounds = 3 if quick else 7
    workdir = Path(tempfile.mkdtemp(prefix="bench-redis-"))
    cluster, servers = await asyncio.to_thread(start_servers, workdir)
    dsn, url = await create_database()
    settings = Settings(
        _env_file=None, database_url=url, provider="sandbox", pair_interval_seconds=0.5
    )
    engine = create_engine(settings)
    single_url = f"redis://127.0.0.1:{SINGLE_PORT}/0"
    targets = {
        "single": RedisTarget(single_url),
        "single, WAIT 1": RedisTarget(single_url, wait_replicas=1),
        "cluster": RedisTarget(cluster.url, "cluster"),
        "cluster, WAIT 1": RedisTarget(cluster.url, "cluster", wait_replicas=1),
    }
    limiters: dict[str, RedisLimiter] = {}
    org_ids = [f"bench_{uuid.uuid4().hex[:12]}" for _ in range(CALLERS)]
    rows: list[Any] = []
    short: dict[str, int] = {}
    registries: dict[str, Any] = {}
    try:
        await migrate.upgrade(engine)
        async with engine.begin() as conn:
            for org_id in org_ids:
                await organizations.create_org(
                    conn,
                    name="bench",
                    org_id=org_id,
                    daily_quota=10**15,
                    messages_per_second=1e12,
                    actor="bench",
                )
        for name, target in targets.items():
            metrics = Metrics()
            registries[name] = metrics.registry
            limiters[name] = RedisLimiter(
                target,
                DatabaseLimiter(engine, settings, metrics),
                Allotter(engine, default_limits(settings)),
                metrics,
            )

        def one(limiter: RedisLimiter) -> Callable[[int], Awaitable[object]]:
            async def call(i: int) -> object:
                return await limiter.acquire(org_ids[i], 1)

            return call

        singles = {f"{name} n=1": one(limiter) for name, limiter in limiters.items()}
        rows += await compare(singles, callers=1, calls=calls // 5, rounds=rounds * 5)
        rows += await compare(singles, callers=CALLERS, calls=calls, rounds=rounds)
        batches = {
            f"{name} batch": per_sender(limiter, Batches(org_ids[:ORGS]), short, name)
            for name, limiter in limiters.items()
        }
        rows += await compare(batches, callers=8, calls=calls // 20, rounds=rounds, batch=MESSAGES)
        for name, limiter in limiters.items():
            assert limiter.backend == "redis", f"{name}: Redis did not decide, results are void"
    finally:
        for limiter in limiters.values():
            await limiter.close()
        await engine.dispose()
        await drop_database(dsn)
        cluster.stop()
        for server in servers:
            server.stop()
        shutil.rmtree(workdir, ignore_errors=True)
    on_database = {
        name: sum(
            registry.get_sample_value(
                "outbound_ratelimit_decisions_total", {"backend": "database", "result": result}
            )
            or 0
            for result in ("granted", "partial", "denied")
        )
        for name, registry in registries.items()
    }
    return {
        "quick": quick,
        "machine": machine(),
        "rows": rows,
        "not_granted": short,
        "database_decisions": on_database,
    }


def show_cluster(results: dict[str, Any]) -> None:
    print(
        f"{'':28}{'callers':>8}{'calls':>8}{'calls/s':>11}{'p50 ms':>9}{'p99 ms':>9}{'msg/s':>11}"
    )
    for row in results["rows"]:
        msgs = f"{row['messages_per_s']:>11,.0f}" if row["messages_per_s"] else f"{'':>11}"
        print(
            f"{row['name']:28}{row['callers']:>8}{row['calls']:>8}{row['per_s']:>11,.0f}"
            f"{row['p50_ms']:>9.3f}{row['p99_ms']:>9.3f}{msgs}"
        )
    print(f"\nmessages not granted in the batches: {results['not_granted']}")
    print(f"decisions the database made (Redis late): {results['database_decisions']}")
    print(f"load average at the end: {results['machine']['load_average']}")
