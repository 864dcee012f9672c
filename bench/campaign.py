"""End-to-end campaign figure (issue #21): 10,000 messages queued in batches of 1,000 through
`POST /v1/messages/batch` while the dispatcher of the same service sends them to the fake Meta;
the time from the first enqueue to the last send accepted, and its rate beside the bare aiohttp
loop to the same fake in the same run. PostgreSQL, the database limiter; run from the repository:

    .venv/bin/python bench/campaign.py [--quick] [--messages N] [--redis-url URL]
"""

from __future__ import annotations

import argparse
import asyncio
import json
import time
from typing import Any

import aiohttp
import asyncpg
import uvloop

import fake_meta_ceiling
from _support import (
    BIN,
    ROOT,
    TEMPLATE,
    cloud_env,
    cpu_seconds,
    create_database,
    drop_database,
    free_port,
    insert_senders,
    migrate,
    prepare_org,
    rss_mb,
    start,
    start_fake_meta,
    stop,
    table,
    wait_http,
    write_results,
)
from dispatch import DISPATCH_CONCURRENCY, TOKEN

BATCH = 1_000
PHONES = [f"+3362{i:07d}" for i in range(1, BATCH + 1)]


def _bodies(messages: int) -> list[bytes]:
    """The campaign's batches, each to the same thousand recipients (the benchmarks' service runs
    without the pair interval: _support.service_env)."""
    bodies = []
    for start_at in range(0, messages, BATCH):
        items = [
            {"to": PHONES[i % BATCH], "template": TEMPLATE}
            for i in range(start_at, min(messages, start_at + BATCH))
        ]
        bodies.append(json.dumps({"messages": items}).encode())
    return bodies


async def _enqueue(base_url: str, key: str, bodies: list[bytes]) -> float:
    """Posts the batches one after another; returns the wall-clock time of the first POST."""
    headers = {"Authorization": f"Bearer {key}", "Content-Type": "application/json"}
    async with aiohttp.ClientSession(base_url) as session:
        first = time.time()
        for body in bodies:
            async with session.post("/v1/messages/batch", data=body, headers=headers) as r:
                assert r.status in (200, 201, 202, 207), await r.text()
                await r.read()
    return first


async def _finished(dsn: str, messages: int, pid: int, timeout_s: float) -> dict[str, float]:
    conn = await asyncpg.connect(dsn)
    peak = 0.0
    try:
        deadline = time.monotonic() + timeout_s
        while time.monotonic() < deadline:
            peak = max(peak, rss_mb(pid))
            row = await conn.fetchrow(
                "SELECT count(*) FILTER (WHERE status = 'ACCEPTED') AS accepted, "
                "extract(epoch FROM max(accepted_at)) AS last FROM outbound_message"
            )
            if row["accepted"] >= messages:
                return {"accepted": row["accepted"], "last": float(row["last"]), "rss": peak}
            await asyncio.sleep(0.25)
        raise RuntimeError(f"only {row['accepted']} of {messages} accepted in {timeout_s} s")
    finally:
        await conn.close()


async def run(messages: int, redis_url: str = "") -> dict[str, Any]:
    dsn, url = await create_database()
    fake_port, port = free_port(), free_port()
    env = cloud_env(url, fake_port, token=TOKEN, redis_url=redis_url, WA_CALLBACK_ENABLED="false")
    processes = []
    try:
        migrate(env)
        fake = start_fake_meta(fake_port, token=TOKEN)
        processes.append(fake)
        ceiling = await fake_meta_ceiling.measure(
            f"http://127.0.0.1:{fake_port}",
            fake.pid,
            concurrency=DISPATCH_CONCURRENCY,
            duration_s=10.0,
        )
        org_id, key = await prepare_org(dsn, env, PHONES)
        await insert_senders(
            dsn, org_id, 0, token=TOKEN
        )  # the shared sender's row, far above the load
        service = start(
            [str(BIN / "wa-outbound"), "serve", "--no-migrate", "--port", str(port)],
            env,
            log=ROOT / "bench" / "campaign-service.log",
        )
        processes.append(service)
        base_url = f"http://127.0.0.1:{port}"
        wait_http(base_url + "/health/live")
        cpu_before = cpu_seconds(service.pid)
        first = await _enqueue(base_url, key, _bodies(messages))
        done = await _finished(dsn, messages, service.pid, timeout_s=600)
        cpu_ms = 1000 * (cpu_seconds(service.pid) - cpu_before) / messages
    finally:
        for process in reversed(processes):
            stop(process)
        await drop_database(dsn)
    seconds = done["last"] - first
    rate = messages / seconds
    return {
        "campaign_messages": messages,
        "campaign_seconds_first_enqueue_to_last_accepted": seconds,
        "campaign_msgs_per_s": rate,
        "campaign_service_cpu_ms_per_message": cpu_ms,
        "rss_mb_peak": done["rss"],
        "baseline_bare_aiohttp_to_fake_meta_req_per_s": ceiling["requests_per_s"],
        "ratio_campaign_to_bare_aiohttp": rate / ceiling["requests_per_s"],
    }


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--quick", action="store_true", help="2,000 messages")
    parser.add_argument("--messages", type=int, default=10_000)
    parser.add_argument("--redis-url", default="", help="the limiter on this Redis")
    args = parser.parse_args()
    messages = 2_000 if args.quick else args.messages
    results = uvloop.run(run(messages, args.redis_url))
    print(table([(name, value, "") for name, value in results.items()]))
    print(f"written to {write_results('campaign', results)}")


if __name__ == "__main__":
    main()
