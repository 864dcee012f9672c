"""Dispatch benchmark: sustained messages/s through the real service to the fake Meta over
loopback, and enqueue→ACCEPTED latency on an idle system. PostgreSQL; run from the repository:

    .venv/bin/python bench/dispatch.py [--messages 20000] [--latency-samples 200] [--quick]
"""

from __future__ import annotations

import argparse
import asyncio
import json
import sys
import time
import uuid
from datetime import UTC, datetime
from typing import Any

import aiohttp
import asyncpg
from _support import (
    BIN,
    ROOT,
    create_database,
    drop_database,
    free_port,
    migrate,
    percentile,
    rss_mb,
    service_env,
    start,
    stop,
    table,
    wait_http,
    write_results,
)

TOKEN = "bench-token"
TEMPLATE = {
    "name": "order_update",
    "language": "en_US",
    "components": [{"type": "body", "parameters": [{"type": "text", "text": "42"}]}],
}


async def _prepare(dsn: str, env: dict[str, str], phones: list[str]) -> tuple[str, str]:
    created = await asyncio.to_thread(
        __import__("subprocess").run,
        [str(BIN / "wa-outbound"), "orgs", "create", "Bench"],
        env=env,
        check=True,
        capture_output=True,
        text=True,
    )
    org = json.loads(created.stdout)
    conn = await asyncpg.connect(dsn)
    try:
        await conn.execute(
            "UPDATE rate_limit SET quota_limit = 1000000000, messages_per_second = 1000000"
        )
        now = datetime.now(UTC)
        await conn.copy_records_to_table(
            "consent",
            columns=["org_id", "phone", "status", "source", "granted_at", "updated_at"],
            records=[(org["org_id"], p, "granted", "bench", now, now) for p in phones],
        )
    finally:
        await conn.close()
    return org["org_id"], org["api_key"]


async def _insert_queued(dsn: str, org_id: str, phones: list[str], count: int) -> None:
    now = datetime.now(UTC)
    payload = json.dumps(TEMPLATE)
    records = [
        (
            uuid.uuid4(),
            org_id,
            "WHATSAPP",
            phones[i % len(phones)],
            "template",
            payload,
            "{}",
            "bench",
            "QUEUED",
            0,
            5,
            now,
            False,
            now,
            now,
        )
        for i in range(count)
    ]
    conn = await asyncpg.connect(dsn)
    try:
        await conn.copy_records_to_table(
            "outbound_message",
            columns=[
                "id",
                "org_id",
                "channel",
                "to_phone",
                "kind",
                "payload",
                "message_metadata",
                "request_hash",
                "status",
                "attempts",
                "max_attempts",
                "next_attempt_at",
                "dead_lettered",
                "created_at",
                "updated_at",
            ],
            records=records,
        )
    finally:
        await conn.close()


async def _wait_accepted(dsn: str, expected: int, pid: int, timeout_s: float) -> float:
    conn = await asyncpg.connect(dsn)
    peak = 0.0
    try:
        deadline = time.monotonic() + timeout_s
        while time.monotonic() < deadline:
            peak = max(peak, rss_mb(pid))
            done = await conn.fetchval(
                "SELECT count(*) FROM outbound_message WHERE status NOT IN "
                "('QUEUED', 'RETRYING', 'SENDING')"
            )
            if done >= expected:
                return peak
            await asyncio.sleep(0.05)
        raise RuntimeError(f"only {done} of {expected} messages left the queue in {timeout_s} s")
    finally:
        await conn.close()


async def _throughput(dsn: str) -> dict[str, float]:
    conn = await asyncpg.connect(dsn)
    try:
        row = await conn.fetchrow(
            """SELECT count(*) FILTER (WHERE status = 'ACCEPTED') AS accepted,
                      count(*) AS total,
                      extract(epoch FROM max(accepted_at) - (SELECT min(at) FROM message_event
                                                              WHERE type = 'claimed')) AS seconds
               FROM outbound_message"""
        )
    finally:
        await conn.close()
    return {"accepted": row["accepted"], "total": row["total"], "seconds": float(row["seconds"])}


async def _latency(
    base_url: str, key: str, dsn: str, phones: list[str], samples: int
) -> list[float]:
    headers = {"Authorization": f"Bearer {key}"}
    ids = []
    async with aiohttp.ClientSession(base_url) as session:
        for i in range(samples):
            async with session.post(
                "/v1/messages",
                headers=headers,
                json={"to": phones[i % len(phones)], "template": TEMPLATE},
            ) as r:
                assert r.status == 202, await r.text()
                ids.append(uuid.UUID((await r.json())["id"]))
            await asyncio.sleep(0.02)  # idle system: one message at a time
    conn = await asyncpg.connect(dsn)
    try:
        for _ in range(200):
            rows = await conn.fetch(
                "SELECT extract(epoch FROM accepted_at - created_at) * 1000 AS ms "
                "FROM outbound_message WHERE id = ANY($1) AND accepted_at IS NOT NULL",
                ids,
            )
            if len(rows) == len(ids):
                return [float(r["ms"]) for r in rows]
            await asyncio.sleep(0.1)
    finally:
        await conn.close()
    raise RuntimeError("latency samples did not all reach ACCEPTED")


def _profile(pid: int) -> Any:
    """py-spy (pip install py-spy) writing collapsed stacks to bench/profile-dispatch.txt."""
    return start([str(BIN / "py-spy"), "record", "--pid", str(pid), "--rate", "200",
                  "--format", "raw", "--output", str(ROOT / "bench" / "profile-dispatch.txt"),
                  "--nonblocking"])


async def main() -> None:
    parser = argparse.ArgumentParser()
    parser.add_argument("--messages", type=int, default=20_000)
    parser.add_argument("--latency-samples", type=int, default=200)
    parser.add_argument("--quick", action="store_true", help="small counts (about 15 s)")
    parser.add_argument("--profile", action="store_true",
                        help="record the service with py-spy during the dispatch phase")
    args = parser.parse_args()
    if args.quick:
        args.messages, args.latency_samples = 3_000, 50
    phones = [f"+3361{i:07d}" for i in range(1, 1001)]
    dsn, url = await create_database()
    fake_port, port = free_port(), free_port()
    env = service_env(
        url,
        WA_PROVIDER="cloud",
        WA_GRAPH_API_BASE_URL=f"http://127.0.0.1:{fake_port}",
        WA_ACCESS_TOKEN=TOKEN,
        WA_PHONE_NUMBER_ID="106540352242922",
        WA_APP_SECRET="bench",
        WA_DISPATCH_POLL_SECONDS="0.5",
    )
    processes = []
    try:
        migrate(env)
        processes.append(
            start(
                [
                    sys.executable,
                    str(ROOT / "tests" / "fake_meta.py"),
                    "--port",
                    str(fake_port),
                    "--token",
                    TOKEN,
                ]
            )
        )
        org_id, key = await _prepare(dsn, env, phones)
        await _insert_queued(dsn, org_id, phones, args.messages)
        service = start(
            [str(BIN / "wa-outbound"), "serve", "--no-migrate", "--port", str(port)],
            env,
            log=ROOT / "bench" / "dispatch-service.log",
        )
        processes.append(service)
        profiler = _profile(service.pid) if args.profile else None
        peak = await _wait_accepted(dsn, args.messages, service.pid, timeout_s=600)
        if profiler is not None:
            profiler.send_signal(__import__("signal").SIGINT)
            profiler.wait()
        figures = await _throughput(dsn)
        wait_http(f"http://127.0.0.1:{port}/health/live")
        latencies = await _latency(
            f"http://127.0.0.1:{port}", key, dsn, phones, args.latency_samples
        )
        peak = max(peak, rss_mb(service.pid))
    finally:
        for process in reversed(processes):
            stop(process)
        await drop_database(dsn)
    results: dict[str, Any] = {
        "dispatch_messages": args.messages,
        "dispatch_accepted": figures["accepted"],
        "dispatch_msgs_per_s": figures["accepted"] / figures["seconds"],
        "enqueue_to_accepted_p50_ms": percentile(latencies, 50),
        "enqueue_to_accepted_p99_ms": percentile(latencies, 99),
        "rss_mb_peak": peak,
    }
    print(
        table(
            [
                ("dispatch_msgs_per_s", results["dispatch_msgs_per_s"], "target >= 2,000"),
                (
                    "enqueue_to_accepted_p50_ms",
                    results["enqueue_to_accepted_p50_ms"],
                    "target <= 20",
                ),
                ("enqueue_to_accepted_p99_ms", results["enqueue_to_accepted_p99_ms"], ""),
                ("rss_mb_peak", results["rss_mb_peak"], "target <= 200"),
            ]
        )
    )
    print(f"written to {write_results('dispatch', results)}")


if __name__ == "__main__":
    asyncio.run(main())
