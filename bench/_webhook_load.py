"""The HTTP side of bench/webhooks.py: a closed loop of prepared POSTs from aiohttp, and the
bare FastAPI + asyncpg INSERT endpoint (bench/baseline_app.py) measured with the same loop."""

from __future__ import annotations

import asyncio
import statistics
import sys
import time
from typing import Any

import aiohttp
import orjson

from _support import ROOT, TEMPLATE, cpu_seconds, free_port, start, stop, wait_http


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
                if not 200 <= response.status < 300:
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


async def timed(
    session: aiohttp.ClientSession,
    url: str,
    payloads: list[tuple[bytes, str, int]],
    workers: int,
    pid: int | None,
) -> dict[str, Any]:
    """`load`, with the CPU the process `pid` spent during it."""
    before = cpu_seconds(pid) if pid else 0.0
    result = await load(session, url, payloads, workers)
    if pid:
        cpu = cpu_seconds(pid) - before
        result["service_cpu_s"] = round(cpu, 2)
        result["service_cpu_ms_per_request"] = round(cpu * 1000 / result["requests"], 2)
    return result


def baseline_payloads(count: int) -> list[tuple[bytes, str, int]]:
    body = orjson.dumps({"to": "+33612345678", "template": TEMPLATE})
    return [(body, "", 1)] * count


async def bare_endpoint(
    dsn: str, levels: tuple[int, ...], requests: int
) -> dict[int, dict[str, Any]]:
    """The framework's floor: bench/baseline_app.py, `requests` POSTs at each level."""
    port = free_port()
    process = start(
        [sys.executable, str(ROOT / "bench" / "baseline_app.py"), "--dsn", dsn, "--port", str(port)]
    )
    out: dict[int, dict[str, Any]] = {}
    try:
        wait_http(f"http://127.0.0.1:{port}/health/live")
        target = f"http://127.0.0.1:{port}/insert"
        connector = aiohttp.TCPConnector(limit=max(levels))
        async with aiohttp.ClientSession(connector=connector) as session:
            await load(session, target, baseline_payloads(500), max(levels))  # warm-up
            for level in levels:
                out[level] = await timed(
                    session, target, baseline_payloads(requests), level, process.pid
                )
    finally:
        stop(process)
    return out
