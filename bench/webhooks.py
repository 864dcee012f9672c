"""Benchmark of webhook intake on PostgreSQL: statuses/s and ack latency, against the real service.

Creates its own database, inserts messages already ACCEPTED by Meta (with wamids), starts
`wa-outbound serve` as a separate process, and posts signed webhooks from aiohttp in this
process: every status of every message (sent, then delivered, then read), first in 100-status
payloads, then in single-status payloads. Prints a table and writes bench/results-webhooks.json.

    .venv/bin/python bench/webhooks.py [--quick] [--concurrency 4,16] [--profile out.txt|out.svg]

Targets on the reference machine (2 cores): >= 3,000 statuses/s, p99 ack <= 100 ms.
"""

from __future__ import annotations

import argparse
import asyncio
import hashlib
import hmac
import json
import os
import signal
import statistics
import subprocess
import sys
import time
import uuid
from pathlib import Path
from typing import Any

import aiohttp
import sqlalchemy as sa

sys.path.insert(0, str(Path(__file__).resolve().parents[1] / "tests"))

import meta_payloads as meta
from _support import cpu_seconds, create_database, drop_database, free_port, rss_mb, write_results
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
        for start in range(0, len(wamids), per_payload):
            chunk = wamids[start : start + per_payload]
            items = [meta.status(w, status, timestamp=ts + step) for w in chunk]
            raw = json.dumps(meta.envelope(statuses=items)).encode()
            signature = "sha256=" + hmac.new(SECRET.encode(), raw, hashlib.sha256).hexdigest()
            out.append((raw, signature, len(chunk)))
    return out


async def load(
    session: aiohttp.ClientSession, url: str, payloads: list[tuple[bytes, str, int]], workers: int
) -> dict[str, Any]:
    latencies: list[float] = []
    errors = 0
    # Rounds stay in order (all `sent` before any `delivered`) so every status is applied work.
    queue: asyncio.Queue[tuple[bytes, str, int]] = asyncio.Queue()
    for item in payloads:
        queue.put_nowait(item)

    async def worker() -> None:
        nonlocal errors
        while not queue.empty():
            raw, signature, _n = queue.get_nowait()
            headers = {"Content-Type": "application/json", "X-Hub-Signature-256": signature}
            started = time.perf_counter()
            async with session.post(url, data=raw, headers=headers) as response:
                await response.read()
                if response.status != 200:
                    errors += 1
            latencies.append(time.perf_counter() - started)

    started = time.perf_counter()
    await asyncio.gather(*(worker() for _ in range(workers)))
    elapsed = time.perf_counter() - started
    statuses = sum(n for _, _, n in payloads)
    ordered = sorted(latencies)
    return {
        "requests": len(payloads),
        "statuses": statuses,
        "errors": errors,
        "seconds": round(elapsed, 3),
        "statuses_per_s": round(statuses / elapsed, 1),
        "requests_per_s": round(len(payloads) / elapsed, 1),
        "p50_ms": round(statistics.median(ordered) * 1000, 2),
        "p90_ms": round(ordered[int(len(ordered) * 0.90)] * 1000, 2),
        "p99_ms": round(ordered[min(len(ordered) - 1, int(len(ordered) * 0.99))] * 1000, 2),
        "max_ms": round(ordered[-1] * 1000, 2),
    }


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
) -> dict[str, Any]:
    before = cpu_seconds(pid) if pid else 0.0
    result = await load(session, url, payloads, workers)
    if pid:
        cpu = cpu_seconds(pid) - before
        result["service_cpu_s"] = round(cpu, 2)
        result["service_cpu_ms_per_request"] = round(cpu * 1000 / result["requests"], 2)
    return result


async def run(
    quick: bool = False, levels: tuple[int, ...] = (4, 16), profile: str | None = None
) -> dict[str, Any]:
    """Every status of every message, in 100-status then 1-status payloads, at each level of
    requests in flight; the report of results-webhooks.json."""
    batch_messages, single_messages = (3_000, 600) if quick else (20_000, 3_000)
    warmup = [f"wamid.WARM{i:06d}" for i in range(400)]
    plan = {
        (label, level): [f"wamid.{label}.{level}.{i:07d}" for i in range(count)]
        for level in levels
        for label, count in (("batch", batch_messages), ("single", single_messages))
    }

    dsn, url = await create_database()
    service: subprocess.Popen[bytes] | None = None
    results: dict[str, Any] = {}
    peak = 0.0
    try:
        await prepare(url, warmup + [w for wamids in plan.values() for w in wamids])
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
            for (label, level), wamids in plan.items():
                size = 100 if label == "batch" else 1
                key = f"{size} status{'es' if size > 1 else ''}/payload, {level} in flight"
                payloads = bodies(wamids, size)
                results[key] = await measure(session, target, payloads, level, pid)
                if pid:
                    peak = max(peak, rss_mb(pid))
        counts = await check(url, len(warmup) + sum(len(w) for w in plan.values()))
    finally:
        if service is not None:
            service.send_signal(signal.SIGINT)  # py-spy writes its profile on SIGINT
            service.wait(timeout=60)
        await drop_database(dsn)
    return {
        "when": utcnow().isoformat(timespec="seconds"),
        "quick": quick,
        "targets": {"statuses_per_s": TARGET_STATUSES_PER_S, "p99_ms": TARGET_P99_MS},
        "results": results,
        "final_statuses": counts,
        "rss_mb_peak": peak,
    }


def figures(report: dict[str, Any]) -> dict[str, Any]:
    """The headline: 100-status payloads (what Meta sends under load) at the lowest level in
    flight; the highest level and single-status payloads beside it."""
    results = report["results"]
    batch = [v for k, v in results.items() if k.startswith("100 ")]
    single = [v for k, v in results.items() if k.startswith("1 ")]
    levels = [int(k.rsplit(", ", 1)[1].split()[0]) for k in results if k.startswith("100 ")]
    return {
        "webhook_in_flight": levels[0],
        "webhook_statuses_per_s": batch[0]["statuses_per_s"],
        "webhook_p99_ms": batch[0]["p99_ms"],
        f"webhook_{levels[-1]}_in_flight_statuses_per_s": batch[-1]["statuses_per_s"],
        f"webhook_{levels[-1]}_in_flight_p99_ms": batch[-1]["p99_ms"],
        "webhook_single_status_per_s": single[0]["statuses_per_s"],
        "webhook_single_status_p99_ms": single[0]["p99_ms"],
    }


async def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--quick", action="store_true", help="a short run (CI smoke)")
    parser.add_argument(
        "--concurrency", default="4,16", help="requests in flight; a comma-separated list"
    )
    parser.add_argument("--profile", metavar="FILE", help="run the service under py-spy record")
    args = parser.parse_args()
    levels = tuple(int(level) for level in args.concurrency.split(","))
    report = await run(args.quick, levels, args.profile)
    results = report["results"]
    print("\nwebhook intake on PostgreSQL (all statuses applied: sent, delivered, read)")
    print(
        f"{'scenario':<34}{'statuses':>9}{'statuses/s':>11}{'req/s':>7}"
        f"{'p50 ms':>8}{'p99 ms':>8}{'cpu ms/req':>11}{'errors':>7}"
    )
    for label, r in results.items():
        print(
            f"{label:<34}{r['statuses']:>9}{r['statuses_per_s']:>11.0f}{r['requests_per_s']:>7.0f}"
            f"{r['p50_ms']:>8.1f}{r['p99_ms']:>8.1f}"
            f"{r.get('service_cpu_ms_per_request', float('nan')):>11.2f}{r['errors']:>7}"
        )
    print(f"targets: >= {TARGET_STATUSES_PER_S} statuses/s, p99 <= {TARGET_P99_MS:.0f} ms")
    out = write_results("webhooks", report)
    print(f"written to {out.relative_to(ROOT)}")


if __name__ == "__main__":
    asyncio.run(main())
