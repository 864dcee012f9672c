"""Dispatchers whose pool goes through PgBouncer in transaction mode (`default_pool_size` 5),
their listeners on the direct session URL: every message sent once."""

from __future__ import annotations

import asyncio
from collections import Counter

import sqlalchemy as sa
from test_dispatcher_cloud import TOKEN, cloud_settings

from dispatch_helpers import new_org, queue
from fake_meta import FakeMeta, running_fake_meta
from helpers import eventually
from private_pgbouncer import PrivatePgBouncer
from wa_outbound.db.engine import create_engine, create_session_engine
from wa_outbound.db.schema import outbound_message
from wa_outbound.dispatch.dispatcher import Dispatcher
from wa_outbound.metrics import Metrics
from wa_outbound.whatsapp.cloud import CloudProvider

MESSAGES = 400


async def test_two_dispatchers_through_pgbouncer_send_every_message_once(
    postgres_url: str, pgbouncer: PrivatePgBouncer
) -> None:
    fake = FakeMeta(token=TOKEN)
    phones = [f"+3363{i:07d}" for i in range(1, MESSAGES + 1)]
    async with running_fake_meta(fake) as base_url:
        settings = cloud_settings(
            pgbouncer.url(postgres_url),
            base_url,
            database_session_url=postgres_url,
            dispatch_batch_size=50,
            dispatch_poll_seconds=0.05,
            send_timeout_seconds=10,
        )
        assert settings.database_pooled
        engines = [create_engine(settings) for _ in range(2)]
        sessions = [create_session_engine(settings, e) for e in engines]
        providers = [CloudProvider(settings) for _ in range(2)]
        dispatchers = [
            Dispatcher(settings=settings, engine=e, provider=p, metrics=Metrics(), session_engine=s)
            for e, s, p in zip(engines, sessions, providers, strict=True)
        ]
        try:
            org = await new_org(engines[0], *phones)
            await queue(engines[0], org, *phones)
            tasks = [asyncio.create_task(d.run()) for d in dispatchers]
            await eventually(lambda: fake.received.total >= MESSAGES, timeout_s=60)
            for d in dispatchers:
                await d.stop()
            await asyncio.gather(*tasks)
            async with engines[0].connect() as conn:
                rows = await conn.execute(
                    sa.select(outbound_message.c.status, sa.func.count()).group_by(
                        outbound_message.c.status
                    )
                )
                statuses = Counter({row[0]: row[1] for row in rows})
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
            for e in (*sessions, *engines):
                await e.dispose()
    assert statuses == Counter({"ACCEPTED": MESSAGES})
    assert fake.received.total == MESSAGES
    assert fake.received.duplicates() == {}
    assert len(claimers) == 2, "both dispatchers took part"
