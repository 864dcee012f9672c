"""PostgreSQL LISTEN/NOTIFY between replicas: new outbox rows (every dispatcher claims at once)
and revoked API keys (every replica forgets its cached keys at once).

Each is a hint with a fallback: if a listener's connection drops, dispatchers still poll every
WA_DISPATCH_POLL_SECONDS and cached keys still expire after WA_API_KEY_CACHE_SECONDS, while the
listener reconnects with back-off.
"""

from __future__ import annotations

import asyncio
import logging
from collections.abc import Callable
from typing import Any

import sqlalchemy as sa
from sqlalchemy.ext.asyncio import AsyncConnection, AsyncEngine

from wa_outbound.db.dialect import is_postgres

log = logging.getLogger(__name__)
CHANNEL = "wa_outbound_outbox"
API_KEYS_CHANNEL = "wa_outbound_api_keys"
# New callback deliveries (every replica's callback worker claims at once).
CALLBACKS_CHANNEL = "wa_outbound_callbacks"
_PROBE_S = 5.0


async def notify(conn: AsyncConnection, channel: str = CHANNEL) -> None:
    """Tell every replica's listener on `channel` when this transaction commits (sent once per
    transaction, however often it is called in it). Nothing on SQLite: one process only."""
    if is_postgres(conn):
        await conn.execute(sa.text(f"NOTIFY {channel}"))


class Listener:
    """Calls `on_notify` for every notification on `channel`, and once on every (re)connect for
    whatever was sent while it was not listening."""

    def __init__(
        self, engine: AsyncEngine, on_notify: Callable[[], None], *, channel: str = CHANNEL
    ) -> None:
        self._engine = engine
        self._on_notify = on_notify
        self._channel = channel
        self._stop = asyncio.Event()

    async def run(self) -> None:
        backoff_s = 0.5
        while not self._stop.is_set():
            try:
                await self.run_once()
                backoff_s = 0.5
            except Exception as exc:  # the database went away: poll meanwhile, retry later
                log.warning(
                    "listener lost its connection",
                    extra={"channel": self._channel, "error": repr(exc)},
                )
            try:
                await asyncio.wait_for(self._stop.wait(), backoff_s)
            except TimeoutError:
                backoff_s = min(backoff_s * 2, 30.0)

    async def stop(self) -> None:
        self._stop.set()

    def _callback(self, *_args: Any) -> None:
        self._on_notify()

    async def run_once(self) -> None:
        """Listen on one connection: returns when stopped, raises when the connection is lost."""
        async with self._engine.connect() as conn:
            raw = await conn.get_raw_connection()
            driver: Any = raw.driver_connection
            await driver.add_listener(self._channel, self._callback)
            try:
                self._on_notify()  # anything sent while we were not listening
                while not self._stop.is_set():
                    try:
                        await asyncio.wait_for(self._stop.wait(), _PROBE_S)
                    except TimeoutError:
                        await driver.execute("SELECT 1")  # notice a dead connection
            finally:
                if not driver.is_closed():
                    await driver.remove_listener(self._channel, self._callback)
