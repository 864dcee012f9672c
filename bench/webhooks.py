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
import platform
import signal
import socket
import statistics
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
from wa_outbound.config import Settings
from wa_outbound.db import migrate
from wa_outbound.db.engine import create_engine
from wa_outbound.db.schema import organization, outbound_message
from wa_outbound.db.types import utcnow

ROOT = Path(__file__).resolve().parents[1]
ADMIN_URL = os.environ.get(
    "WA_BENCH_DATABASE_URL", "postgresql+asyncpg://postgres@127.0.0.1:5432/postgres"
)
SECRET = "bench-app-secret"
TARGET_STATUSES_PER_S = 3000
TARGET_P99_MS = 100.0
ROUNDS = ("sent", "delivered", "read")


def _db_url(name: str) -> str:
    return ADMIN_URL.rpartition("/")[0] + "/" + name


async def _admin(statement: str) -> None:
    conn = await asyncpg.connect(ADMIN_URL.replace("postgresql+asyncpg://", "postgresql://"))
    try:
        await conn.execute(statement)
    finally:
        await conn.close()


async def prepare(url: str, wamids: list[str]) -> None:
    engine = create_engine(Settings(database_url=url, _env_file=None))
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


def free_port() -> int:
    with socket.socket() as sock:
        sock.bind(("127.0.0.1", 0))
        return int(sock.getsockname()[1])


def start_service(url: str, port: int, profile: str | None) -> subprocess.Popen[bytes]:
    env = os.environ | {
        "WA_DATABASE_URL": url,
        "WA_APP_SECRET": SECRET,
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
    engine = create_engine(Settings(database_url=url, _env_file=None))
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


def cpu_seconds(pid: int) -> float:
    """User + system CPU time of a process so far (Linux), to tell our cost from the noise."""
    fields = Path(f"/proc/{pid}/stat").read_text().rpartition(")")[2].split()
    return (int(fields[11]) + int(fields[12])) / os.sysconf("SC_CLK_TCK")


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


async def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--quick", action="store_true", help="a short run (CI smoke)")
    parser.add_argument(
        "--concurrency", default="4,16", help="requests in flight; a comma-separated list"
    )
    parser.add_argument("--profile", metavar="FILE", help="run the service under py-spy record")
    args = parser.parse_args()
    levels = [int(level) for level in args.concurrency.split(",")]
    batch_messages, single_messages = (3_000, 600) if args.quick else (20_000, 3_000)
    warmup = [f"wamid.WARM{i:06d}" for i in range(400)]
    plan = {
        (label, level): [f"wamid.{label}.{level}.{i:07d}" for i in range(count)]
        for level in levels
        for label, count in (("batch", batch_messages), ("single", single_messages))
    }

    name = f"wa_bench_{uuid.uuid4().hex[:10]}"
    url = _db_url(name)
    await _admin(f'CREATE DATABASE "{name}"')
    service: subprocess.Popen[bytes] | None = None
    results: dict[str, Any] = {}
    try:
        await prepare(url, warmup + [w for wamids in plan.values() for w in wamids])
        port = free_port()
        service = start_service(url, port, args.profile)
        pid = None if args.profile else service.pid
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
        counts = await check(url, len(warmup) + sum(len(w) for w in plan.values()))
    finally:
        if service is not None:
            service.send_signal(signal.SIGINT)  # py-spy writes its profile on SIGINT
            service.wait(timeout=60)
        await _admin(f'DROP DATABASE IF EXISTS "{name}" WITH (FORCE)')

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
    report = {
        "when": utcnow().isoformat(timespec="seconds"),
        "machine": {
            "cpus": os.cpu_count(),
            "python": platform.python_version(),
            "load_average_at_end": os.getloadavg(),
        },
        "quick": args.quick,
        "targets": {"statuses_per_s": TARGET_STATUSES_PER_S, "p99_ms": TARGET_P99_MS},
        "results": results,
        "final_statuses": counts,
    }
    out = ROOT / "bench" / "results-webhooks.json"
    out.write_text(json.dumps(report, indent=2) + "\n")
    print(f"written to {out.relative_to(ROOT)}")


if __name__ == "__main__":
    asyncio.run(main())
