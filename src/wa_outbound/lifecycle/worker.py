"""The retention worker: a round every `WA_RETENTION_INTERVAL_SECONDS` on the one replica that
holds the retention lock (a PostgreSQL advisory lock, `db.leader`; SQLite serves one process).
A round runs batches until one comes back short, with a pause after each one
`WA_RETENTION_PAUSE_RATIO` times as long as the batch took (3: retention has the database a
quarter of the time, however slow it is under load), so that the service's own work gets the
database (and the process) in between.

Retention's own transactions commit with `synchronous_commit = off` (PostgreSQL): the commit
does not wait for its WAL to reach the disk, so a batch holds its locks and its connection for
less time. A crash can lose the last few batches' deletes (never more than about three times
`wal_writer_delay`), which is harmless: the rows are still old, and the next round deletes them
again. The service's own transactions keep the server's setting."""

from __future__ import annotations

import asyncio
import logging
import time
from collections import Counter
from datetime import datetime, timedelta

import sqlalchemy as sa
from sqlalchemy.ext.asyncio import AsyncConnection, AsyncEngine

from wa_outbound.config import Settings
from wa_outbound.db.dialect import is_postgres
from wa_outbound.db.leader import Leadership, lock_key
from wa_outbound.db.types import utcnow
from wa_outbound.lifecycle.retention import BATCHES
from wa_outbound.metrics import Metrics
from wa_outbound.workers import repeat

log = logging.getLogger(__name__)

# Any fixed bigint shared by every replica: "wa-reten" in ASCII.
RETENTION_LOCK_KEY = lock_key(b"wa-reten")
# For retention's own transactions only (see the module's docstring).
_ASYNC_COMMIT = sa.text("SET LOCAL synchronous_commit = off")


class RetentionWorker:
    def __init__(self, settings: Settings, engine: AsyncEngine, metrics: Metrics) -> None:
        self._settings = settings
        self._metrics = metrics
        self._leadership = Leadership(engine, key=RETENTION_LOCK_KEY, job="retention")
        self._stop = asyncio.Event()

    async def run(self) -> None:
        try:
            await repeat(
                self.run_once,
                every_s=self._settings.retention_interval_seconds,
                until=self._stop,
                what="retention round",
            )
        finally:
            await self.release()

    async def stop(self) -> None:
        self._stop.set()

    async def release(self) -> None:
        """Step down, so another replica leads at its next round (`run()` does it as it ends;
        tests that drive `run_once()` call it)."""
        await self._leadership.release()

    async def run_once(self) -> Counter[str] | None:
        """One round; the rows deleted per table, or None when another replica holds the lock
        (or retention is off)."""
        days = self._settings.retention_days
        if days == 0:
            return None
        async with self._leadership.round() as conn:
            if conn is None:
                return None
            return await self._round(conn, before=utcnow() - timedelta(days=days))

    def pause_s(self, took_s: float) -> float:
        """The pause after a batch that took `took_s`: in proportion to it, so retention has
        the database at most 1 / (1 + ratio) of the time, however slow it is under load."""
        ratio = self._settings.retention_pause_ratio
        return max(self._settings.retention_pause_seconds, took_s * ratio)

    async def _round(self, conn: AsyncConnection, *, before: datetime) -> Counter[str]:
        limit = self._settings.retention_batch_size
        total: Counter[str] = Counter()
        for chosen, batch in BATCHES:
            while not self._stop.is_set():
                began = time.monotonic()
                async with conn.begin():
                    if is_postgres(conn):
                        await conn.execute(_ASYNC_COMMIT)
                    deleted = await batch(conn, before=before, limit=limit)
                took_s = time.monotonic() - began
                for table, n in deleted.items():
                    self._metrics.retention_deleted.labels(table=table).inc(n)
                total.update(deleted)
                if deleted[chosen] < limit:  # the last batch of its kind
                    break
                await asyncio.sleep(self.pause_s(took_s))
        if total:
            log.info("retention deleted old rows", extra={"deleted": dict(total)})
        return total
