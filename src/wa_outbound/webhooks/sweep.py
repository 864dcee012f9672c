"""The periodic sweep behind webhook processing: pending statuses, failed bodies, and account
restrictions whose end has passed."""

from __future__ import annotations

import asyncio
import logging
from dataclasses import dataclass
from datetime import timedelta

from sqlalchemy.ext.asyncio import AsyncEngine

from wa_outbound.contacts.keywords import DEFAULT_KEYWORDS, Keywords
from wa_outbound.db.types import utcnow
from wa_outbound.metrics import Metrics
from wa_outbound.receipts.pending import apply_known_pending, drop_expired_pending
from wa_outbound.receipts.statuses import KNOWN_STATUSES
from wa_outbound.webhooks import intake, stored
from wa_outbound.webhooks.management import lift_ended_restrictions
from wa_outbound.workers import repeat

log = logging.getLogger(__name__)


@dataclass(frozen=True)
class SweepResult:
    applied: int  # pending statuses whose wamid became known
    dropped: int  # pending statuses too old to wait for any longer
    reprocessed: int  # stored bodies processed again successfully
    still_failing: int
    restrictions_lifted: int = 0  # WABAs whose account restriction's expiration passed


class ReceiptSweep:
    """Applies pending statuses the dispatcher's own call missed (a status stored as pending
    while the wamid was being committed), drops those older than `pending_max_age_s`,
    processes again the stored webhook bodies whose processing failed, and resumes the senders
    of WABAs whose account restriction has expired.

    Bodies younger than `retry_after_s` are left alone: their request, or the applier of the
    replica that stored them, may still be on them. The bodies of a replica that stopped
    between storing and applying (a crash) are applied here.
    A body is tried `max_attempts` times, then stays stored, unprocessed, for an operator.
    """

    def __init__(
        self,
        engine: AsyncEngine,
        *,
        metrics: Metrics,
        pending_max_age_s: float,
        interval_s: float = 5.0,
        retry_after_s: float = 5.0,
        max_attempts: int = 10,
        batch_size: int = 500,
        keywords: Keywords = DEFAULT_KEYWORDS,
    ) -> None:
        self._engine = engine
        self._keywords = keywords
        self._metrics = metrics
        self._pending_max_age = timedelta(seconds=pending_max_age_s)
        self._interval_s = interval_s
        self._retry_after = timedelta(seconds=retry_after_s)
        self._max_attempts = max_attempts
        self._batch_size = batch_size
        self._stopping = asyncio.Event()

    async def run(self) -> None:
        await repeat(
            self.run_once, every_s=self._interval_s, until=self._stopping, what="receipt sweep"
        )

    async def stop(self) -> None:
        self._stopping.set()

    async def run_once(self) -> SweepResult:
        now = utcnow()
        # Bodies first: processing them may add pending statuses, which the next step applies.
        results = await stored.reprocess(
            self._engine,
            received_before=now - self._retry_after,
            max_attempts=self._max_attempts,
            limit=self._batch_size,
            now=now,
            keywords=self._keywords,
        )
        count(self._metrics, results)
        applied = 0
        while True:
            async with self._engine.begin() as conn:
                taken = await apply_known_pending(conn, now=now, limit=self._batch_size)
            applied += taken
            if taken < self._batch_size:
                break
        # Applied before dropped: an old status whose wamid is finally known still counts.
        async with self._engine.begin() as conn:
            dropped = await drop_expired_pending(
                conn, older_than=now - self._pending_max_age, limit=self._batch_size
            )
        for _wamid, status in dropped:
            label = status if status in KNOWN_STATUSES else "other"
            self._metrics.webhook_pending_dropped.labels(status=label).inc()
        if dropped:
            log.warning(
                "dropped pending statuses whose wamid stayed unknown",
                extra={
                    "count": len(dropped),
                    "max_age_s": self._pending_max_age.total_seconds(),
                    "examples": [wamid for wamid, _ in dropped[:5]],
                },
            )
        async with self._engine.begin() as conn:
            lifted = await lift_ended_restrictions(conn, now=now)
        return SweepResult(applied, len(dropped), results.bodies, results.failed, len(lifted))


def count(metrics: Metrics, applied: stored.Applied) -> None:
    """Add what applying stored bodies did to the metrics."""
    for processed in applied.processed:
        intake.count(metrics, processed)
    for _ in range(applied.failed):
        intake.count(metrics, None)
