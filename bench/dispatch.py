"""Dispatch benchmark: sustained messages/s through the real service to the fake Meta over
loopback, and enqueue→ACCEPTED latency on an idle system. PostgreSQL; run from the repository:

    .venv/bin/python bench/dispatch.py [--quick] [--profile] [--senders N]

With `--senders N`, the same run is made three times a round (`--rounds`, the order turning):
from the shared sender alone, from one sender of the organisation's own, and spread over N such
senders; the spread's ratio to each one's median is printed: what sending per sender costs the
dispatcher (every sender's limits set far above the load, so only the cost shows).

With `--callbacks`, runs without and with a webhook endpoint of the organisation subscribed to
every event alternate (`--rounds` pairs), and the ratio of their medians is printed: what writing
the callback events in the dispatcher's transactions costs it. The delivery worker is off in
both (WA_CALLBACK_ENABLED=false): its own figures are bench/callbacks.py's.

With `--pgbouncer POOL`: runs direct and through PgBouncer alternate (bench/_pgbouncer.py).
"""

from __future__ import annotations

import argparse
import asyncio
import json
import signal
import time
import uuid
from collections.abc import Callable
from datetime import UTC, datetime
from typing import Any

import aiohttp
import asyncpg
import uvloop

import _dispatch_compare as _compare
import _pgbouncer
import fake_meta_ceiling
from _cpu import postgres_cpu
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
    percentile,
    prepare_org,
    rss_mb,
    start,
    start_fake_meta,
    stop,
    table,
    wait_http,
    write_results,
)

TOKEN = fake_meta_ceiling.TOKEN
DISPATCH_CONCURRENCY = 64  # WA_DISPATCH_CONCURRENCY's default: the dispatcher's sends in flight


async def _insert_queued(
    dsn: str, org_id: str, phones: list[str], count: int, senders: list[uuid.UUID]
) -> None:
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
            senders[i % len(senders)],
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
                "sender_id",
            ],
            records=records,
        )
    finally:
        await conn.close()


async def _wait_accepted(
    dsn: str, expected: int, pid: int, timeout_s: float
) -> tuple[float, float | None, float | None]:
    """Waits until every message left the queue; returns the service's peak RSS (MB), and its
    CPU milliseconds per message and the PostgreSQL server's (every backend's: on a shared
    server, other clients' too) between the first poll that saw messages leave the queue and
    the last (start-up and imports left out)."""
    conn = await asyncpg.connect(dsn)
    postgres = await postgres_cpu(conn)
    peak = 0.0
    first: tuple[float, float, int] | None = None
    try:
        deadline = time.monotonic() + timeout_s
        while time.monotonic() < deadline:
            peak = max(peak, rss_mb(pid))
            done = await conn.fetchval(
                "SELECT count(*) FROM outbound_message WHERE status NOT IN "
                "('QUEUED', 'RETRYING', 'SENDING')"
            )
            cpu, pg_cpu = cpu_seconds(pid), postgres()
            if first is None and done > 0:
                first = (cpu, pg_cpu, done)
            if done >= expected:
                if first is None or done == first[2]:
                    return peak, None, None
                sent = done - first[2]
                pg_ms = 1000 * (pg_cpu - first[1]) / sent if pg_cpu else None
                return peak, 1000 * (cpu - first[0]) / sent, pg_ms
            # Each count reads the whole table on the service's database: polled every 50 ms
            # it took a fifth of PostgreSQL's time. The rate is worked out from the rows'
            # timestamps, so the poll's period only delays the end of the phase.
            await asyncio.sleep(0.5)
        raise RuntimeError(f"only {done} of {expected} messages left the queue in {timeout_s} s")
    finally:
        await conn.close()


async def _throughput(dsn: str) -> dict[str, float]:
    """The dispatch figure (first claim to last acceptance), and the steady rate between the
    10th and the 90th percentile of the acceptances (start and end left out)."""
    conn = await asyncpg.connect(dsn)
    try:
        row = await conn.fetchrow(
            """SELECT count(*) FILTER (WHERE status = 'ACCEPTED') AS accepted,
                      count(*) AS total,
                      extract(epoch FROM max(accepted_at) - (SELECT min(at) FROM message_event
                                                              WHERE type = 'claimed')) AS seconds,
                      extract(epoch FROM percentile_disc(0.9) WITHIN GROUP (ORDER BY accepted_at)
                          - percentile_disc(0.1) WITHIN GROUP (ORDER BY accepted_at)) AS middle
               FROM outbound_message"""
        )
    finally:
        await conn.close()
    return {
        "accepted": row["accepted"],
        "total": row["total"],
        "seconds": float(row["seconds"]),
        "steady_msgs_per_s": 0.8 * row["accepted"] / max(float(row["middle"]), 1e-6),
    }


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


async def _claims(base: str) -> dict[str, float]:
    """From the dispatcher's metrics: its claims that found messages, their mean batch, and
    the mean time of a send request (from the send slot to Meta's answer)."""
    async with aiohttp.ClientSession() as session, session.get(f"{base}/metrics") as response:
        text = await response.text()
    seen: dict[str, float] = {}
    for line in text.splitlines():
        name, _, value = line.rpartition(" ")
        name = name.replace('{channel="WHATSAPP",outcome="accepted"}', "")
        if name.startswith(("outbound_dispatcher_batch_size_", "outbound_send_latency_seconds_")):
            seen[name] = float(value)
    claims = seen.get("outbound_dispatcher_batch_size_count", 0.0)
    sends = seen.get("outbound_send_latency_seconds_count", 0.0)
    return {
        "dispatch_claims": claims,
        "dispatch_mean_batch": seen.get("outbound_dispatcher_batch_size_sum", 0.0) / (claims or 1),
        "send_mean_ms": 1000 * seen.get("outbound_send_latency_seconds_sum", 0.0) / (sends or 1),
    }


def _profile(pid: int, senders: int) -> Any:
    """py-spy (pip install py-spy) writing collapsed stacks to bench/profile-dispatch.txt
    (`profile-dispatch-N.txt` for a run over N senders of the org's own)."""
    return start(
        [
            str(BIN / "py-spy"),
            "record",
            "--pid",
            str(pid),
            "--rate",
            "200",
            "--format",
            "raw",
            "--output",
            str(ROOT / "bench" / f"profile-dispatch{f'-{senders}' if senders else ''}.txt"),
            "--nonblocking",
        ]
    )


async def _insert_endpoint(dsn: str, org_id: str) -> None:
    """A webhook endpoint of the org subscribed to every event (its secret is never used)."""
    now = datetime.now(UTC)
    conn = await asyncpg.connect(dsn)
    try:
        await conn.execute(
            "INSERT INTO callback_endpoint (id, org_id, url, events, enabled, secret, created_at,"
            " updated_at) VALUES ($1, $2, 'https://example.com/hook', NULL, true,"
            " 'plain:whsec_YmVuY2g=', $3, $3)",
            uuid.uuid4(),
            org_id,
            now,
        )
    finally:
        await conn.close()


async def run(
    quick: bool = False,
    profile: bool = False,
    senders: int = 0,
    redis_url: str = "",
    callback_endpoint: bool = False,
    via: Callable[[str], str] | None = None,
) -> dict[str, Any]:
    """Dispatch throughput over `messages` pre-queued rows, enqueue→ACCEPTED latency, and the
    ceiling: a bare aiohttp loop to the same fake Meta at the dispatcher's concurrency."""
    messages, samples, ceiling_s = (2_000, 40, 2.0) if quick else (20_000, 200, 10.0)
    phones = [f"+3361{i:07d}" for i in range(1, 1001)]
    dsn, url = await create_database()
    fake_port, port = free_port(), free_port()
    env = cloud_env(
        url if via is None else via(url),  # via: the URL through a pooler (bench/_pgbouncer.py)
        fake_port,
        token=TOKEN,
        redis_url=redis_url,
        WA_DISPATCH_POLL_SECONDS="0.5",
        WA_CALLBACK_ENABLED="false",
        **({} if via is None else {"WA_DATABASE_SESSION_URL": url}),
    )
    processes = []
    try:
        migrate(env)
        fake = start_fake_meta(fake_port, token=TOKEN)
        processes.append(fake)
        ceiling = await fake_meta_ceiling.measure(
            f"http://127.0.0.1:{fake_port}",
            fake.pid,
            concurrency=DISPATCH_CONCURRENCY,
            duration_s=ceiling_s,
        )
        _org_id, key = await prepare_org(dsn, env, phones)
        sender_ids = await insert_senders(dsn, _org_id, senders, token=TOKEN)
        if callback_endpoint:
            await _insert_endpoint(dsn, _org_id)
        await _insert_queued(dsn, _org_id, phones, messages, sender_ids)
        service = start(
            [str(BIN / "wa-outbound"), "serve", "--no-migrate", "--port", str(port)],
            env,
            log=ROOT / "bench" / "dispatch-service.log",
        )
        processes.append(service)
        profiler = _profile(service.pid, senders) if profile else None
        peak, cpu_ms, pg_ms = await _wait_accepted(dsn, messages, service.pid, timeout_s=600)
        if profiler is not None:
            profiler.send_signal(signal.SIGINT)
            profiler.wait()
        figures = await _throughput(dsn)
        wait_http(f"http://127.0.0.1:{port}/health/live")
        claims = await _claims(f"http://127.0.0.1:{port}")
        latencies = await _latency(f"http://127.0.0.1:{port}", key, dsn, phones, samples)
        peak = max(peak, rss_mb(service.pid))
    finally:
        for process in reversed(processes):
            stop(process)
        await drop_database(dsn)
    per_s = figures["accepted"] / figures["seconds"]
    return {
        "senders": max(senders, 1),
        "dispatch_messages": messages,
        "dispatch_accepted": figures["accepted"],
        "dispatch_msgs_per_s": per_s,
        "dispatch_steady_msgs_per_s": figures["steady_msgs_per_s"],
        "enqueue_to_accepted_p50_ms": percentile(latencies, 50),
        "enqueue_to_accepted_p99_ms": percentile(latencies, 99),
        "rss_mb_peak": peak,
        "service_cpu_ms_per_message": cpu_ms,
        "postgres_cpu_ms_per_message": pg_ms,
        **claims,
        "baseline_bare_aiohttp_to_fake_meta_req_per_s": ceiling["requests_per_s"],
        "baseline_bare_aiohttp_cpu_ms_per_request": ceiling["client_cpu_ms_per_request"],
        "baseline_bare_aiohttp_to_fake_meta_p99_ms": ceiling["p99_ms"],
        "baseline_fake_meta_requests_per_cpu_s": ceiling["fake_requests_per_cpu_s"],
        "ratio_dispatch_to_bare_aiohttp": per_s / ceiling["requests_per_s"],
    }


def main() -> None:
    parser = argparse.ArgumentParser()
    parser.add_argument("--quick", action="store_true", help="small counts (about 20 s)")
    parser.add_argument(
        "--profile", action="store_true", help="py-spy the service during the dispatch phase"
    )
    parser.add_argument(
        "--senders",
        type=int,
        default=0,
        help="also run spread over this many senders, and compare with one sender (the shared"
        " one, and one of the org's own)",
    )
    parser.add_argument(
        "--redis-url", default="", help="the limiter on this Redis (default: the database's)"
    )
    parser.add_argument(
        "--callbacks",
        action="store_true",
        help="alternate runs without and with a webhook endpoint subscribed to every event",
    )
    parser.add_argument(
        "--rounds", type=int, default=3, help="pairs (with --senders: triples) of runs to compare"
    )
    parser.add_argument("--pgbouncer", type=int, metavar="POOL", help="alternate with PgBouncer")
    args = parser.parse_args()
    if args.pgbouncer:
        return _pgbouncer.compare(run, args)
    if args.callbacks:
        _compare.callbacks(run, args.quick, args.rounds, args.redis_url)
        return
    results = (
        _compare.senders(run, args)
        if args.senders
        else uvloop.run(run(args.quick, args.profile, redis_url=args.redis_url))
    )
    print(table([(name, value, "") for name, value in results.items()]))
    print(f"written to {write_results('dispatch', results)}")


if __name__ == "__main__":
    main()
