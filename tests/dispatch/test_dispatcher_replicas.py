"""Replicas and crashes on PostgreSQL: no message lost, no duplicate beyond what was in flight."""

from __future__ import annotations

import asyncio
import os
import signal
import socket
import subprocess
import sys
from collections import Counter

import sqlalchemy as sa
from sqlalchemy.ext.asyncio import AsyncEngine
from test_dispatcher_cloud import TOKEN, cloud_settings

from dispatch_helpers import new_org, queue
from fake_meta import FakeMeta, delay, running_fake_meta
from helpers import TEST_SECRET_KEY, eventually
from wa_outbound.db.engine import create_engine
from wa_outbound.db.schema import outbound_message
from wa_outbound.dispatch.dispatcher import Dispatcher
from wa_outbound.metrics import Metrics
from wa_outbound.whatsapp.cloud import CloudProvider


async def _statuses(engine: AsyncEngine) -> Counter[str]:
    async with engine.connect() as conn:
        rows = await conn.execute(
            sa.select(outbound_message.c.status, sa.func.count()).group_by(
                outbound_message.c.status
            )
        )
        return Counter({row[0]: row[1] for row in rows})


async def test_two_dispatchers_send_1000_messages_once_each(postgres_url: str) -> None:
    fake = FakeMeta(token=TOKEN)
    phones = [f"+3361{i:07d}" for i in range(1, 1001)]
    async with running_fake_meta(fake) as base_url:
        settings = cloud_settings(
            postgres_url,
            base_url,
            dispatch_batch_size=50,
            dispatch_poll_seconds=0.05,
            # A send timed out on a loaded machine is retried: a duplicate this test is not about.
            send_timeout_seconds=10,
        )
        engines = [create_engine(settings) for _ in range(2)]
        providers = [CloudProvider(settings) for _ in range(2)]
        dispatchers = [
            Dispatcher(settings=settings, engine=e, provider=p, metrics=Metrics())
            for e, p in zip(engines, providers, strict=True)
        ]
        try:
            org = await new_org(engines[0], *phones)
            await queue(engines[0], org, *phones)
            tasks = [asyncio.create_task(d.run()) for d in dispatchers]
            await eventually(lambda: _count(engines[0], "ACCEPTED", at_least=1000), timeout_s=60)
            for d in dispatchers:
                await d.stop()
            await asyncio.gather(*tasks)
            async with engines[0].connect() as conn:
                wamids = set(
                    (
                        await conn.execute(sa.select(outbound_message.c.provider_message_id))
                    ).scalars()
                )
                claimers = set(
                    (
                        await conn.execute(
                            sa.text(
                                "SELECT DISTINCT actor FROM message_event WHERE type = 'claimed'"
                            )
                        )
                    ).scalars()
                )
        finally:
            for p in providers:
                await p.close()
            for e in engines:
                await e.dispose()
    assert fake.received.total == 1000
    assert fake.received.duplicates() == {}
    assert len(wamids) == 1000
    assert len(claimers) == 2, "both replicas took part"


async def _count(engine: AsyncEngine, status: str, *, at_least: int) -> bool:
    return (await _statuses(engine))[status] >= at_least


def _free_port() -> int:
    with socket.socket() as sock:
        sock.bind(("127.0.0.1", 0))
        return int(sock.getsockname()[1])


def _serve(postgres_url: str, base_url: str) -> subprocess.Popen[bytes]:
    env = {k: v for k, v in os.environ.items() if not k.startswith("WA_")}
    env.update(
        {
            "WA_DATABASE_URL": postgres_url,
            "WA_PROVIDER": "cloud",
            "WA_SECRET_KEYS": TEST_SECRET_KEY,
            "WA_GRAPH_API_BASE_URL": base_url,
            "WA_ACCESS_TOKEN": TOKEN,
            "WA_PHONE_NUMBER_ID": "106540352242922",
            "WA_APP_SECRET": "app-secret",
            "WA_LEASE_SECONDS": "2",
            "WA_SEND_TIMEOUT_SECONDS": "1",
            "WA_DISPATCH_CONCURRENCY": "16",
            "WA_DISPATCH_POLL_SECONDS": "0.1",
            "WA_ALERT_ENABLED": "false",
            "WA_LOG_LEVEL": "WARNING",
        }
    )
    return subprocess.Popen(
        [sys.executable, "-m", "wa_outbound.cli", "serve", "--port", str(_free_port())],
        env=env,
        stdout=subprocess.DEVNULL,
        stderr=subprocess.DEVNULL,
    )


async def test_dispatcher_killed_mid_batch_loses_nothing(postgres_url: str) -> None:
    fake = FakeMeta(token=TOKEN)
    phones = [f"+3362{i:07d}" for i in range(1, 301)]
    for phone in phones:
        fake.script(phone, delay(0.3))  # slow first answers: sends are in flight when killed
    async with running_fake_meta(fake) as base_url:
        engine = create_engine(cloud_settings(postgres_url, base_url))
        try:
            org = await new_org(engine, *phones)
            await queue(engine, org, *phones)
            first = _serve(postgres_url, base_url)
            try:
                await eventually(lambda: fake.received.total >= 40)
            finally:
                first.send_signal(signal.SIGKILL)
                first.wait()
            in_flight = (await _statuses(engine))["SENDING"]
            assert in_flight > 0, "the kill happened mid-batch"

            second = _serve(postgres_url, base_url)
            try:
                await eventually(
                    lambda: _count(engine, "ACCEPTED", at_least=len(phones)), timeout_s=60
                )
            finally:
                second.terminate()
                second.wait(timeout=30)
            statuses = await _statuses(engine)
        finally:
            await engine.dispose()
    assert statuses == Counter({"ACCEPTED": len(phones)})
    accepted_per_phone = Counter(r.to for r in fake.received.requests if r.wamid is not None)
    assert set(accepted_per_phone) == {p.lstrip("+") for p in phones}
    duplicates = sum(n - 1 for n in accepted_per_phone.values())
    assert duplicates <= in_flight
