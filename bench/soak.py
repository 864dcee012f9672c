"""Soak: the full lifecycle for a long while through the real service, on PostgreSQL + Redis:
a steady enqueue rate, the dispatcher sending to a fake Meta, and Meta's statuses (sent,
delivered, read for every message) flowing back through the webhook, one status per POST as
Meta posts them (`--statuses-per-post 100`: batched, as Meta does at high volume).

First, unless `--rate` is given, the isolated dispatch rate is measured on the same machine
(bench/dispatch.py: 20,000 queued messages, the dispatcher alone, with the same Redis), and the
soak offers half of it: the target is a lifecycle at >= 0.5x the isolated dispatch rate.
Runs on a PostgreSQL cluster of its own (tests/private_postgres.py, with PostgreSQL's default
settings) unless `--shared-postgres`. Reports per window the enqueue latency, the queue depth
(QUEUED, SENDING, RETRYING), the messages sent but not yet READ, the webhook bodies stored but
not yet applied, RSS and the load average; table and index sizes before and after (bloat); and
a summary with a verdict per line (met or MISSED) beside its target. Run from the repository
(`make soak`):

    .venv/bin/python bench/soak.py [--duration-s 120] [--rate N] [--window-s 10]
        [--replicas 1] [--statuses-per-post 1] [--status-concurrency 64]

With `--replicas N`, N service processes share the database (as replicas behind a load
balancer would); the load is spread over them in turn and Meta's webhooks go to the first.

Targets: lifecycle rate (messages READ per second) >= 0.5x the isolated dispatch rate; queue
depth, unread messages and unapplied bodies flat (grown by at most one second of the offered
rate from the first window to the last); 0 error lines; 0 failed enqueues; every message READ
once the last statuses are in; RSS growth < 10 % (from the end of the first window, once warm).
"""

from __future__ import annotations

import argparse
import asyncio
import json
import math
import os
import re
import sys
import time
import uuid
from typing import Any

import aiohttp
import asyncpg

from _cpu import soak_parts
from _soak_summary import summary, verdicts
from _support import (
    BIN,
    ROOT,
    TEMPLATE,
    cloud_env,
    create_database,
    drop_database,
    free_port,
    migrate,
    percentile,
    prepare_org,
    rss_mb,
    start,
    start_fake_meta,
    stop,
    wait_http,
    write_results,
)

# The tests' helpers: a private PostgreSQL cluster.
sys.path.insert(0, str(ROOT / "tests"))

TOKEN = "soak-token"
SECRET = "soak-app-secret"
PHONES = [f"+3361{i:07d}" for i in range(1, 1001)]
TABLES = ("outbound_message", "message_event", "webhook_event", "pending_status", "rate_limit")
PENDING = ("QUEUED", "SENDING", "RETRYING")
UNREAD = ("ACCEPTED", "SENT", "DELIVERED")


async def _top_throughput_tier(dsn: str) -> None:
    """The shared sender at Meta's top throughput tier (1,000 messages/s a number), written once
    the service has written its row: at the default 80/s the soak measured the number's limit,
    not the service (the isolated dispatch rate is measured with senders that do not limit)."""
    conn = await asyncpg.connect(dsn)
    try:
        await conn.execute(
            "UPDATE sender SET messages_per_second = 1000 WHERE id = $1", uuid.UUID(int=0)
        )
    finally:
        await conn.close()


async def _sizes(dsn: str) -> dict[str, dict[str, int]]:
    conn = await asyncpg.connect(dsn)
    try:
        out = {}
        for name in TABLES:
            row = await conn.fetchrow(
                "SELECT pg_relation_size(c.oid) AS heap, pg_indexes_size(c.oid) AS indexes,"
                " s.n_live_tup AS live, s.n_dead_tup AS dead"
                " FROM pg_class c JOIN pg_stat_user_tables s ON s.relid = c.oid"
                " WHERE c.relname = $1",
                name,
            )
            out[name] = dict(row)
        return out
    finally:
        await conn.close()


async def _queue(dsn: str) -> dict[str, int]:
    """Messages by status, and the webhook bodies stored but not applied yet."""
    conn = await asyncpg.connect(dsn)
    try:
        rows = await conn.fetch("SELECT status, count(*) FROM outbound_message GROUP BY status")
        unapplied = await conn.fetchval(
            "SELECT count(*) FROM webhook_event WHERE processed_at IS NULL"
        )
        return {row[0]: row[1] for row in rows} | {"_unapplied": unapplied}
    finally:
        await conn.close()


async def _isolated_dispatch_rate(redis_url: str) -> float:
    """bench/dispatch.py on this machine now: the dispatcher alone, 20,000 queued messages."""
    import dispatch

    figures = await dispatch.run(quick=False, redis_url=redis_url)
    return float(figures["dispatch_msgs_per_s"])


async def _dead(dsn: str) -> dict[str, int]:
    """Dead tuples per table now: what autovacuum has yet to reclaim."""
    conn = await asyncpg.connect(dsn)
    try:
        rows = await conn.fetch(
            "SELECT relname, n_dead_tup FROM pg_stat_user_tables WHERE relname = any($1::text[])",
            list(TABLES),
        )
        return {row[0]: row[1] for row in rows}
    finally:
        await conn.close()


class Load:
    """Opens one enqueue every 1/rate s on schedule (open loop: a slow answer does not slow the
    rate), and keeps each answer's latency with the time it arrived."""

    def __init__(self, urls: list[str], key: str, rate: float) -> None:
        self.urls = urls
        self.headers = {"Authorization": f"Bearer {key}"}
        self.rate = rate
        self.latencies: list[tuple[float, float]] = []  # (answered at, seconds)
        self.failures: dict[str, int] = {}
        self.sent = 0

    async def run(self, duration_s: float) -> None:
        connector = aiohttp.TCPConnector(limit=128)
        async with aiohttp.ClientSession(connector=connector) as session:
            tasks: set[asyncio.Task[None]] = set()
            begin = time.monotonic()
            n = 0
            while True:
                due = begin + n / self.rate
                if due - begin >= duration_s:
                    break
                delay = due - time.monotonic()
                if delay > 0:
                    await asyncio.sleep(delay)
                url = self.urls[n % len(self.urls)]
                task = asyncio.create_task(self._one(session, url, PHONES[n % len(PHONES)], begin))
                tasks.add(task)
                task.add_done_callback(tasks.discard)
                n += 1
            await asyncio.gather(*tasks)

    async def _one(
        self, session: aiohttp.ClientSession, url: str, phone: str, begin: float
    ) -> None:
        started = time.monotonic()
        body = {"to": phone, "template": TEMPLATE}
        try:
            async with session.post(
                f"{url}/v1/messages", json=body, headers=self.headers
            ) as response:
                await response.read()
                status = response.status
        except aiohttp.ClientError as exc:
            self.failures[type(exc).__name__] = self.failures.get(type(exc).__name__, 0) + 1
            return
        if status != 202:
            self.failures[str(status)] = self.failures.get(str(status), 0) + 1
            return
        self.sent += 1
        answered = time.monotonic()
        self.latencies.append((answered - begin, answered - started))


# The text log's level field ("2026-12-03 07:54:39,502 ERROR logger: ..."), not a word of the
# message: an alert's text says CRITICAL in a WARNING line.
_ERROR_LINE = re.compile(r"^\S+ \S+ (ERROR|CRITICAL) |^Traceback")


def _error_lines(path: str) -> list[str]:
    with open(path, encoding="utf-8", errors="replace") as log:
        return [line.rstrip() for line in log if _ERROR_LINE.search(line)]


async def main() -> None:
    parser = argparse.ArgumentParser()
    parser.add_argument("--duration-s", type=float, default=120.0)
    parser.add_argument(
        "--rate",
        type=float,
        default=None,
        help="messages enqueued per second (default: half the isolated dispatch rate)",
    )
    parser.add_argument("--window-s", type=float, default=10.0)
    parser.add_argument("--replicas", type=int, default=1, help="service processes")
    parser.add_argument(
        "--statuses-per-post", type=int, default=1, help="1: Meta's shape; 100: batched"
    )
    parser.add_argument("--status-concurrency", type=int, default=64, help="Meta's POSTs in flight")
    parser.add_argument(
        "--shared-postgres",
        action="store_true",
        help="use the server at WA_BENCH_DATABASE_URL rather than a private cluster",
    )
    args = parser.parse_args()
    redis_url = os.environ.get("WA_BENCH_REDIS_URL", "redis://127.0.0.1:6379/0")
    load_before = [round(x, 2) for x in os.getloadavg()]
    dispatch_rate = None
    if args.rate is None:
        dispatch_rate = await _isolated_dispatch_rate(redis_url)
        print(f"isolated dispatch rate: {dispatch_rate:,.0f} msgs/s", flush=True)
    rate = args.rate if args.rate is not None else math.ceil(dispatch_rate * 0.5)
    # A private cluster by default: PostgreSQL's defaults (autovacuum on), whatever the
    # machine's shared server is tuned for (test servers often run without autovacuum).
    from private_postgres import PrivatePostgres

    cluster = None if args.shared_postgres else PrivatePostgres(durable=True)
    if cluster is None:
        dsn, url = await create_database("wa_soak")
    else:
        await asyncio.to_thread(cluster.start)
        url = cluster.url
        dsn = url.replace("postgresql+asyncpg://", "postgresql://")
    fake_port = free_port()
    ports = [free_port() for _ in range(args.replicas)]
    urls = [f"http://127.0.0.1:{port}" for port in ports]
    logs = [ROOT / "bench" / f"soak-service-{i}.log" for i in range(args.replicas)]
    env = cloud_env(
        url,
        fake_port,
        token=TOKEN,
        redis_url=redis_url,
        WA_APP_SECRET=SECRET,
        WA_ALERT_ENABLED="true",
        WA_ALERT_INTERVAL_SECONDS="10",
        WA_LOG_LEVEL="WARNING",
    )
    processes = []
    windows: list[dict[str, Any]] = []
    fake_summary: dict[str, Any] = {}
    try:
        migrate(env)
        processes.append(
            start_fake_meta(
                fake_port,
                "--webhook-url",
                f"{urls[0]}/webhooks/whatsapp",
                "--app-secret",
                SECRET,
                "--auto-statuses",
                "--status-batch-size",
                str(args.statuses_per_post),
                "--status-concurrency",
                str(args.status_concurrency),
                token=TOKEN,
            )
        )
        _org_id, key = await prepare_org(dsn, env, PHONES)
        services = [
            start(
                [str(BIN / "wa-outbound"), "serve", "--no-migrate", "--port", str(port)],
                env,
                log=log,
            )
            for port, log in zip(ports, logs, strict=True)
        ]
        processes.extend(services)
        for url in urls:
            wait_http(f"{url}/health/live")
        await _top_throughput_tier(dsn)
        sizes_before = await _sizes(dsn)
        rss_start = sum(rss_mb(service.pid) for service in services)
        cpu = soak_parts(
            [s.pid for s in services], processes[0].pid, cluster.data if cluster else None
        )
        cpu.start()
        load = Load(urls, key, rate)
        runner = asyncio.create_task(load.run(args.duration_s))
        begin = time.monotonic()
        while not runner.done():
            await asyncio.wait({runner}, timeout=args.window_s)
            elapsed = time.monotonic() - begin
            since = elapsed - args.window_s
            window = [s for at, s in load.latencies if at >= since]
            queue = await _queue(dsn)
            windows.append(
                {
                    "at_s": round(elapsed),
                    "rss_mb": sum(rss_mb(service.pid) for service in services),
                    "enqueued": len(window),
                    "p50_ms": percentile(window, 50) * 1000,
                    "p99_ms": percentile(window, 99) * 1000,
                    "queue_depth": sum(queue.get(s, 0) for s in PENDING),
                    "unread": sum(queue.get(s, 0) for s in UNREAD),
                    "webhooks_unapplied": queue["_unapplied"],
                    "read": queue.get("READ", 0),
                    "load_average": round(os.getloadavg()[0], 2),
                    "dead_tuples": await _dead(dsn),
                }
            )
            print(json.dumps(windows[-1]), flush=True)
        await runner
        load_s = time.monotonic() - begin
        read_at_end_of_load = (await _queue(dsn)).get("READ", 0)
        await asyncio.sleep(10)  # let the last statuses arrive
        queue_end = await _queue(dsn)
        cores = cpu.cores()
        rss_end = sum(rss_mb(service.pid) for service in services)
        sizes_after = await _sizes(dsn)
        async with (
            aiohttp.ClientSession() as session,
            session.get(f"http://127.0.0.1:{fake_port}/_fake/requests") as response,
        ):
            fake_summary = (await response.json()).get("webhooks") or {}
    finally:
        for process in reversed(processes):
            stop(process)
        if cluster is None:
            await drop_database(dsn)
        else:
            await asyncio.to_thread(cluster.destroy)
    errors = [line for log in logs for line in _error_lines(str(log))]
    warm = windows[0]["rss_mb"] if windows else rss_start
    all_latencies = [s for _, s in load.latencies]
    lifecycle_rate = read_at_end_of_load / load_s
    results: dict[str, Any] = {
        "duration_s": args.duration_s,
        "rate_per_s": rate,
        "isolated_dispatch_msgs_per_s": dispatch_rate,
        "lifecycle_msgs_per_s": lifecycle_rate,
        # Cores each part kept busy over the run and the 10 s after it: on a machine of two
        # they tell what bounds the rate.
        "cpu_cores": cores,
        "statuses_per_post": args.statuses_per_post,
        "replicas": args.replicas,
        "enqueued": load.sent,
        "enqueue_failures": load.failures,
        "fake_meta_webhooks": fake_summary,
        "load_average_before": load_before,
        "load_average_end": [round(x, 2) for x in os.getloadavg()],
        "rss_mb_start": rss_start,
        "rss_mb_after_first_window": warm,
        "rss_mb_end": rss_end,
        "rss_growth_pct_since_warm": (rss_end - warm) / warm * 100 if warm else None,
        "enqueue_p50_ms": percentile(all_latencies, 50) * 1000,
        "enqueue_p99_ms": percentile(all_latencies, 99) * 1000,
        "windows": windows,
        "statuses_end": queue_end,
        "sizes_before": sizes_before,
        "sizes_after": sizes_after,
        "error_log_lines": len(errors),
        "error_log_examples": errors[:10],
    }
    per_message = {
        name: (after["heap"] + after["indexes"]) / max(load.sent, 1)
        for name, after in sizes_after.items()
    }
    results["bytes_per_message"] = per_message
    for name in TABLES:
        before, after = sizes_before[name], sizes_after[name]
        print(
            f"{name:<18} heap {before['heap'] / 1e6:8.1f} -> {after['heap'] / 1e6:8.1f} MB"
            f"  indexes {before['indexes'] / 1e6:8.1f} -> {after['indexes'] / 1e6:8.1f} MB"
            f"  live {after['live']:>9}  dead {after['dead']:>9}"
        )
    print()
    print(verdicts(summary(results, windows, rate, dispatch_rate, errors)))
    print(
        f"\nload average {results['load_average_before']} before, "
        f"{[w['load_average'] for w in windows]} per window, "
        f"{results['load_average_end']} at the end"
    )
    print(f"written to {write_results('soak', results)}")


if __name__ == "__main__":
    asyncio.run(main())
