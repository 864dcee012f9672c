"""PostgreSQL LISTEN for new outbox rows, so a queued message is claimed at once.

Polling stays the fallback: if this connection drops, the dispatcher still polls every
WA_DISPATCH_POLL_SECONDS while the listener reconnects with back-off.
"""

from __future__ import annotations

import asyncio
import logging
from collections.abc import Callable
from typing import Any

import sqlalchemy as sa
from sqlalchemy.ext.asyncio import AsyncConnection, AsyncEngine

log = logging.getLogger(__name__)
CHANNEL = "wa_outbound_outbox"
_PROBE_S = 5.0


async def notify(conn: AsyncConnection) -> None:
    """Wake every replica's dispatcher when this transaction commits (sent once per
    transaction, however many rows it queued)."""
    await conn.execute(sa.text(f"NOTIFY {CHANNEL}"))


class OutboxListener:
    def __init__(self, engine: AsyncEngine, on_notify: Callable[[], None]) -> None:
        self._engine = engine
        self._on_notify = on_notify
        self._stop = asyncio.Event()

    async def run(self) -> None:
        backoff_s = 0.5
        while not self._stop.is_set():
            try:
                await self._listen()
                backoff_s = 0.5
            except Exception as exc:  # the database went away: poll meanwhile, retry later
                log.warning("outbox listener lost its connection", extra={"error": repr(exc)})
            try:
                await asyncio.wait_for(self._stop.wait(), backoff_s)
            except TimeoutError:
                backoff_s = min(backoff_s * 2, 30.0)

    async def stop(self) -> None:
        self._stop.set()

    def _callback(self, *_args: Any) -> None:
        self._on_notify()

    async def _listen(self) -> None:
        async with self._engine.connect() as conn:
            raw = await conn.get_raw_connection()
            driver: Any = raw.driver_connection
            await driver.add_listener(CHANNEL, self._callback)
            try:
                self._on_notify()  # anything queued while we were not listening
                while not self._stop.is_set():
                    try:
                        await asyncio.wait_for(self._stop.wait(), _PROBE_S)
                    except TimeoutError:
                        await driver.execute("SELECT 1")  # notice a dead connection
            finally:
                if not driver.is_closed():
                    await driver.remove_listener(CHANNEL, self._callback)
