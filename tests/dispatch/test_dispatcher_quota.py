"""End to end: the dispatcher holds back what the organisation's quota does not grant."""

from __future__ import annotations

from collections import Counter

import sqlalchemy as sa
from redis.asyncio import Redis

from dispatch_helpers import event_types, message, new_org, queue
from helpers import eventually, make_settings
from wa_outbound.config import Settings
from wa_outbound.db.engine import create_engine
from wa_outbound.db.schema import outbound_message
from wa_outbound.dispatch.dispatcher import Dispatcher
from wa_outbound.metrics import Metrics
from wa_outbound.ratelimit import create_rate_limiter
from wa_outbound.whatsapp.sandbox import SandboxProvider, SandboxStatuses

PHONES = [f"+3361200{i:04d}" for i in range(1, 9)]


async def _quota_5_queue_8(settings: Settings) -> str:
    engine = create_engine(settings)
    metrics = Metrics()
    limiter = create_rate_limiter(settings, engine, metrics)
    dispatcher = Dispatcher(
        settings=settings,
        engine=engine,
        metrics=metrics,
        limiter=limiter,
        provider=SandboxProvider(SandboxStatuses(engine)),
    )
    try:
        org = await new_org(engine, *PHONES)
        await limiter.configure(
            org, limit=5, window_seconds=2, messages_per_second=1000, actor="test"
        )
        ids = await queue(engine, org, *PHONES)
        assert await dispatcher.run_once() == 5, "only what the quota grants is claimed"
        rows = [await message(engine, i) for i in ids]
        statuses = Counter(r["status"] for r in rows)
        assert statuses == Counter({"ACCEPTED": 5, "QUEUED": 3})
        waiting = [r for r in rows if r["status"] == "QUEUED"]
        assert all(r["attempts"] == 0 for r in waiting), "held back: no attempt used"
        for r in waiting:
            assert r["waiting_reason"] == "quota"
            assert r["next_attempt_at"] > r["created_at"], "not looked at before the reset"
            events = await event_types(engine, r["id"])
            assert events == ["queued", "quota_limited"], "held: never claimed"
        assert (await limiter.quota(org))["remaining"] == 0
        assert await dispatcher.run_once() == 0, "the org is held until the window resets"

        async def all_accepted() -> bool:
            await dispatcher.run_once()
            async with engine.connect() as conn:
                accepted = await conn.scalar(
                    sa.select(sa.func.count()).where(outbound_message.c.status == "ACCEPTED")
                )
            return accepted == 8

        await eventually(all_accepted, timeout_s=30)
        final = [await message(engine, i) for i in ids]
        assert all(r["attempts"] == 1 for r in final)
        assert all(r["waiting_reason"] is None for r in final), "cleared by the claim"
        return org
    finally:
        await limiter.close()
        await engine.dispose()


async def test_quota_of_5_sends_5_of_8_and_the_rest_after_the_window(database_url: str) -> None:
    await _quota_5_queue_8(make_settings(database_url))


async def test_quota_with_redis_sends_5_of_8_and_the_rest_after_the_window(
    postgres_url: str, redis_url: str
) -> None:
    settings = make_settings(postgres_url, redis_url=redis_url)
    org = await _quota_5_queue_8(settings)
    client = Redis.from_url(redis_url)  # the shared Redis: delete only this org's keys
    try:
        mine = [k async for k in client.scan_iter(f"whatsapp:ratelimit:*{org}*")]
        if mine:
            await client.delete(*mine)
    finally:
        await client.aclose()
