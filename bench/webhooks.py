"""Benchmark of webhook intake on PostgreSQL, at Meta's shape, against the framework's floor.

Creates its own database, inserts messages already ACCEPTED by Meta (with wamids), starts
`wa-outbound serve` as a separate process, and posts signed webhooks from aiohttp in this
process: every status of every message (sent, then delivered, then read), one status per POST
as Meta posts them (`--per-post 1,100` adds 100-status payloads, what Meta sends under high
volume). The baseline, in the same run and from the same client: bench/baseline_app.py, a bare
FastAPI endpoint doing one asyncpg INSERT per request, at the same number of requests in flight.
Each scenario also waits until every status it posted is applied (the service answers once a
body is committed and applies it behind): `applied statuses/s` counts from the first POST to
the last status applied. Prints a table with a verdict per target and writes
bench/results-webhooks.json.

    .venv/bin/python bench/webhooks.py [--quick] [--concurrency 4,16] [--per-post 1,100]
        [--profile out.txt|out.svg]

Targets (issue #25): one status per POST at 16 in flight >= 1.0x the bare endpoint's req/s,
p99 <= 100 ms; 100-status payloads at 4 in flight >= 3,000 statuses/s, p99 <= 100 ms.
"""

from __future__ import annotations

import argparse
import asyncio
import hashlib
import hmac
import json
import os
import signal
import subprocess
import sys
import time
import uuid
from pathlib import Path
from typing import Any

import aiohttp
import asyncpg
import sqlalchemy as sa

sys.path.insert(0, str(Path(__file__).resolve().parents[1] / "tests"))

import meta_payloads as meta
from _support import create_database, drop_database, free_port, rss_mb, write_results
from _webhook_load import bare_endpoint, load, timed
from wa_outbound.config import Settings
from wa_outbound.db import migrate
from wa_outbound.db.engine import create_engine
from wa_outbound.db.schema import organization, outbound_message
from wa_outbound.db.types import utcnow

ROOT = Path(__file__).resolve().parents[1]
SECRET = "bench-app-secret"
TARGET_STATUSES_PER_S = 3000
TARGET_P99_MS = 100.0
ROUNDS = ("sent", "delivered", "read")


async def prepare(url: str, wamids: list[str]) -> None:
    engine = create_engine(Settings(database_url=url, provider="sandbox", _env_file=None))
    try:
        await migrate.upgrade(engine)
        now = utcnow()
        async with engine.begin() as conn:
            await conn.execute(
                organization.insert().values(id="bench", name="bench", created_at=now)
            )
            rows = [
                {
                    "id": uuid.uuid4(),
                    "org_id": "bench",
                    "channel": "WHATSAPP",
                    "to_phone": "+33612345678",
                    "kind": "template",
                    "payload": {"name": "order_update", "language": "en_US"},
                    "message_metadata": {},
                    "status": "ACCEPTED",
                    "attempts": 1,
                    "max_attempts": 5,
                    "next_attempt_at": now,
                    "provider_message_id": wamid,
                    "dead_lettered": False,
                    "created_at": now,
                    "updated_at": now,
                    "accepted_at": now,
                }
                for wamid in wamids
            ]
            for start in range(0, len(rows), 2000):
                await conn.execute(outbound_message.insert(), rows[start : start + 2000])
    finally:
        await engine.dispose()


def start_service(url: str, port: int, profile: str | None) -> subprocess.Popen[bytes]:
    env = os.environ | {
        "WA_DATABASE_URL": url,
        "WA_PROVIDER": "sandbox",
        "WA_APP_SECRET": SECRET,
        # The shared sender on the envelopes' number: their statuses route to its messages.
        "WA_PHONE_NUMBER_ID": meta.PHONE_NUMBER_ID,
        "WA_ACCESS_TOKEN": "bench-token",
        "WA_ALERT_ENABLED": "false",
        "WA_LOG_LEVEL": "WARNING",
    }
    command = [str(ROOT / ".venv/bin/wa-outbound"), "serve", "--port", str(port), "--no-migrate"]
    if profile:  # py-spy (pip install py-spy) samples the service; the flame graph is an SVG
        fmt = "raw" if profile.endswith(".txt") else "flamegraph"
        command = [
            str(ROOT / ".venv/bin/py-spy"),
            "record",
            "-f",
            fmt,
            "-o",
            profile,
            "--",
            *command,
        ]
    return subprocess.Popen(command, env=env, cwd=ROOT)


async def wait_ready(session: aiohttp.ClientSession, base: str) -> None:
    for _ in range(300):
        try:
            async with session.get(f"{base}/health/ready") as response:
                if response.status == 200:
                    return
        except aiohttp.ClientError:
            pass
        await asyncio.sleep(0.1)
    raise RuntimeError("the service did not become ready")


def bodies(wamids: list[str], per_payload: int) -> list[tuple[bytes, str, int]]:
    """Signed bodies, built before timing: every round of statuses, in payloads of this size."""
    out = []
    ts = int(time.time())
    for step, status in enumerate(ROUNDS):
        for first in range(0, len(wamids), per_payload):
            chunk = wamids[first : first + per_payload]
            items = [meta.status(w, status, timestamp=ts + step) for w in chunk]
            raw = json.dumps(meta.envelope(statuses=items)).encode()
            signature = "sha256=" + hmac.new(SECRET.encode(), raw, hashlib.sha256).hexdigest()
            out.append((raw, signature, len(chunk)))
    return out


async def applied_when_all_done(dsn: str, started: float, timeout_s: float = 300.0) -> float:
    """Seconds from `started` (perf_counter) until no stored body is left unapplied."""
    conn = await asyncpg.connect(dsn)
    try:
        deadline = time.perf_counter() + timeout_s
        while time.perf_counter() < deadline:
            left = await conn.fetchval(
                "SELECT count(*) FROM webhook_event WHERE processed_at IS NULL"
            )
            if left == 0:
                return time.perf_counter() - started
            await asyncio.sleep(0.005)
    finally:
        await conn.close()
    raise RuntimeError("stored webhook bodies were still unapplied after the timeout")


async def check(url: str, expected_read: int) -> dict[str, int]:
    engine = create_engine(Settings(database_url=url, provider="sandbox", _env_file=None))
    try:
        async with engine.connect() as conn:
            m = outbound_message.c
            rows = await conn.execute(sa.select(m.status, sa.func.count()).group_by(m.status))
            counts = {status: int(n) for status, n in rows}
    finally:
        await engine.dispose()
    if counts.get("READ") != expected_read:
        raise RuntimeError(f"not every message ended READ: {counts}")
    return counts


async def measure(
    session: aiohttp.ClientSession,
    url: str,
    payloads: list[tuple[bytes, str, int]],
    workers: int,
    pid: int | None,
    dsn: str,
) -> dict[str, Any]:
    """One scenario: the answers, and the time until every status posted is applied."""
    started = time.perf_counter()
    result = await timed(session, url, payloads, workers, pid)
    applied_s = await applied_when_all_done(dsn, started)
    result["applied_s"] = round(applied_s, 3)
    result["applied_statuses_per_s"] = round(result["statuses"] / applied_s, 1)
    return result


async def run(
    quick: bool = False,
    levels: tuple[int, ...] = (4, 16),
    profile: str | None = None,
    sizes: tuple[int, ...] = (1, 100),
) -> dict[str, Any]:
    """Every status of every message, in payloads of each size at each level of requests in
    flight, beside the bare endpoint at the same levels; the report of results-webhooks.json."""
    counts = {1: 600 if quick else 4_000, 100: 3_000 if quick else 20_000}
    warmup = [f"wamid.WARM{i:06d}" for i in range(400)]
    plan = {
        (size, level): [f"wamid.{size}.{level}.{i:07d}" for i in range(counts.get(size, 3_000))]
        for size in sizes
        for level in levels
    }

    dsn, url = await create_database()
    service: subprocess.Popen[bytes] | None = None
    results: dict[str, Any] = {}
    peak = 0.0
    try:
        await prepare(url, warmup + [w for wamids in plan.values() for w in wamids])
        # The floor, before the service, with as many requests as its single-status runs make.
        bare = await bare_endpoint(dsn, levels, 3 * counts[1])
        port = free_port()
        service = start_service(url, port, profile)
        pid = None if profile else service.pid
        base = f"http://127.0.0.1:{port}"
        connector = aiohttp.TCPConnector(limit=max(levels))
        async with aiohttp.ClientSession(connector=connector) as session:
            await wait_ready(session, base)
            target = f"{base}/webhooks/whatsapp"
            await load(session, target, bodies(warmup[:200], 100), max(levels))
            await load(session, target, bodies(warmup[200:], 1), max(levels))
            await applied_when_all_done(dsn, time.perf_counter())
            for (size, level), wamids in plan.items():
                key = scenario(size, level)
                payloads = bodies(wamids, size)
                results[key] = await measure(session, target, payloads, level, pid, dsn)
                if pid:
                    peak = max(peak, rss_mb(pid))
        final = await check(url, len(warmup) + sum(len(w) for w in plan.values()))
    finally:
        if service is not None:
            service.send_signal(signal.SIGINT)  # py-spy writes its profile on SIGINT
            service.wait(timeout=60)
        await drop_database(dsn)
    return {
        "when": utcnow().isoformat(timespec="seconds"),
        "quick": quick,
        "load_average": [round(x, 2) for x in os.getloadavg()],
        "results": results,
        "bare_fastapi_insert": {f"{level} in flight": r for level, r in bare.items()},
        "final_statuses": final,
        "rss_mb_peak": peak,
    }


def scenario(size: int, level: int) -> str:
    return f"{size} status{'es' if size > 1 else ''}/POST, {level} in flight"


def figures(report: dict[str, Any]) -> dict[str, Any]:
    """The headline: one status per POST at the highest level in flight against the bare
    endpoint at that level; 100-status payloads at the lowest level beside it."""
    results, bare = report["results"], report["bare_fastapi_insert"]
    levels = sorted({int(k.rsplit(", ", 1)[1].split()[0]) for k in results})
    low, high = levels[0], levels[-1]
    out: dict[str, Any] = {"webhook_single_in_flight": high}
    single = results.get(scenario(1, high))
    if single is not None:
        floor = bare[f"{high} in flight"]
        out |= {
            "webhook_single_req_per_s": single["requests_per_s"],
            "webhook_single_p99_ms": single["p99_ms"],
            "webhook_single_applied_statuses_per_s": single.get("applied_statuses_per_s"),
            "baseline_bare_fastapi_insert_16_req_per_s": floor["requests_per_s"],
            "baseline_bare_fastapi_insert_16_p99_ms": floor["p99_ms"],
            "ratio_webhook_single_to_bare_fastapi": round(
                single["requests_per_s"] / floor["requests_per_s"], 3
            ),
        }
    batch_low, batch_high = results.get(scenario(100, low)), results.get(scenario(100, high))
    if batch_low is not None and batch_high is not None:
        out |= {
            "webhook_in_flight": low,
            "webhook_statuses_per_s": batch_low["statuses_per_s"],
            "webhook_p99_ms": batch_low["p99_ms"],
            f"webhook_{high}_in_flight_statuses_per_s": batch_high["statuses_per_s"],
            f"webhook_{high}_in_flight_p99_ms": batch_high["p99_ms"],
        }
    return out


# (figure, target, "min" or "max"): the verdicts printed under the table.
TARGETS = (
    ("ratio_webhook_single_to_bare_fastapi", 1.0, "min"),
    ("webhook_single_p99_ms", TARGET_P99_MS, "max"),
    ("webhook_statuses_per_s", TARGET_STATUSES_PER_S, "min"),
    ("webhook_p99_ms", TARGET_P99_MS, "max"),
)


def verdicts(figures_: dict[str, Any]) -> list[str]:
    lines = []
    for key, goal, sense in TARGETS:
        if key not in figures_:
            continue
        value = figures_[key]
        met = value >= goal if sense == "min" else value <= goal
        target = f"{'>=' if sense == 'min' else '<='} {goal:,}"
        lines.append(f"{key:<40}{value:>12,.2f}  {target:<12}{'met' if met else 'MISSED'}")
    return lines


async def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--quick", action="store_true", help="a short run (CI smoke)")
    parser.add_argument(
        "--concurrency", default="4,16", help="requests in flight; a comma-separated list"
    )
    parser.add_argument(
        "--per-post", default="1", help="statuses per POST; a comma-separated list (1,100)"
    )
    parser.add_argument("--profile", metavar="FILE", help="run the service under py-spy record")
    args = parser.parse_args()
    levels = tuple(int(level) for level in args.concurrency.split(","))
    sizes = tuple(int(size) for size in args.per_post.split(","))
    report = await run(args.quick, levels, args.profile, sizes)
    print("\nwebhook intake on PostgreSQL (all statuses applied: sent, delivered, read)")
    print(
        f"{'scenario':<36}{'statuses':>9}{'req/s':>8}{'p50 ms':>8}{'p99 ms':>8}"
        f"{'applied/s':>10}{'cpu ms/req':>11}{'errors':>7}"
    )
    rows = [(f"bare FastAPI INSERT, {k}", r) for k, r in report["bare_fastapi_insert"].items()]
    for label, r in [*rows, *report["results"].items()]:
        print(
            f"{label:<36}{r['statuses']:>9}{r['requests_per_s']:>8.0f}"
            f"{r['p50_ms']:>8.1f}{r['p99_ms']:>8.1f}{r.get('applied_statuses_per_s', 0):>10.0f}"
            f"{r.get('service_cpu_ms_per_request', float('nan')):>11.2f}{r['errors']:>7}"
        )
    print()
    print("\n".join(verdicts(figures(report))))
    print(f"load average {report['load_average']} at the end")
    out = write_results("webhooks", report)
    print(f"written to {out.relative_to(ROOT)}")


if __name__ == "__main__":
    asyncio.run(main())
