"""Retention benchmark on PostgreSQL: enqueue latency through the real service while retention
deletes 200,000 old messages, beside the same load without retention, in the same run.

The database is seeded with old finished messages (each with its `queued` event and a wamid)
and old processed webhook bodies. The service (`wa-outbound serve`, sandbox provider, its
dispatcher on: the queued messages are sent and their statuses applied) runs with
`WA_RETENTION_DAYS=0`; retention runs in a process of its own, as the replica that holds the
retention lock would. A closed-loop load of `POST /v1/messages` (its own process) runs first
without retention, then while retention works through the backlog. The figures: p50, p99 and
max of the requests in each phase, and the slowest request with retention over the p99
without (the issue's bound: 2).

    .venv/bin/python bench/retention.py [--rows 200000] [--connections 8] [--baseline-s 30]
        [--with-s 120] [--batch-size 1000]
"""

from __future__ import annotations

import argparse
import asyncio
import json
import os
import subprocess
import sys
import time
import uuid
from datetime import UTC, datetime, timedelta
from pathlib import Path
from typing import Any

import aiohttp
import asyncpg
import uvloop

from _support import (
    BIN,
    ROOT,
    TEMPLATE,
    create_database,
    drop_database,
    free_port,
    migrate,
    percentile,
    prepare_org,
    serve,
    service_env,
    stop,
    table,
    write_results,
)

PHONES = [f"+3361{i:07d}" for i in range(1, 1001)]
PAYLOAD = json.dumps(TEMPLATE)


async def seed(dsn: str, org_id: str, rows: int) -> None:
    """`rows` DELIVERED messages last changed 100 days ago, with their `queued` events and a
    wamid each, and a quarter as many processed webhook bodies as old."""
    old = datetime.now(UTC) - timedelta(days=100)
    conn = await asyncpg.connect(dsn)
    try:
        for start in range(0, rows, 50_000):
            ids = [uuid.uuid4() for _ in range(start, min(rows, start + 50_000))]
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
                    "status",
                    "attempts",
                    "max_attempts",
                    "next_attempt_at",
                    "dead_lettered",
                    "created_at",
                    "updated_at",
                    "provider_message_id",
                    "sender_id",
                ],
                records=[
                    (
                        i,
                        org_id,
                        "WHATSAPP",
                        PHONES[n % len(PHONES)],
                        "template",
                        PAYLOAD,
                        "{}",
                        "DELIVERED",
                        1,
                        5,
                        old,
                        False,
                        old,
                        old,
                        f"wamid.{i.hex}",
                        uuid.UUID(int=0),
                    )
                    for n, i in enumerate(ids)
                ],
            )
            await conn.copy_records_to_table(
                "message_event",
                columns=["message_id", "org_id", "at", "type", "to_status", "actor", "details"],
                records=[(i, org_id, old, "queued", "QUEUED", "bench", "{}") for i in ids],
            )
            await conn.copy_records_to_table(
                "message_wamid",
                columns=["provider_message_id", "message_id", "org_id", "created_at"],
                records=[(f"wamid.dup.{i.hex}", i, org_id, old) for i in ids],
            )
        body = json.dumps({"object": "whatsapp_business_account", "entry": []}).encode()
        await conn.copy_records_to_table(
            "webhook_event",
            columns=["received_at", "body", "processed_at", "attempts"],
            records=[(old, body, old, 1) for _ in range(rows // 4)],
        )
        await conn.execute("ANALYZE")
    finally:
        await conn.close()


# --- the load: its own process, every request's (start time, seconds) ----------------------


async def _load(url: str, key: str, connections: int, duration_s: float) -> list[list[float]]:
    samples: list[list[float]] = []
    headers = {"Authorization": f"Bearer {key}", "Content-Type": "application/json"}
    deadline = time.time() + duration_s

    async def one(session: aiohttp.ClientSession, n: int) -> None:
        i = n
        while time.time() < deadline:
            body = {"to": PHONES[i % len(PHONES)], "template": TEMPLATE}
            i += connections
            began = time.time()
            async with session.post(url, json=body, headers=headers) as answer:
                await answer.read()
                if answer.status != 202:
                    raise RuntimeError(f"enqueue answered {answer.status}")
            samples.append([began, time.time() - began])

    limit = aiohttp.TCPConnector(limit=connections)
    async with aiohttp.ClientSession(connector=limit) as session:
        await asyncio.gather(*(one(session, n) for n in range(connections)))
    return samples


def load_process(url: str, key: str, connections: int, duration_s: float) -> subprocess.Popen[str]:
    return subprocess.Popen(
        [sys.executable, __file__, "--load", url, key, str(connections), str(duration_s)],
        stdout=subprocess.PIPE,
        text=True,
        cwd=ROOT,
    )


# --- retention: its own process, as the leading replica's worker ---------------------------


async def _retain(database_url: str, batch_size: int) -> dict[str, Any]:
    from wa_outbound.config import Settings
    from wa_outbound.db.engine import create_engine
    from wa_outbound.lifecycle.worker import RetentionWorker
    from wa_outbound.metrics import Metrics

    settings = Settings(
        _env_file=None,
        database_url=database_url,
        provider="sandbox",
        retention_batch_size=batch_size,
    )
    engine = create_engine(settings)
    worker = RetentionWorker(settings, engine, Metrics())
    began = time.time()
    try:
        deleted = await worker.run_once()
    finally:
        await worker.release()
        await engine.dispose()
    return {"began": began, "ended": time.time(), "deleted": dict(deleted or {})}


def _three(a: dict[str, float], b: dict[str, float], c: dict[str, float], key: str) -> str:
    return " / ".join(f"{d[key]:.0f}" for d in (a, b, c))


def summary(samples: list[list[float]]) -> dict[str, float]:
    latencies = [seconds * 1000 for _, seconds in samples]
    return {
        "requests": len(latencies),
        "p50_ms": percentile(latencies, 50),
        "p99_ms": percentile(latencies, 99),
        "max_ms": max(latencies, default=float("nan")),
    }


async def main(args: argparse.Namespace) -> None:
    dsn, url = await create_database("wa_bench_retention")
    service = None
    try:
        env = service_env(
            url,
            WA_PROVIDER="sandbox",
            WA_RETENTION_DAYS="0",
            WA_DISPATCH_ENABLED="true",
        )
        migrate(env)
        org_id, key = await prepare_org(dsn, env, PHONES)
        began = time.time()
        await seed(dsn, org_id, args.rows)
        print(f"seeded {args.rows:,} old messages in {time.time() - began:.1f} s", flush=True)
        port = free_port()
        service = serve(env, port)
        target = f"http://127.0.0.1:{port}/v1/messages"
        warm = load_process(target, key, args.connections, 5)
        await asyncio.to_thread(warm.communicate)
        without = load_process(target, key, args.connections, args.baseline_s)
        baseline = summary(json.loads((await asyncio.to_thread(without.communicate))[0]))
        loads = {"without": os.getloadavg()[0]}
        print(f"without retention: {baseline}", flush=True)
        # With retention: one load process runs before, during and after the deletes (`after_s`
        # past their end, so their time need not be known); each request counts in the phase
        # it began in, and the phase after is a second baseline next to the deletes.
        loaded = load_process(target, key, args.connections, args.with_s)
        await asyncio.sleep(2)  # the load's process started and connected first
        retain = await asyncio.to_thread(
            subprocess.run,
            [str(BIN / "python"), __file__, "--retain", url, str(args.batch_size)],
            capture_output=True,
            text=True,
            cwd=ROOT,
            check=True,
        )
        loads["with"] = os.getloadavg()[0]
        retained = json.loads(retain.stdout)
        samples = json.loads((await asyncio.to_thread(loaded.communicate))[0])
        loads["after"] = os.getloadavg()[0]
        began, ended = retained["began"], retained["ended"]
        with_retention = summary([s for s in samples if began <= s[0] <= ended])
        after = summary([s for s in samples if s[0] > ended])
        ratio = with_retention["max_ms"] / baseline["p99_ms"]
        ratio_after = with_retention["max_ms"] / after["p99_ms"]
        seconds = ended - began
        results = {
            "rows": args.rows,
            "connections": args.connections,
            "batch_size": args.batch_size,
            "without_retention": baseline,
            "with_retention": with_retention,
            "after_retention": after,
            "load_average_1m": loads,
            "retention_seconds": round(seconds, 2),
            "deleted": retained["deleted"],
            "max_with_over_p99_without": round(ratio, 2),
            "max_with_over_p99_after": round(ratio_after, 2),
        }
        print(
            table(
                [
                    (
                        "p50 without / with / after (ms)",
                        _three(baseline, with_retention, after, "p50_ms"),
                        "",
                    ),
                    (
                        "p99 without / with / after (ms)",
                        _three(baseline, with_retention, after, "p99_ms"),
                        "",
                    ),
                    (
                        "max without / with / after (ms)",
                        _three(baseline, with_retention, after, "max_ms"),
                        "",
                    ),
                    (
                        "requests without / with / after",
                        _three(baseline, with_retention, after, "requests"),
                        "",
                    ),
                    ("max with / p99 without", ratio, "≤ 2"),
                    ("max with / p99 after", ratio_after, "≤ 2"),
                    ("retention (s)", seconds, f"{args.rows:,} messages"),
                    ("load average (1 min)", str(loads), ""),
                ]
            )
        )
        print(json.dumps(retained["deleted"]))
        path = write_results("retention", results)
        print(f"results: {Path(path).relative_to(ROOT)}")
    finally:
        if service is not None:
            stop(service)
        await drop_database(dsn)


if __name__ == "__main__":
    if len(sys.argv) > 1 and sys.argv[1] == "--load":
        url, key, connections, duration = sys.argv[2:6]
        print(json.dumps(uvloop.run(_load(url, key, int(connections), float(duration)))))
    elif len(sys.argv) > 1 and sys.argv[1] == "--retain":
        print(json.dumps(uvloop.run(_retain(sys.argv[2], int(sys.argv[3])))))
    else:
        parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
        parser.add_argument("--rows", type=int, default=200_000)
        parser.add_argument("--connections", type=int, default=8)
        parser.add_argument("--baseline-s", type=float, default=30.0)
        parser.add_argument("--with-s", type=float, default=120.0)
        parser.add_argument("--batch-size", type=int, default=1000)
        uvloop.run(main(parser.parse_args()))
