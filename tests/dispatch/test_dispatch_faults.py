"""One bad send never loses a batch; nothing burns an attempt that was not a send; a held
backlog costs nothing per round."""

from __future__ import annotations

import asyncio
import uuid
from dataclasses import dataclass
from datetime import timedelta
from typing import Any

import pytest
import sqlalchemy as sa
from sqlalchemy.ext.asyncio import AsyncEngine
from test_dispatcher_cloud import TOKEN, cloud_settings

from dispatch_helpers import dispatcher_for, event_types, message, new_org, queue
from fake_meta import FakeMeta, meta_error, running_fake_meta
from helpers import make_settings
from wa_outbound.db.engine import create_engine
from wa_outbound.db.schema import message_event, outbound_message
from wa_outbound.db.types import utcnow
from wa_outbound.metrics import Metrics
from wa_outbound.ratelimit import create_rate_limiter
from wa_outbound.whatsapp.cloud import CloudProvider
from wa_outbound.whatsapp.provider import OutgoingMessage, SendResult
from wa_outbound.whatsapp.sandbox import SandboxProvider, SandboxStatuses

PHONES = ["+33612345671", "+33612345672", "+33612345673"]


class _Exploding:
    """A provider whose send raises for one recipient and accepts every other."""

    name = "exploding"

    def __init__(self, bad: str) -> None:
        self.bad = bad

    async def send(self, message: OutgoingMessage) -> SendResult:
        if message.to == self.bad:
            raise RuntimeError("a bug in one send")
        return SendResult(wamid=f"wamid.{uuid.uuid4().hex}")

    async def close(self) -> None:
        return None


async def test_a_send_that_raises_costs_only_itself(database_url: str) -> None:
    settings = make_settings(database_url)
    async with dispatcher_for(settings, _Exploding(bad=PHONES[1])) as dispatcher:
        org = await new_org(dispatcher.engine, *PHONES)
        ids = await queue(dispatcher.engine, org, *PHONES)
        assert await dispatcher.run_once() == 3
        rows = [await message(dispatcher.engine, i) for i in ids]
    assert [r["status"] for r in rows] == ["ACCEPTED", "RETRYING", "ACCEPTED"]
    assert rows[1]["error_code"] == "send_error"
    assert rows[1]["attempts"] == 1, "the request may have gone out: the attempt counts"


async def test_a_retry_after_of_years_is_capped_at_the_longest_retry(database_url: str) -> None:
    fake = FakeMeta(token=TOKEN)
    fake.script(PHONES[0], meta_error(130429, http_status=429, retry_after=10**12))
    async with running_fake_meta(fake) as base_url:
        settings = cloud_settings(database_url, base_url, retry_max_seconds=900)
        async with dispatcher_for(settings, CloudProvider(settings)) as dispatcher:
            org = await new_org(dispatcher.engine, PHONES[0])
            [message_id] = await queue(dispatcher.engine, org, PHONES[0])
            before = utcnow()
            assert await dispatcher.run_once() == 1
            row = await message(dispatcher.engine, message_id)
    assert row["status"] == "RETRYING"
    assert row["next_attempt_at"] <= before + timedelta(seconds=901)


@dataclass
class _BrokenLimiter:
    async def admit_many(self, groups: Any) -> Any:
        raise ConnectionError("no backend can decide")


async def test_a_limiter_error_claims_nothing_and_burns_no_attempt(database_url: str) -> None:
    settings = make_settings(database_url)
    engine = create_engine(settings)
    provider = SandboxProvider(SandboxStatuses(engine))
    async with dispatcher_for(settings, provider, limiter=_BrokenLimiter()) as dispatcher:
        org = await new_org(dispatcher.engine, *PHONES)
        ids = await queue(dispatcher.engine, org, *PHONES)
        with pytest.raises(ConnectionError):
            await dispatcher.run_once()
        rows = [await message(dispatcher.engine, i) for i in ids]
        events = [await event_types(dispatcher.engine, i) for i in ids]
    await engine.dispose()
    assert [(r["status"], r["attempts"]) for r in rows] == [("QUEUED", 0)] * 3
    assert events == [["queued"]] * 3, "nothing was claimed, released or dead-lettered"


async def _count(engine: AsyncEngine, *where: Any) -> int:
    async with engine.connect() as conn:
        return int(
            await conn.scalar(sa.select(sa.func.count()).select_from(message_event).where(*where))
            or 0
        )


async def test_a_held_backlog_is_not_claimed_until_its_slot(postgres_url: str) -> None:
    """10,000 messages for an org capped at 5 msg/s: for 3 s of dispatching, every claim is a
    send, and a message that waits has no event but `queued`."""
    settings = make_settings(postgres_url, dispatch_poll_seconds=0.05)
    engine = create_engine(settings)
    metrics = Metrics()
    limiter = create_rate_limiter(settings, engine, metrics)
    provider = SandboxProvider(SandboxStatuses(engine))
    try:
        async with dispatcher_for(settings, provider, limiter=limiter) as dispatcher:
            phones = [f"+3364{i:07d}" for i in range(10_000)]
            org = await new_org(engine, *phones)
            await limiter.configure(
                org, limit=None, window_seconds=None, messages_per_second=5, actor="test"
            )
            await queue(engine, org, *phones)
            running = asyncio.create_task(dispatcher.run())
            await asyncio.sleep(3)
            await dispatcher.stop()
            await running
        async with engine.connect() as conn:
            sent = int(
                await conn.scalar(sa.select(sa.func.count()).where(outbound_message.c.attempts > 0))
                or 0
            )
        claims = await _count(engine, message_event.c.type == "claimed")
        other = await _count(engine, message_event.c.type.not_in(["queued", "claimed"]))
        events = await _count(engine, sa.true())
    finally:
        await limiter.close()
        await engine.dispose()
    assert 5 <= sent <= 5 + 5 * 3 + 1, "5 per second after a burst of one second's worth"
    assert claims == sent, "held messages are never claimed"
    assert events <= 10_000 + 3 * sent, "what waits costs no event"
    assert other <= 2 * sent  # accepted (+ sandbox statuses), never rate_limited/released
