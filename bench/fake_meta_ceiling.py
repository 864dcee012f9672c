"""How fast the fake Meta Graph API answers sends: the ceiling any benchmark of the service against
it can reach. Starts `tests/fake_meta.py` as its own process, drives it with aiohttp (one session,
`--concurrency` connections) for `--duration-s` or `--requests`, prints requests/s and latency
percentiles, and writes them to bench/results-fake-meta.json.

The CPU share of each process says who was the bottleneck: the fake near 100 % of a core means
the fake is the limit; the client near 100 % means the fake could go faster. Requests per CPU
second of the fake is its ceiling on one free core, and moves less when the machine is shared.

    .venv/bin/python bench/fake_meta_ceiling.py [--duration-s 10] [--requests N]
"""

from __future__ import annotations

import argparse
import asyncio
import json
import statistics
import sys
import time
from datetime import UTC, datetime
from pathlib import Path
from typing import Any

import aiohttp
import orjson
import uvloop

from _support import cpu_seconds, free_port, machine

ROOT = Path(__file__).resolve().parent.parent
TOKEN = "bench-token"
PATH = "/v21.0/106540352242922/messages"


def send_body(n: int) -> bytes:
    return orjson.dumps(
        {
            "messaging_product": "whatsapp",
            "recipient_type": "individual",
            "to": f"+336{n % 100_000_000:08d}",
            "type": "template",
            "template": {"name": "order_update", "language": {"code": "en_US"}, "components": []},
        }
    )


async def wait_until_up(session: aiohttp.ClientSession, base_url: str) -> None:
    async with asyncio.timeout(30):
        while True:
            try:
                async with session.get(base_url + "/_fake/requests") as response:
                    if response.status == 200:
                        return
            except aiohttp.ClientConnectionError:
                pass
            await asyncio.sleep(0.05)


async def drive(
    session: aiohttp.ClientSession, url: str, *, concurrency: int, until: float, limit: int | None
) -> tuple[list[float], int]:
    """Sends from `concurrency` workers until the deadline or `limit` requests; (latencies in
    seconds of the 200s, count of other answers)."""
    latencies: list[float] = []
    errors = 0
    issued = 0
    headers = {"Authorization": f"Bearer {TOKEN}", "Content-Type": "application/json"}

    async def worker() -> None:
        nonlocal errors, issued
        while time.perf_counter() < until and (limit is None or issued < limit):
            issued += 1
            body = send_body(issued)
            started = time.perf_counter()
            async with session.post(url, data=body, headers=headers) as response:
                await response.read()
                if response.status == 200:
                    latencies.append(time.perf_counter() - started)
                else:
                    errors += 1

    await asyncio.gather(*(worker() for _ in range(concurrency)))
    return latencies, errors


async def measure(
    base_url: str,
    fake_pid: int | None,
    *,
    concurrency: int,
    duration_s: float,
    requests: int | None = None,
    warmup_s: float = 1.0,
) -> dict[str, Any]:
    """Drive a running fake Meta at `base_url` (process `fake_pid`, for its CPU share)."""
    connector = aiohttp.TCPConnector(limit=concurrency)
    async with aiohttp.ClientSession(connector=connector) as session:
        await wait_until_up(session, base_url)
        # Warm up: open the connections and let both processes settle.
        await drive(
            session,
            base_url + PATH,
            concurrency=concurrency,
            until=time.perf_counter() + warmup_s,
            limit=None,
        )
        async with session.post(base_url + "/_fake/reset") as response:
            await response.read()
        fake_cpu_before = cpu_seconds(fake_pid) if fake_pid else None
        client_cpu_before = time.process_time()
        started = time.perf_counter()
        latencies, errors = await drive(
            session,
            base_url + PATH,
            concurrency=concurrency,
            until=started + duration_s,
            limit=requests,
        )
        elapsed = time.perf_counter() - started
        fake_cpu_after = cpu_seconds(fake_pid) if fake_pid else None
        client_cpu_after = time.process_time()
        async with session.get(base_url + "/_fake/requests") as response:
            seen = (await response.json())["total"]
        async with session.post(base_url + "/_fake/reset") as response:
            await response.read()

    quantiles = statistics.quantiles(latencies, n=100)
    sent = len(latencies) + errors
    fake_cpu = per_cpu_s = None
    if fake_cpu_before is not None and fake_cpu_after is not None:
        fake_cpu = round(100 * (fake_cpu_after - fake_cpu_before) / elapsed, 1)
        per_cpu_s = round(sent / (fake_cpu_after - fake_cpu_before))
    return {
        "benchmark": "fake_meta_ceiling",
        "at": datetime.now(UTC).isoformat(timespec="seconds"),
        "concurrency": concurrency,
        "duration_s": round(elapsed, 2),
        "requests": sent,
        "accepted": len(latencies),
        "errors": errors,
        "seen_by_fake": seen,
        "requests_per_s": round(sent / elapsed, 1),
        "p50_ms": round(quantiles[49] * 1000, 2),
        "p99_ms": round(quantiles[98] * 1000, 2),
        "fake_cpu_percent": fake_cpu,
        "fake_requests_per_cpu_s": per_cpu_s,
        "client_cpu_percent": round(100 * (client_cpu_after - client_cpu_before) / elapsed, 1),
        "client_cpu_ms_per_request": round(1000 * (client_cpu_after - client_cpu_before) / sent, 3),
    }


async def run(args: argparse.Namespace) -> dict[str, Any]:
    port = args.port or free_port()
    fake = await asyncio.create_subprocess_exec(
        sys.executable, str(ROOT / "tests" / "fake_meta.py"), "--port", str(port), "--token", TOKEN
    )
    try:
        return await measure(
            f"http://127.0.0.1:{port}",
            fake.pid,
            concurrency=args.concurrency,
            duration_s=args.duration_s,
            requests=args.requests,
            warmup_s=args.warmup_s,
        )
    finally:
        fake.terminate()
        await fake.wait()


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0] if __doc__ else None)
    parser.add_argument("--port", type=int, default=0, help="default: a free one")
    parser.add_argument("--concurrency", type=int, default=64)
    parser.add_argument("--duration-s", type=float, default=10.0)
    parser.add_argument("--requests", type=int, default=None, help="stop after this many")
    parser.add_argument("--warmup-s", type=float, default=1.0)
    parser.add_argument("--output", type=Path, default=ROOT / "bench" / "results-fake-meta.json")
    args = parser.parse_args()
    with asyncio.Runner(loop_factory=uvloop.new_event_loop) as runner:
        result = runner.run(run(args))
    args.output.write_text(json.dumps({"machine": machine(), **result}, indent=2) + "\n")
    print(
        f"fake Meta: {result['requests_per_s']:,.0f} requests/s at concurrency "
        f"{result['concurrency']} ({result['requests']:,} in {result['duration_s']} s, "
        f"{result['errors']} errors); p50 {result['p50_ms']} ms, p99 {result['p99_ms']} ms; "
        f"CPU fake {result['fake_cpu_percent']} %, client {result['client_cpu_percent']} %; "
        f"fake {result['fake_requests_per_cpu_s']} requests per CPU second"
    )


if __name__ == "__main__":
    main()
