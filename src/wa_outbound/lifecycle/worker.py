"""The retention worker: a round every `WA_RETENTION_INTERVAL_SECONDS` on the one replica that
holds the retention lock (a PostgreSQL advisory lock, `db.leader`; SQLite serves one process).
A round runs batches until one comes back short, with a pause between two at least as long
as the batch took, so that the service's own work gets the database (and the process) in
between."""

from __future__ import annotations

import asyncio
import logging
import time
from collections import Counter
from datetime import datetime, timedelta

from sqlalchemy.ext.asyncio import AsyncConnection, AsyncEngine

from wa_outbound.config import Settings
from wa_outbound.db.leader import Leadership, lock_key
from wa_outbound.db.types import utcnow
from wa_outbound.lifecycle.retention import BATCHES
from wa_outbound.metrics import Metrics
from wa_outbound.workers import repeat

log = logging.getLogger(__name__)

# Any fixed bigint shared by every replica: "wa-reten" in ASCII.
RETENTION_LOCK_KEY = lock_key(b"wa-reten")


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

    async def _round(self, conn: AsyncConnection, *, before: datetime) -> Counter[str]:
        limit = self._settings.retention_batch_size
        total: Counter[str] = Counter()
        for chosen, batch in BATCHES:
            while not self._stop.is_set():
                began = time.monotonic()
                async with conn.begin():
                    deleted = await batch(conn, before=before, limit=limit)
                took_s = time.monotonic() - began
                for table, n in deleted.items():
                    self._metrics.retention_deleted.labels(table=table).inc(n)
                total.update(deleted)
                if deleted[chosen] < limit:  # the last batch of its kind
                    break
                # At least as long as the batch took: retention has the database at most half
                # the time, however slow it is under load.
                await asyncio.sleep(max(self._settings.retention_pause_seconds, took_s))
        if total:
            log.info("retention deleted old rows", extra={"deleted": dict(total)})
        return total
