"""The PostgreSQL webhook intake: bodies group-committed before the 200, applied behind it.

A body answered 200 is committed, and survives the service being killed (kill -9) before it
was applied: the sweep applies it. Many single-status POSTs for one message at once, as Meta
sends them, leave it at the highest status with one event per status. Concurrent bodies share
commits, and each request gets the id of its own body.
"""

from __future__ import annotations

import asyncio
import os
import random
import signal
import time
import uuid
from collections import Counter
from collections.abc import Iterator
from pathlib import Path

import aiohttp
import orjson
import pytest
import sqlalchemy as sa
from sqlalchemy.ext.asyncio import AsyncEngine

import meta_payloads as meta
from factories import engine_for, insert_message, insert_org
from helpers import eventually
from service_process import Process, served
from wa_outbound.db.schema import message_event, outbound_message, webhook_event
from wa_outbound.db.types import utcnow
from wa_outbound.metrics import Metrics
from wa_outbound.webhooks.group_commit import BodyStore
from wa_outbound.webhooks.sweep import ReceiptSweep

APP_SECRET = "group-commit-secret"
URL = "/webhooks/whatsapp"
LIFECYCLE = ("sent", "delivered", "read")


@pytest.fixture
def service(pg_template: str, tmp_path: Path) -> Iterator[Process]:
    """The service with its defaults (answer once stored), the shared sender on the envelopes'
    number, its dispatcher off."""
    env = {
        "WA_APP_SECRET": APP_SECRET,
        "WA_PHONE_NUMBER_ID": meta.PHONE_NUMBER_ID,
        "WA_ACCESS_TOKEN": "group-commit-token",
        "WA_DISPATCH_ENABLED": "false",
        "WA_WEBHOOK_ANSWER_AFTER": "stored",  # the default, which BASE_ENV changes
    }
    with served(pg_template, tmp_path, prefix="wa_group", env=env) as process:
        yield process


def signed(status: str, wamid: str, at: int) -> tuple[bytes, dict[str, str]]:
    raw = orjson.dumps(meta.envelope(statuses=[meta.status(wamid, status, timestamp=at)]))
    return raw, {
        "Content-Type": "application/json",
        "X-Hub-Signature-256": meta.sign(raw, APP_SECRET),
    }


async def post_all(base_url: str, bodies: list[tuple[bytes, dict[str, str]]]) -> list[int]:
    connector = aiohttp.TCPConnector(limit=100)
    async with aiohttp.ClientSession(connector=connector) as session:

        async def one(raw: bytes, headers: dict[str, str]) -> int:
            async with session.post(base_url + URL, data=raw, headers=headers) as response:
                await response.read()
                return response.status

        return await asyncio.gather(*(one(raw, headers) for raw, headers in bodies))


async def accepted_message(engine: AsyncEngine) -> tuple[uuid.UUID, str]:
    wamid = f"wamid.{uuid.uuid4().hex}"
    async with engine.begin() as conn:
        org_id = await insert_org(conn)
        message_id = await insert_message(conn, org_id=org_id, wamid=wamid)
    return message_id, wamid


async def status_events(engine: AsyncEngine, message_id: uuid.UUID) -> Counter[str]:
    e = message_event.c
    async with engine.connect() as conn:
        rows = await conn.execute(
            sa.select(e.type, sa.func.count())
            .where(e.message_id == message_id, e.type.like("status.%"))
            .group_by(e.type)
        )
        return Counter({kind: int(n) for kind, n in rows})


async def message_status(engine: AsyncEngine, message_id: uuid.UUID) -> str:
    m = outbound_message.c
    async with engine.connect() as conn:
        return str(await conn.scalar(sa.select(m.status).where(m.id == message_id)))


async def unprocessed(engine: AsyncEngine) -> tuple[int, int]:
    """(bodies stored, bodies not applied yet)."""
    w = webhook_event.c
    async with engine.connect() as conn:
        total = await conn.scalar(sa.select(sa.func.count()).select_from(webhook_event))
        waiting = await conn.scalar(
            sa.select(sa.func.count()).where(w.processed_at.is_(None)).select_from(webhook_event)
        )
        return int(total or 0), int(waiting or 0)


async def test_a_body_answered_200_survives_a_kill_before_it_is_applied(service: Process) -> None:
    async with engine_for(service.database_url) as engine:
        message_id, wamid = await accepted_message(engine)
        at = int(time.time())
        async with engine.connect() as blocker:
            # Hold the message's row: the applier, behind the answers, waits for it.
            await blocker.execute(
                sa.select(outbound_message.c.id)
                .where(outbound_message.c.id == message_id)
                .with_for_update()
            )
            bodies = [signed(status, wamid, at + i) for i, status in enumerate(LIFECYCLE)]
            assert await post_all(service.base_url, bodies) == [200, 200, 200]
            # Answered, so committed; not applied, since the applier waits on the row.
            assert await unprocessed(engine) == (3, 3)
            assert await message_status(engine, message_id) == "ACCEPTED"
            os.kill(service.pid, signal.SIGKILL)
            await asyncio.sleep(0.2)
            await blocker.rollback()
        # The killed process's transaction, if the server still runs it, fails on its dead
        # socket and rolls back; until then its rows are skipped. The sweep applies them.
        sweep = ReceiptSweep(
            engine, metrics=Metrics(), pending_max_age_s=3600.0, retry_after_s=0.001
        )

        async def swept() -> bool:
            await sweep.run_once()
            return (await unprocessed(engine))[1] == 0

        await eventually(swept, timeout_s=15)
        assert await unprocessed(engine) == (3, 0)
        assert await message_status(engine, message_id) == "READ"
        assert await status_events(engine, message_id) == {
            "status.sent": 1,
            "status.delivered": 1,
            "status.read": 1,
        }


async def test_a_thousand_concurrent_single_status_posts_for_one_message(
    service: Process,
) -> None:
    async with engine_for(service.database_url) as engine:
        message_id, wamid = await accepted_message(engine)
        at = int(time.time())
        statuses = [LIFECYCLE[i % 3] for i in range(1000)]
        random.Random(25).shuffle(statuses)
        bodies = [signed(s, wamid, at + LIFECYCLE.index(s)) for s in statuses]
        answers = await post_all(service.base_url, bodies)
        assert Counter(answers) == {200: 1000}

        async def all_applied() -> bool:
            return (await unprocessed(engine))[1] == 0

        await eventually(all_applied)
        assert await unprocessed(engine) == (1000, 0)
        assert await message_status(engine, message_id) == "READ"
        assert await status_events(engine, message_id) == {
            f"status.{s}": n for s, n in Counter(statuses).items()
        }
    errors = [line for line in service.log.read_text().splitlines() if " ERROR " in line]
    assert errors == []


async def test_concurrent_bodies_share_commits_and_each_gets_its_own_row(
    pg_engine: AsyncEngine,
) -> None:
    store = BodyStore(pg_engine)
    runner = asyncio.create_task(store.run())
    try:
        bodies = [f'{{"n": {i}}}'.encode() for i in range(200)]
        ids = await asyncio.gather(*(store.store(body, utcnow()) for body in bodies))
    finally:
        await store.stop()
        await runner
    assert len(set(ids)) == 200
    assert store.bodies == 200
    assert store.commits < 200  # shared
    w = webhook_event.c
    async with pg_engine.connect() as conn:
        rows = {row.id: row.body for row in await conn.execute(sa.select(w.id, w.body))}
    assert [rows[event_id] for event_id in ids] == bodies
