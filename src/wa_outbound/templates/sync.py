"""Keeping each WABA's registry in step with Meta: read in full every `WA_TEMPLATE_SYNC_SECONDS`
(one replica per WABA and period: the `attempted_at` compare-and-set), at once when a sender of
a new WABA is added or `POST /v1/templates/sync` asks, and one name at a time when a message
names a template the registry does not know.

No transaction is open while Meta is asked. A WABA Meta cannot be read for keeps its registry as
it was (never synced: advisory, its templates are all accepted).
"""

from __future__ import annotations

import asyncio
import logging
from collections.abc import Callable
from datetime import datetime, timedelta

import sqlalchemy as sa
from sqlalchemy.ext.asyncio import AsyncEngine

from wa_outbound.config import Settings
from wa_outbound.crypto import UndecryptableSecret
from wa_outbound.db.dialect import insert
from wa_outbound.db.schema import SHARED_SENDER_ID, sender
from wa_outbound.db.template_schema import template_sync
from wa_outbound.db.types import utcnow
from wa_outbound.templates import registry
from wa_outbound.templates.meta import Source, TemplateReadError, create_source
from wa_outbound.workers import repeat

log = logging.getLogger(__name__)
s, ts = sender.c, template_sync.c


class TemplateSync:
    """The registry's reader, and the background worker that runs it (`run`, `run_once`)."""

    def __init__(
        self,
        engine: AsyncEngine,
        settings: Settings,
        *,
        decrypt: Callable[[str], str] = lambda stored: stored.removeprefix("plain:"),
        source: Source | None = None,
        clock: Callable[[], datetime] = utcnow,
    ) -> None:
        self._engine = engine
        self._settings = settings
        self._decrypt = decrypt
        self.source = source or create_source(settings)
        self._clock = clock
        self._every = timedelta(seconds=settings.template_sync_seconds)
        self._stop = asyncio.Event()
        self._tasks: set[asyncio.Task[bool]] = set()

    async def run(self) -> None:
        poll_s = min(self._settings.template_sync_seconds, 60.0)
        await repeat(self.run_once, every_s=poll_s, until=self._stop, what="template sync")

    async def stop(self) -> None:
        self._stop.set()
        for task in list(self._tasks):
            task.cancel()
        await asyncio.gather(*self._tasks, return_exceptions=True)

    async def run_once(self) -> int:
        """Sync every WABA whose last attempt is a period old (or that never had one)."""
        synced = 0
        for waba_id in await self._wabas():
            if await self._claim(waba_id, force=False):
                synced += await self._read(waba_id)
        return synced

    def request(self, waba_id: str, *, unless_synced: bool = False) -> None:
        """Sync this WABA soon, in the background: never the caller's wait. `unless_synced`: only
        a WABA never read yet (a sender was added)."""
        task = asyncio.create_task(
            self.sync(waba_id, unless_synced=unless_synced), name=f"template-sync-{waba_id}"
        )
        self._tasks.add(task)
        task.add_done_callback(self._tasks.discard)

    async def sync(self, waba_id: str, *, unless_synced: bool = False) -> bool:
        """Read the WABA in full now; whether it worked (the error is kept on its row)."""
        if unless_synced:
            async with self._engine.connect() as conn:
                synced = await conn.scalar(
                    sa.select(ts.synced_at).where(ts.waba_id == waba_id, ts.synced_at.is_not(None))
                )
            if synced is not None:
                return True
        await self._claim(waba_id, force=True)
        try:
            return bool(await self._read(waba_id))
        except Exception:
            log.exception("template sync failed", extra={"waba_id": waba_id})
            return False

    async def look_up(self, waba_id: str, name: str) -> bool:
        """Ask Meta for one name the registry does not know; store what it lists. False when
        Meta could not be asked (the caller then treats the registry as advisory)."""
        try:
            token = await self._token(waba_id)
            items = await self.source.list_templates(waba_id, token, name=name)
        except (TemplateReadError, UndecryptableSecret) as exc:
            log.warning("template lookup failed", extra={"waba_id": waba_id, "error": str(exc)})
            return False
        # Meta matches names loosely: keep only this one's languages.
        exact = [item for item in items if item.get("name") == name]
        async with self._engine.begin() as conn:
            await registry.store_listing(conn, waba_id, exact, now=self._clock(), complete=False)
        return True

    async def _read(self, waba_id: str) -> int:
        now = self._clock()
        try:
            token = await self._token(waba_id)
            items = await self.source.list_templates(waba_id, token)
        except (TemplateReadError, UndecryptableSecret) as exc:
            log.warning("template sync failed", extra={"waba_id": waba_id, "error": str(exc)})
            async with self._engine.begin() as conn:
                await registry.mark_synced(conn, waba_id, now=now, error=str(exc)[:2000])
            return 0
        async with self._engine.begin() as conn:
            await registry.store_listing(conn, waba_id, items, now=now, complete=True)
        return 1

    async def _wabas(self) -> list[str]:
        async with self._engine.connect() as conn:
            rows = await conn.execute(
                sa.select(s.waba_id)
                .distinct()
                .where(s.deleted_at.is_(None), s.waba_id.is_not(None))
            )
            return sorted(row.waba_id for row in rows)

    async def _claim(self, waba_id: str, *, force: bool) -> bool:
        """Take this period's sync of the WABA: a compare-and-set on `attempted_at`, so of the
        replicas that look at once, one reads Meta."""
        now = self._clock()
        async with self._engine.begin() as conn:
            stmt = insert(conn, template_sync).values(waba_id=waba_id, attempted_at=now)
            await conn.execute(stmt.on_conflict_do_nothing(index_elements=["waba_id"]))
            query = template_sync.update().where(ts.waba_id == waba_id)
            if not force:
                query = query.where(
                    sa.or_(
                        ts.synced_at.is_(None) & (ts.attempted_at == now),
                        ts.attempted_at <= now - self._every,
                    )
                )
            result = await conn.execute(query.values(attempted_at=now))
            return bool(result.rowcount)

    async def _token(self, waba_id: str) -> str | None:
        """A token of a sender of the WABA: the shared sender's from the settings, else a live
        sender's stored token, decrypted."""
        shared = self._settings.access_token.get_secret_value()
        if shared and waba_id == self._settings.shared_waba:
            return shared
        async with self._engine.connect() as conn:
            stored = await conn.scalar(
                sa.select(s.access_token)
                .where(
                    s.waba_id == waba_id,
                    s.deleted_at.is_(None),
                    s.access_token.is_not(None),
                    s.id != SHARED_SENDER_ID,
                )
                .order_by(s.created_at)
                .limit(1)
            )
        return self._decrypt(stored) if stored else None
