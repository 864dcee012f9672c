"""Several workers on one PostgreSQL database: each event reaches each endpoint once, in order per
message; and a service killed (-9) in the middle of its deliveries loses none of them: its
leases expire and another replica takes them again."""

from __future__ import annotations

import os
import signal
import subprocess
import sys
from collections import Counter, defaultdict
from pathlib import Path

import httpx
import pytest
import sqlalchemy as sa
from sqlalchemy.ext.asyncio import AsyncEngine

from callback_helpers import insert_endpoint, insert_message_events
from callback_receiver import Behaviour, Receiver, receiving
from callbacks.delivery_support import callback_settings, new_worker, running
from factories import insert_org
from helpers import ADMIN_TOKEN, TEST_SECRET_KEY, eventually, free_port
from wa_outbound.db.callback_schema import callback_delivery
from wa_outbound.db.engine import create_engine


async def _all_succeeded(engine: AsyncEngine) -> bool:
    async with engine.connect() as conn:
        query = sa.select(sa.func.count()).where(callback_delivery.c.status != "succeeded")
        return not await conn.scalar(query)


def _in_order_per_message(receiver: Receiver, path: str) -> None:
    """The sequences of each message's events, as they arrived, never go backwards (a repeat
    of the latest one is a redelivery, allowed: at least once)."""
    arrived: dict[str, list[int]] = defaultdict(list)
    for received in receiver.at(path):
        data = received.json["data"]
        arrived[data["message"]["id"]].append(data["sequence"])
    for message_id, sequences in arrived.items():
        assert sequences == sorted(sequences), (path, message_id, sequences)


async def test_two_workers_deliver_each_event_once_per_endpoint_in_order(
    pg_engine: AsyncEngine, postgres_url: str
) -> None:
    async with receiving() as receiver:
        receiver.behaviours = {p: Behaviour(delay_s=0.002) for p in ("/a", "/b", "/c")}
        async with pg_engine.begin() as conn:
            org_id = await insert_org(conn)
            endpoints = [
                await insert_endpoint(conn, org_id, receiver.url(p)) for p in ("/a", "/b", "/c")
            ]
            ids = [e.id for e in endpoints]
            events = await insert_message_events(conn, org_id, ids, messages=60)
        settings = callback_settings(postgres_url, callback_batch_size=20)
        engines = [create_engine(settings) for _ in range(2)]
        workers = [new_worker(engine, settings) for engine in engines]
        try:
            async with running(workers[0]), running(workers[1]):
                await eventually(lambda: _all_succeeded(pg_engine), timeout_s=60)
        finally:
            for engine in engines:
                await engine.dispose()
        expected = Counter(str(e.id) for e in events)
        for path in ("/a", "/b", "/c"):
            assert Counter(r.webhook_id for r in receiver.at(path)) == expected, path
            _in_order_per_message(receiver, path)
        # Both took part.
        for worker in workers:
            assert worker.metrics.callback_deliveries.labels(result="succeeded")._value.get() > 0


def _serve(database_url: str, port: int, log: Path) -> subprocess.Popen[bytes]:
    env = {k: v for k, v in os.environ.items() if not k.startswith("WA_")}
    env |= {
        "WA_DATABASE_URL": database_url,
        "WA_PROVIDER": "sandbox",
        "WA_ADMIN_TOKEN": ADMIN_TOKEN,
        "WA_SECRET_KEYS": TEST_SECRET_KEY,
        "WA_DISPATCH_ENABLED": "false",
        "WA_ALERT_ENABLED": "false",
        "WA_CALLBACK_ALLOW_INSECURE": "true",
        "WA_CALLBACK_TIMEOUT_SECONDS": "1",  # leases of 7 s
        "WA_CALLBACK_POLL_SECONDS": "0.1",
        "WA_CALLBACK_RETRY_SCHEDULE": "0.2,0.2,0.2,0.2,0.2",
        "WA_SHUTDOWN_GRACE_SECONDS": "1",
        "WA_LOG_LEVEL": "WARNING",
    }
    command = ["-m", "wa_outbound.cli", "serve", "--no-migrate", "--port", str(port)]
    return subprocess.Popen(
        [sys.executable, *command], env=env, stdout=subprocess.DEVNULL, stderr=log.open("ab")
    )


async def _ready(port: int) -> None:
    async with httpx.AsyncClient() as client:

        async def answers() -> bool:
            try:
                response = await client.get(f"http://127.0.0.1:{port}/health/ready")
            except httpx.HTTPError:
                return False
            return bool(response.json()["components"]["callback_worker"]["status"] == "running")

        await eventually(answers, timeout_s=60)


@pytest.mark.slow
async def test_a_service_killed_mid_delivery_loses_no_event(
    pg_engine: AsyncEngine, postgres_url: str, tmp_path: Path
) -> None:
    async with receiving() as receiver:
        # Slow answers: the kill lands while requests are in flight.
        receiver.behaviours["/hook"] = Behaviour(delay_s=0.3)
        async with pg_engine.begin() as conn:
            org_id = await insert_org(conn)
            endpoint = await insert_endpoint(conn, org_id, receiver.url("/hook"))
            events = await insert_message_events(conn, org_id, [endpoint.id], messages=40)
        first = _serve(postgres_url, free_port(), tmp_path / "first.log")
        second: subprocess.Popen[bytes] | None = None
        try:
            await eventually(lambda: len(receiver.at("/hook")) >= 20, timeout_s=60)
            first.send_signal(signal.SIGKILL)
            first.wait(timeout=10)
            async with pg_engine.connect() as conn:
                in_flight = await conn.scalar(
                    sa.select(sa.func.count()).where(
                        callback_delivery.c.status == "pending",
                        callback_delivery.c.claimed_by.is_not(None),
                    )
                )
            assert in_flight, "the kill should have caught deliveries in flight"
            port = free_port()
            second = _serve(postgres_url, port, tmp_path / "second.log")
            await _ready(port)
            await eventually(lambda: _all_succeeded(pg_engine), timeout_s=90)
        finally:
            for process in (first, second):
                if process is not None and process.poll() is None:
                    process.terminate()
                    process.wait(timeout=15)
        arrived = Counter(r.webhook_id for r in receiver.at("/hook"))
        assert set(arrived) == {str(e.id) for e in events}
        # Only what was in flight at the kill may have come twice.
        assert sum(n - 1 for n in arrived.values()) <= in_flight
        _in_order_per_message(receiver, "/hook")
