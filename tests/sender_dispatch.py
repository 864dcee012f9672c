"""A dispatcher sending through the fake Meta with the real rate limiter, for the tests of
Meta's limits per sender: senders, messages queued from them, and what the fake received."""

from __future__ import annotations

import asyncio
import time
import uuid
from collections.abc import AsyncIterator, Sequence
from contextlib import asynccontextmanager
from dataclasses import dataclass, field
from typing import Any

import sqlalchemy as sa
from sqlalchemy.ext.asyncio import AsyncEngine

from dispatch_helpers import new_org, queue
from factories import insert_sender
from fake_meta import FakeMeta, running_fake_meta
from helpers import eventually, make_settings
from wa_outbound.db.engine import create_engine
from wa_outbound.db.schema import message_event, outbound_message, sender
from wa_outbound.dispatch.dispatcher import Dispatcher
from wa_outbound.metrics import Metrics
from wa_outbound.ratelimit import RateLimiter, create_rate_limiter
from wa_outbound.whatsapp.cloud import CloudProvider

TOKEN = "meta-token"
m = outbound_message.c


@dataclass
class Stack:
    engine: AsyncEngine
    dispatcher: Dispatcher
    limiter: RateLimiter
    fake: FakeMeta
    metrics: Metrics
    orgs: list[str] = field(default_factory=list)

    async def org(self, *phones: str) -> str:
        org_id = await new_org(self.engine, *phones)
        self.orgs.append(org_id)
        return org_id

    async def phone_number_id(self, sender_id: uuid.UUID) -> str:
        async with self.engine.connect() as conn:
            return str(
                await conn.scalar(
                    sa.select(sender.c.phone_number_id).where(sender.c.id == sender_id)
                )
            )

    async def sender(self, org: str, **columns: Any) -> uuid.UUID:
        async with self.engine.begin() as conn:
            return await insert_sender(conn, org, token=TOKEN, **columns)

    async def queue_from(self, org: str, sender_id: uuid.UUID, *phones: str) -> list[uuid.UUID]:
        """Queue template messages (one per phone, in this order) from `sender_id`, moved there
        behind the enqueue's back: never marked `sender_paused`, whatever the sender's state."""
        ids = await queue(self.engine, org, *phones)
        async with self.engine.begin() as conn:
            await conn.execute(
                outbound_message.update()
                .where(m.id.in_(ids))
                .values(sender_id=sender_id, waiting_reason=None)
            )
        return ids

    def arrivals(self, *phones: str) -> list[float]:
        """When the fake received sends to these recipients (monotonic seconds), in order."""
        keys = {phone.lstrip("+") for phone in phones}
        return [r.at for r in self.fake.received.requests if r.to in keys]

    async def rows(self, ids: Sequence[uuid.UUID]) -> list[dict[str, Any]]:
        async with self.engine.connect() as conn:
            found = await conn.execute(sa.select(outbound_message).where(m.id.in_(ids)))
            by_id = {row.id: dict(row._mapping) for row in found}
        return [by_id[i] for i in ids]

    async def events(self, ids: Sequence[uuid.UUID], kind: str) -> dict[uuid.UUID, int]:
        """How many events of `kind` each message has."""
        async with self.engine.connect() as conn:
            found = await conn.execute(
                sa.select(message_event.c.message_id, sa.func.count())
                .where(message_event.c.message_id.in_(ids), message_event.c.type == kind)
                .group_by(message_event.c.message_id)
            )
            counts = {row[0]: int(row[1]) for row in found}
        return {i: counts.get(i, 0) for i in ids}

    async def warm_up(self, org: str, sender_id: uuid.UUID, phones: list[str]) -> None:
        """A warm client, as a running dispatcher's is: sends do not wait for connections to
        open nor for the sender's token to be read (the limits' margin covers 0.1 s of varying
        delay between a grant and Meta, not a cold start's). The fake then forgets them."""
        await self.queue_from(org, sender_id, *phones)
        assert await self.dispatcher.run_once() == len(phones)
        self.fake.received.clear()

    async def claimed_at(self, ids: Sequence[uuid.UUID]) -> dict[uuid.UUID, float]:
        """When each of these messages was claimed (granted), in Unix seconds."""
        async with self.engine.connect() as conn:
            found = await conn.execute(
                sa.select(message_event.c.message_id, message_event.c.at).where(
                    message_event.c.message_id.in_(ids), message_event.c.type == "claimed"
                )
            )
            return {row.message_id: row.at.timestamp() for row in found}

    def arrived_at(self, phone: str) -> float:
        """When the fake received the one send to `phone`, in Unix seconds."""
        (at,) = self.arrivals(phone)
        return on_the_wall_clock(at)

    async def accepted(self, ids: Sequence[uuid.UUID]) -> int:
        async with self.engine.connect() as conn:
            return int(
                await conn.scalar(
                    sa.select(sa.func.count()).where(m.id.in_(ids), m.status == "ACCEPTED")
                )
                or 0
            )

    async def run_until_accepted(self, ids: Sequence[uuid.UUID], timeout_s: float = 30) -> None:
        """Run the dispatcher's loop until every one of `ids` was accepted by the fake."""
        task = asyncio.create_task(self.dispatcher.run(), name="test-dispatcher")
        try:
            await eventually(lambda: self._all_accepted(ids), timeout_s=timeout_s)
        finally:
            await self.dispatcher.stop()
            await task

    async def _all_accepted(self, ids: Sequence[uuid.UUID]) -> bool:
        return await self.accepted(ids) == len(ids)


@asynccontextmanager
async def sending_stack(
    database_url: str, redis_url: str = "", **overrides: Any
) -> AsyncIterator[Stack]:
    fake = FakeMeta(token=TOKEN)
    async with running_fake_meta(fake) as base_url:
        values: dict[str, Any] = {
            "provider": "cloud",
            "graph_api_base_url": base_url,
            "access_token": TOKEN,
            "phone_number_id": "106540352242922",
            "app_secret": "app-secret",
            "send_timeout_seconds": 2.0,
            "dispatch_poll_seconds": 0.05,
            "redis_url": redis_url,
        }
        settings = make_settings(database_url, **(values | overrides))
        engine = create_engine(settings)
        metrics = Metrics()
        limiter = create_rate_limiter(settings, engine, metrics)
        provider = CloudProvider(settings)
        dispatcher = Dispatcher(
            settings=settings, engine=engine, provider=provider, metrics=metrics, limiter=limiter
        )
        try:
            yield Stack(engine, dispatcher, limiter, fake, metrics)
        finally:
            await limiter.close()
            await provider.close()
            await engine.dispose()


def on_the_wall_clock(monotonic_s: float) -> float:
    """A time.monotonic() reading as Unix seconds, to compare with the claim events' times."""
    return monotonic_s + time.time() - time.monotonic()


def most_in_any_window(times: list[float], window_s: float = 1.0) -> int:
    """The most of `times` that fall in any half-open window [t, t + window_s)."""
    ordered = sorted(times)
    best, start = 0, 0
    for end, at in enumerate(ordered):
        while ordered[start] <= at - window_s:
            start += 1
        best = max(best, end - start + 1)
    return best


async def forget_keys(redis_url: str, *tags: str) -> None:
    """Delete the limiter's keys of these hash tags from the shared Redis (never FLUSHDB)."""
    from redis.asyncio import Redis

    client = Redis.from_url(redis_url)
    try:
        for tag in tags:
            mine = [k async for k in client.scan_iter(f"whatsapp:ratelimit:*{{{tag}}}*")]
            if mine:
                await client.delete(*mine)
    finally:
        await client.aclose()
