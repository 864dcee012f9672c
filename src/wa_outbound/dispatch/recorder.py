"""Writing a dispatcher's outcomes: fenced (outcomes.py), retried while the database is away for
as long as the claims' leases last, shielded from a shutdown's cancellation, and counted."""

from __future__ import annotations

import asyncio
import logging
import time
from collections.abc import Callable
from datetime import datetime

from sqlalchemy.ext.asyncio import AsyncEngine

from wa_outbound.dispatch import outcomes, stopped
from wa_outbound.dispatch.outcomes import Outcome
from wa_outbound.metrics import Metrics
from wa_outbound.receipts import pending
from wa_outbound.status import CHANNEL_WHATSAPP, Status

log = logging.getLogger(__name__)


class Recorder:
    """The write side of one dispatcher."""

    def __init__(
        self,
        *,
        engine: AsyncEngine,
        metrics: Metrics,
        actor: str,
        clock: Callable[[], datetime],
        deadline: Callable[[], float],
    ) -> None:
        """`deadline()`: the monotonic time at which the claims' leases end if not renewed."""
        self.engine = engine
        self.metrics = metrics
        self.clock = clock
        self._actor = actor
        self._deadline = deadline

    async def record(self, results: list[Outcome]) -> None:
        """Meta has answered: the write must finish even if this batch is cancelled meanwhile
        (a shutdown), or each of these sends would be repeated once its lease expired."""
        write = asyncio.ensure_future(self._record(results))
        try:
            await asyncio.shield(write)
        except asyncio.CancelledError:
            await asyncio.wait({write})
            raise

    async def _record(self, results: list[Outcome]) -> None:
        """Write the outcomes, retrying while the database is away, for as long as the claims'
        leases last (counted from their last renewal). Past that another replica may reclaim
        them; a write that still lands later is fenced off and only recorded."""
        delay_s = 0.1
        while True:
            try:
                await self._write(results)
                return
            except Exception as exc:
                if time.monotonic() + delay_s > self._deadline():
                    log.error(
                        "outcomes could not be recorded; their leases will expire",
                        extra={"count": len(results), "error": repr(exc)},
                    )
                    raise
                log.warning(
                    "recording outcomes failed; retrying",
                    extra={"count": len(results), "error": repr(exc)},
                )
                await asyncio.sleep(delay_s)
                delay_s = min(delay_s * 2, 2.0)

    async def _write(self, results: list[Outcome]) -> None:
        now = self.clock()
        async with self.engine.begin() as conn:
            written = await outcomes.write_outcomes(conn, results, now=now, actor=self._actor)
            await stopped.flag_recipients(conn, results)
            # Statuses that beat this commit wait as pending; apply them in the same transaction.
            wamids = written.accepted_wamids + written.linked_wamids
            if wamids:
                await pending.apply_pending(conn, wamids, now=now)
        if written.stale_ids:
            log.warning(
                "outcomes arrived after their claims were lost; recorded, not applied",
                extra={"count": len(written.stale_ids), "duplicates": len(written.linked_wamids)},
            )
            self.metrics.duplicate_sends.labels(channel=CHANNEL_WHATSAPP).inc(
                len(written.linked_wamids)
            )
        for o in results:
            if o.message.id in written.stale_ids:
                continue
            if o.status is Status.ACCEPTED:
                self.metrics.sent.labels(channel=CHANNEL_WHATSAPP).inc()
                waited_s = (now - o.message.created_at).total_seconds()  # now is accepted_at
                self.metrics.enqueue_to_accepted.labels(channel=CHANNEL_WHATSAPP).observe(waited_s)
            elif o.status is Status.FAILED and o.error is not None:
                self.metrics.failed.labels(channel=CHANNEL_WHATSAPP, error_code=o.error.code).inc()
