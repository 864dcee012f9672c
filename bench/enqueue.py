"""Enqueue benchmark on PostgreSQL: `POST /v1/messages` (single, 32 connections) and
`POST /v1/messages/batch` (1,000 messages a request) through the real `wa-outbound serve`, beside
its two baselines measured in the same run: pgbench-style single-row inserts through asyncpg (the
ceiling) and a bare FastAPI endpoint doing one asyncpg INSERT (bench/baseline_app.py, the floor).

The service runs with its dispatcher off, so the figures are the API's alone. Load comes from a
separate process (wrk, else bench/load.py's aiohttp loop).

    .venv/bin/python bench/enqueue.py [--quick] [--profile]
"""

from __future__ import annotations

import argparse
import asyncio
import json
import signal
import sys
import time
import uuid
from typing import Any

import asyncpg
import uvloop

import load
from _support import (
    BIN,
    ROOT,
    TEMPLATE,
    cloud_env,
    cpu_seconds,
    create_database,
    drop_database,
    free_port,
    migrate,
    prepare_org,
    rss_mb,
    serve,
    start,
    stop,
    table,
    wait_http,
    write_results,
)
from baseline_app import INSERT, TABLE

CONNECTIONS = 32
BATCH_SIZE = 1000
BATCH_CONNECTIONS = 4
PHONE = "+33612345678"
# A batch goes to a thousand different recipients, each with its consent, as a campaign would.
BATCH_PHONES = [f"+3361{i:07d}" for i in range(1, BATCH_SIZE + 1)]


def _body() -> bytes:
    return json.dumps({"to": PHONE, "template": TEMPLATE, "metadata": {"order_id": "42"}}).encode()


def _batch_body() -> bytes:
    items = [{"to": p, "template": TEMPLATE, "metadata": {"order_id": "42"}} for p in BATCH_PHONES]
    return json.dumps({"messages": items}).encode()


def _measured(
    url: str, body: bytes, headers: dict[str, str], pid: int, **kw: Any
) -> dict[str, Any]:
    """One load run, with the server's CPU seconds over it (the machine is shared)."""
    before = cpu_seconds(pid)
    result = load.run(url, body, headers, **kw)
    cpu = cpu_seconds(pid) - before
    result["server_cpu_percent"] = round(100 * cpu / result["seconds"], 1)
    result["requests_per_server_cpu_s"] = round(result["requests"] / cpu, 1) if cpu else None
    return result


async def pgbench_inserts(dsn: str, *, connections: int, duration_s: float) -> dict[str, Any]:
    """The ceiling: `connections` tasks, each on its own connection, inserting one row at a
    time in autocommit (what pgbench's single-insert script does), for `duration_s`."""
    pool = await asyncpg.create_pool(dsn, min_size=connections, max_size=connections)
    latencies: list[float] = []
    payload = json.dumps(TEMPLATE)
    try:
        await pool.execute(TABLE)
        until = time.perf_counter() + duration_s

        async def worker() -> None:
            async with pool.acquire() as conn:
                while time.perf_counter() < until:
                    started = time.perf_counter()
                    await conn.execute(INSERT, uuid.uuid4(), "bench", PHONE, payload)
                    latencies.append(time.perf_counter() - started)

        started = time.perf_counter()
        await asyncio.gather(*(worker() for _ in range(connections)))
        seconds = time.perf_counter() - started
    finally:
        await pool.close()
    ordered = sorted(latencies)
    return {
        "requests": len(ordered),
        "seconds": round(seconds, 3),
        "requests_per_s": round(len(ordered) / seconds, 1),
        "p50_ms": ordered[len(ordered) // 2] * 1000,
        "p99_ms": ordered[int(len(ordered) * 0.99)] * 1000,
    }


def _profile(pid: int, name: str) -> Any:
    """py-spy (in the dev venv) writing collapsed stacks of the service to bench/."""
    out = ROOT / "bench" / f"profile-{name}.txt"
    return start(
        [
            str(BIN / "py-spy"),
            "record",
            "--pid",
            str(pid),
            "--rate",
            "250",
            "--format",
            "raw",
            "--output",
            str(out),
            "--nonblocking",
        ]
    )


async def run(quick: bool = False, profile: bool = False) -> dict[str, Any]:
    duration_s, warmup_s = (2.0, 1.0) if quick else (15.0, 2.0)
    dsn, url = await create_database()
    port, base_port = free_port(), free_port()
    env = cloud_env(
        url,
        9,  # never called: the dispatcher is off
        token="bench",
        WA_DISPATCH_ENABLED="false",
    )
    results: dict[str, Any] = {}
    try:
        migrate(env)
        _org, key = await prepare_org(dsn, env, [PHONE, *BATCH_PHONES])
        results["pgbench_inserts"] = await pgbench_inserts(
            dsn, connections=CONNECTIONS, duration_s=duration_s
        )
        baseline = start(
            [
                sys.executable,
                str(ROOT / "bench" / "baseline_app.py"),
                "--dsn",
                dsn,
                "--port",
                str(base_port),
            ]
        )
        try:
            wait_http(f"http://127.0.0.1:{base_port}/health/live")
            target = f"http://127.0.0.1:{base_port}/insert"
            headers = {"Content-Type": "application/json"}
            load.run(target, _body(), headers, connections=CONNECTIONS, duration_s=warmup_s)
            results["bare_fastapi_insert"] = _measured(
                target, _body(), headers, baseline.pid,
                connections=CONNECTIONS, duration_s=duration_s,
            )  # fmt: skip
        finally:
            stop(baseline)
        service = serve(env, port, log=ROOT / "bench" / "enqueue-service.log")
        try:
            target = f"http://127.0.0.1:{port}/v1/messages"
            headers = {"Content-Type": "application/json", "Authorization": f"Bearer {key}"}
            load.run(target, _body(), headers, connections=CONNECTIONS, duration_s=warmup_s)
            profiler = _profile(service.pid, "enqueue-single") if profile else None
            results["single"] = _measured(
                target, _body(), headers, service.pid,
                connections=CONNECTIONS, duration_s=duration_s,
            )  # fmt: skip
            if profiler is not None:
                profiler.send_signal(signal.SIGINT)
                profiler.wait()
            profiler = _profile(service.pid, "enqueue-batch") if profile else None
            results["batch"] = _measured(
                target + "/batch", _batch_body(), headers, service.pid,
                connections=BATCH_CONNECTIONS, duration_s=duration_s,
            )  # fmt: skip
            if profiler is not None:
                profiler.send_signal(signal.SIGINT)
                profiler.wait()
            results["rss_mb"] = rss_mb(service.pid)
        finally:
            stop(service)
    finally:
        await drop_database(dsn)
    results["load_tool"] = load.tool()
    return results


def figures(r: dict[str, Any]) -> dict[str, Any]:
    """The result keys of the issue, from a `run`."""
    single, bare, ceiling = r["single"], r["bare_fastapi_insert"], r["pgbench_inserts"]
    return {
        "enqueue_single_req_per_s": single["requests_per_s"],
        "enqueue_single_p50_ms": single["p50_ms"],
        "enqueue_single_p99_ms": single["p99_ms"],
        "enqueue_single_errors": single["errors"],
        "enqueue_batch_msgs_per_s": r["batch"]["requests_per_s"] * BATCH_SIZE,
        "enqueue_batch_p99_ms": r["batch"]["p99_ms"],
        "baseline_bare_fastapi_insert_req_per_s": bare["requests_per_s"],
        "baseline_bare_fastapi_insert_p99_ms": bare["p99_ms"],
        "baseline_asyncpg_inserts_per_s": ceiling["requests_per_s"],
        "ratio_enqueue_single_to_bare_fastapi": single["requests_per_s"] / bare["requests_per_s"],
        "ratio_enqueue_single_to_asyncpg_inserts": single["requests_per_s"]
        / ceiling["requests_per_s"],
        "ratio_enqueue_batch_to_asyncpg_inserts": r["batch"]["requests_per_s"]
        * BATCH_SIZE
        / ceiling["requests_per_s"],
    }


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--quick", action="store_true")
    parser.add_argument("--profile", action="store_true", help="py-spy the service")
    args = parser.parse_args()
    results = uvloop.run(run(args.quick, args.profile))
    shown = figures(results)
    print(table([(name, value, "") for name, value in shown.items()]))
    print(f"written to {write_results('enqueue', {**results, **shown})}")


if __name__ == "__main__":
    main()
