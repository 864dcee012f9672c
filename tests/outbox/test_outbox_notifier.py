"""The coalesced NOTIFY that wakes other replicas' dispatchers after enqueues (PostgreSQL)."""

from __future__ import annotations

import asyncio

import asyncpg
from sqlalchemy.ext.asyncio import AsyncEngine

from wa_outbound.db.listener import CHANNEL
from wa_outbound.outbox.notifier import OutboxNotifier


async def test_nothing_is_sent_without_a_poke(pg_engine: AsyncEngine) -> None:
    assert await OutboxNotifier(pg_engine).run_once() is False


async def test_many_pokes_send_one_notify(pg_engine: AsyncEngine, postgres_url: str) -> None:
    heard: asyncio.Queue[str] = asyncio.Queue()
    listener = await asyncpg.connect(postgres_url.replace("postgresql+asyncpg://", "postgresql://"))
    await listener.add_listener(CHANNEL, lambda *args: heard.put_nowait(args[2]))
    try:
        notifier = OutboxNotifier(pg_engine)
        for _ in range(5):
            notifier.poke()
        assert await notifier.run_once() is True
        assert await notifier.run_once() is False
        await asyncio.wait_for(heard.get(), timeout=10)
        await listener.execute("SELECT 1")  # any second notification would have arrived by now
        assert heard.empty()
    finally:
        await listener.close()
