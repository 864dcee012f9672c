"""Callback delivery benchmark: deliveries/s of the delivery worker to a local receiver, beside a
bare aiohttp POST loop to the same receiver (same concurrency, same connection limit, same body
size and headers) measured in the same run, before and after the worker. PostgreSQL; run from
the repository:

    .venv/bin/python bench/callbacks.py [--quick] [--rounds N] [--profile]

The receiver is a process of its own (aiohttp on uvloop, answering 200 at once). The worker
runs in this process with the settings' claim, signing, SSRF check and batched outcome writes,
on deliveries written as the emission writes them: three events per message, so each message's
events go one after the other. Targets: at least 2,000 deliveries/s, and at least half the bare
loop's rate.
"""

from __future__ import annotations

import argparse
import asyncio
import base64
import os
import signal
import statistics
import subprocess
import sys
import time
import uuid
from datetime import UTC, datetime
from pathlib import Path
from typing import Any

import aiohttp
import asyncpg
import orjson
import uvloop
from aiohttp import web

from _cpu import postgres_cpu
from _support import (
    cpu_seconds,
    create_database,
    drop_database,
    free_port,
    migrate,
    service_env,
    start,
    table,
    wait_http,
    write_results,
)

CONCURRENCY = 64  # WA_CALLBACK_CONCURRENCY's default
EVENTS_PER_MESSAGE = 3
TARGET_PER_S = 2_000
TARGET_RATIO = 0.5
SIGNATURE = "v1," + base64.b64encode(bytes(32)).decode()


def _receiver(port: int) -> None:
    """The organisation's app: reads each request and answers 200."""

    async def handle(request: web.Request) -> web.Response:
        await request.read()
        return web.Response(text="ok")

    app = web.Application()
    app.router.add_post("/{tail:.*}", handle)
    app.router.add_get("/health", lambda _r: handle(_r))
    web.run_app(
        app, host="127.0.0.1", port=port, access_log=None, print=None, loop=uvloop.new_event_loop()
    )


def _data(message_id: uuid.UUID) -> dict[str, Any]:
    """A message event's data, about the size of a real one (~1 KB of JSON)."""
    return {
        "message": {
            "id": str(message_id),
            "status": "SENT",
            "to": "+33612345678",
            "kind": "template",
            "template": {
                "name": "order_update",
                "language": "en_US",
                "components": [{"type": "body", "parameters": [{"type": "text", "text": "42"}]}],
            },
            "provider_message_id": "wamid." + "A" * 48,
            "attempts": 1,
            "metadata": {"order": "4711", "note": "x" * 400},
            "created_at": "2026-12-02T10:00:00Z",
            "updated_at": "2026-12-02T10:00:01Z",
        }
    }


async def _write_deliveries(dsn: str, endpoint_url: str, secret: str, key: str, n: int) -> None:
    from wa_outbound.crypto import Keyring

    now = datetime.now(UTC)
    conn = await asyncpg.connect(dsn)
    try:
        org_id = f"bench-{uuid.uuid4().hex[:8]}"
        await conn.execute(
            "INSERT INTO organization (id, name, created_at) VALUES ($1, $1, $2)", org_id, now
        )
        endpoint_id = uuid.uuid4()
        await conn.execute(
            "INSERT INTO callback_endpoint (id, org_id, url, enabled, secret, created_at,"
            " updated_at) VALUES ($1, $2, $3, true, $4, $5, $5)",
            endpoint_id,
            org_id,
            endpoint_url,
            Keyring([key]).encrypt(secret),
            now,
        )
        events, deliveries = [], []
        seq = 0
        for _ in range(n // EVENTS_PER_MESSAGE):
            message_id = uuid.uuid4()
            data = orjson.dumps(_data(message_id)).decode()
            for kind in ("message.accepted", "message.sent", "message.delivered"):
                seq += 1
                events.append((seq, uuid.uuid4(), org_id, kind, message_id, now, data))
                deliveries.append(
                    (
                        uuid.uuid4(),
                        endpoint_id,
                        seq,
                        org_id,
                        message_id,
                        "pending",
                        0,
                        now,
                        now,
                        now,
                    )
                )
        await conn.copy_records_to_table(
            "callback_event",
            columns=["seq", "id", "org_id", "type", "message_id", "occurred_at", "data"],
            records=events,
        )
        await conn.copy_records_to_table(
            "callback_delivery",
            columns=[
                "id",
                "endpoint_id",
                "event_seq",
                "org_id",
                "message_id",
                "status",
                "attempts",
                "next_attempt_at",
                "created_at",
                "updated_at",
            ],
            records=deliveries,
        )
        await conn.execute("ANALYZE callback_delivery; ANALYZE callback_event")
    finally:
        await conn.close()


async def _a_body(dsn: str) -> bytes:
    """The body the worker sends for one of the events written: the bare loop sends as much."""
    from wa_outbound.events.outgoing import body

    conn = await asyncpg.connect(dsn)
    try:
        event = await conn.fetchrow(
            "SELECT seq, id, type, occurred_at, data::text AS data, message_id"
            " FROM callback_event ORDER BY seq LIMIT 1"
        )
    finally:
        await conn.close()
    return body(
        event_id=event["id"],
        seq=event["seq"],
        type=event["type"],
        occurred_at=event["occurred_at"],
        data=event["data"],
        message_id=event["message_id"],
    )


async def _bare_loop(url: str, body: bytes, n: int) -> float:
    """Deliveries/s of `n` POSTs by CONCURRENCY tasks sharing one session: the ceiling."""
    connector = aiohttp.TCPConnector(limit=CONCURRENCY, limit_per_host=CONCURRENCY)
    remaining = n
    async with aiohttp.ClientSession(connector=connector) as session:

        async def loop() -> None:
            nonlocal remaining
            while remaining > 0:
                remaining -= 1
                # The worker's headers, with a signature of the same size (not computed).
                headers = {
                    "content-type": "application/json",
                    "user-agent": "wa-outbound-webhooks/1",
                    "webhook-id": str(uuid.uuid4()),
                    "webhook-timestamp": str(int(time.time())),
                    "webhook-signature": SIGNATURE,
                }
                async with session.post(url, data=body, headers=headers) as response:
                    await response.read()
                    assert response.status == 200

        started = time.perf_counter()
        await asyncio.gather(*(loop() for _ in range(CONCURRENCY)))
        return n / (time.perf_counter() - started)


async def _worker_run(
    database_url: str, dsn: str, key: str, n: int, profile: bool, receiver: int
) -> dict[str, float]:
    from wa_outbound.callbacks.worker import CallbackWorker
    from wa_outbound.config import Settings
    from wa_outbound.crypto import Keyring
    from wa_outbound.db.engine import create_engine
    from wa_outbound.metrics import Metrics

    settings = Settings(
        _env_file=None,  # type: ignore[call-arg]
        database_url=database_url,
        provider="sandbox",
        secret_keys=key,
        callback_allow_insecure=True,
        callback_concurrency=CONCURRENCY,
        # One receiver: the connection limit of the bare loop.
        callback_per_host_connections=CONCURRENCY,
        log_level="WARNING",
    )
    engine = create_engine(settings)
    metrics = Metrics()
    worker = CallbackWorker(
        settings=settings, engine=engine, metrics=metrics, decrypt=Keyring([key]).decrypt
    )
    db = await asyncpg.connect(dsn)
    postgres = await postgres_cpu(db)
    profiler = _profile() if profile else None
    try:
        others = (postgres(), cpu_seconds(receiver))
        started = time.perf_counter()
        task = asyncio.create_task(worker.run())
        # The worker's own count first (a count over the table every 50 ms took a fifth of
        # PostgreSQL's time), then the database's, for the last outcomes' write.
        succeeded = metrics.callback_deliveries.labels(result="succeeded")
        while not task.done():
            if succeeded._value.get() >= n and not await db.fetchval(
                "SELECT count(*) FROM callback_delivery WHERE status <> 'succeeded'"
            ):
                break
            await asyncio.sleep(0.01)
        elapsed = time.perf_counter() - started
        others = (postgres() - others[0], cpu_seconds(receiver) - others[1])
        await worker.stop()
        await task
    finally:
        if profiler is not None:
            profiler.send_signal(signal.SIGINT)
            profiler.wait()
        await db.close()
        await engine.dispose()
    latency = metrics.callback_latency.labels(outcome="success")
    count = metrics.callback_deliveries.labels(result="succeeded")._value.get()
    return {
        "deliveries_per_s": n / elapsed,
        "succeeded": count,
        "mean_attempt_ms": 1000 * latency._sum.get() / max(count, 1),
        # PostgreSQL's (the whole server's) and the receiver's CPU per delivery meanwhile.
        "postgres_cpu_us": others[0] / n * 1e6,
        "receiver_cpu_us": others[1] / n * 1e6,
    }


def _profile() -> subprocess.Popen[bytes]:
    """py-spy (pip install py-spy) on this process while the worker runs, writing collapsed
    stacks to bench/profile-callbacks.txt."""
    output = Path(__file__).parent / "profile-callbacks.txt"
    py_spy = str(Path(sys.executable).parent / "py-spy")
    command = [py_spy, "record", "--pid", str(os.getpid()), "--rate", "200", "--format", "raw"]
    return start([*command, "--output", str(output), "--nonblocking"])


async def run(quick: bool, profile: bool = False) -> dict[str, Any]:
    n = 6_000 if quick else 30_000
    key = base64.urlsafe_b64encode(os.urandom(32)).decode()
    secret = "whsec_" + base64.b64encode(os.urandom(32)).decode()
    port = free_port()
    receiver = start([sys.executable, str(Path(__file__)), "--receiver", str(port)])
    dsn, database_url = await create_database("wa_bench_callbacks")
    try:
        await asyncio.to_thread(wait_http, f"http://127.0.0.1:{port}/health")
        await asyncio.to_thread(migrate, service_env(database_url, WA_PROVIDER="sandbox"))
        url = f"http://127.0.0.1:{port}/hooks/bench"
        await _write_deliveries(dsn, url, secret, key, n)
        body = await _a_body(dsn)
        cpu = [time.process_time()]
        receiver_cpu = cpu_seconds(receiver.pid)
        bare_before = await _bare_loop(url, body, n)
        receiver_cpu = cpu_seconds(receiver.pid) - receiver_cpu
        cpu.append(time.process_time())
        worker = await _worker_run(database_url, dsn, key, n, profile, receiver.pid)
        cpu.append(time.process_time())
        bare_after = await _bare_loop(url, body, n)
        cpu.append(time.process_time())
    finally:
        receiver.terminate()
        receiver.wait(timeout=10)
        await drop_database(dsn)
    bare = (bare_before + bare_after) / 2
    return {
        "deliveries": n,
        "concurrency": CONCURRENCY,
        "body_bytes": len(body),
        "worker_deliveries_per_s": round(worker["deliveries_per_s"], 1),
        "worker_mean_attempt_ms": round(worker["mean_attempt_ms"], 2),
        # CPU of this process per delivery (the bench also polls its counter every 10 ms): it
        # moves less with the machine's load than the rates do.
        "worker_cpu_us_per_delivery": round((cpu[2] - cpu[1]) / n * 1e6),
        "bare_loop_cpu_us_per_request": round((cpu[1] - cpu[0] + cpu[3] - cpu[2]) / (2 * n) * 1e6),
        "postgres_cpu_us_per_delivery": round(worker["postgres_cpu_us"]),
        "receiver_cpu_us_per_delivery": round(worker["receiver_cpu_us"]),
        "receiver_cpu_us_per_bare_request": round(receiver_cpu / n * 1e6),
        "bare_loop_per_s_before": round(bare_before, 1),
        "bare_loop_per_s_after": round(bare_after, 1),
        "ratio_worker_to_bare": round(worker["deliveries_per_s"] / bare, 3),
        # The names bench/run.py's table uses.
        "callback_deliveries_per_s": round(worker["deliveries_per_s"], 1),
        "baseline_bare_aiohttp_to_receiver_per_s": round(bare, 1),
        "ratio_callbacks_to_bare_aiohttp": round(worker["deliveries_per_s"] / bare, 3),
        "load_average_1m": round(os.getloadavg()[0], 2),
    }


def _rounds(quick: bool, rounds: int) -> None:
    """`rounds` runs in a row: each run's figures, their medians, and how many runs met each
    target (the ratio moves by more between two runs than most changes are worth)."""
    runs = []
    for i in range(rounds):
        result = uvloop.run(run(quick))
        runs.append(result)
        print(
            f"run {i + 1}: {result['worker_deliveries_per_s']:,.0f}/s, bare "
            f"{result['baseline_bare_aiohttp_to_receiver_per_s']:,.0f}/s, ratio "
            f"{result['ratio_worker_to_bare']:.2f}, CPU µs {result['worker_cpu_us_per_delivery']}"
            f" / {result['bare_loop_cpu_us_per_request']} (PostgreSQL "
            f"{result['postgres_cpu_us_per_delivery']}, receiver "
            f"{result['receiver_cpu_us_per_delivery']} / "
            f"{result['receiver_cpu_us_per_bare_request']}), load {result['load_average_1m']}",
            flush=True,
        )
    rates = [r["worker_deliveries_per_s"] for r in runs]
    ratios = [r["ratio_worker_to_bare"] for r in runs]
    cpu = [r["worker_cpu_us_per_delivery"] / r["bare_loop_cpu_us_per_request"] for r in runs]
    summary = {
        "rounds": rounds,
        "runs": runs,
        "median_worker_deliveries_per_s": statistics.median(rates),
        "median_ratio_worker_to_bare": statistics.median(ratios),
        "median_cpu_worker_to_bare": statistics.median(cpu),
        "runs_at_or_above_rate_target": sum(rate >= TARGET_PER_S for rate in rates),
        "runs_at_or_above_ratio_target": sum(ratio >= TARGET_RATIO for ratio in ratios),
    }
    print(table([(k, v, "") for k, v in summary.items() if k != "runs"]))
    print(f"written to {write_results('callbacks-rounds', summary)}")


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("--quick", action="store_true", help="6,000 deliveries instead of 30,000")
    parser.add_argument("--profile", action="store_true", help="py-spy the worker")
    parser.add_argument("--rounds", type=int, default=1, help="runs, each with its own bare loop")
    parser.add_argument("--receiver", type=int, help=argparse.SUPPRESS)
    args = parser.parse_args()
    if args.receiver:
        _receiver(args.receiver)
        return
    # The collector as the service sets it (`serve`), for the worker and the bare loop alike.
    from wa_outbound.cli.gc_tuning import tune_gc

    tune_gc()
    if args.rounds > 1:
        _rounds(args.quick, args.rounds)
        return
    results = uvloop.run(run(args.quick, args.profile))
    print(
        table(
            [
                ("worker deliveries/s", results["worker_deliveries_per_s"], f">= {TARGET_PER_S:,}"),
                (
                    "bare aiohttp loop/s (mean)",
                    (results["bare_loop_per_s_before"] + results["bare_loop_per_s_after"]) / 2,
                    "",
                ),
                ("worker / bare", results["ratio_worker_to_bare"], f">= {TARGET_RATIO}"),
                ("mean attempt (ms)", results["worker_mean_attempt_ms"], ""),
                ("worker CPU µs / delivery", results["worker_cpu_us_per_delivery"], ""),
                ("bare loop CPU µs / request", results["bare_loop_cpu_us_per_request"], ""),
                ("deliveries", results["deliveries"], ""),
            ]
        )
    )
    print(f"written to {write_results('callbacks', results)}")


if __name__ == "__main__":
    main()
