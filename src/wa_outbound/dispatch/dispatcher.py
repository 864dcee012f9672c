"""The dispatcher: drains the outbox into the provider, many replicas safely, nothing lost.

Each round claims a batch under a lease (one statement), asks the rate limiter once per
organisation, sends concurrently under a semaphore, and writes every outcome back in one short
transaction. No transaction is held across a call to Meta. Batches overlap: the loop claims the
next batch while earlier ones are still sending, up to twice the send concurrency in flight.
"""

from __future__ import annotations

import asyncio
import logging
import os
import socket
import time
from collections.abc import Callable
from datetime import datetime

from sqlalchemy.ext.asyncio import AsyncEngine

from wa_outbound.config import Settings
from wa_outbound.db.listener import Listener
from wa_outbound.db.types import utcnow
from wa_outbound.dispatch import claims, outcomes
from wa_outbound.dispatch.admission import Limiter, admit
from wa_outbound.dispatch.claims import Claimed
from wa_outbound.dispatch.outcomes import Outcome
from wa_outbound.dispatch.policy import CONSENT_REVOKED, outcome_of
from wa_outbound.logs import message_fields
from wa_outbound.metrics import Metrics
from wa_outbound.phone import mask
from wa_outbound.status import CHANNEL_WHATSAPP, Status
from wa_outbound.webhooks import receipts
from wa_outbound.whatsapp.provider import OutgoingMessage, Provider

log = logging.getLogger(__name__)


class Dispatcher:
    def __init__(
        self,
        *,
        settings: Settings,
        engine: AsyncEngine,
        provider: Provider,
        metrics: Metrics,
        limiter: Limiter | None = None,
        clock: Callable[[], datetime] = utcnow,
    ) -> None:
        self.settings = settings
        self.engine = engine
        self.provider = provider
        self.metrics = metrics
        self.limiter = limiter
        self.clock = clock
        self.worker_id = f"{socket.gethostname()}:{os.getpid()}:{id(self) % 10_000}"
        self._actor = f"dispatcher:{self.worker_id}"
        self._send_slots = asyncio.Semaphore(settings.dispatch_concurrency)
        self._wake = asyncio.Event()
        self._stopping = asyncio.Event()
        self._in_flight: dict[asyncio.Task[int], int] = {}
        self._last_reclaim = 0.0

    def wake(self) -> None:
        """New work was queued: claim now rather than at the next poll."""
        self._wake.set()

    async def run(self) -> None:
        listener = Listener(self.engine, self.wake) if self.settings.is_postgres else None
        listen_task = (
            asyncio.create_task(listener.run(), name="outbox-listener") if listener else None
        )
        try:
            failures = 0
            while not self._stopping.is_set():
                try:
                    claimed, capacity = await self._round()
                    failures = 0
                except Exception as exc:
                    # The database (or the limiter) is unavailable: keep the loop alive and
                    # try again with back-off; claims resume by themselves when it returns.
                    failures += 1
                    log.warning(
                        "dispatch round failed", extra={"error": repr(exc), "failures": failures}
                    )
                    await self._idle(min(self.settings.dispatch_poll_seconds * 2**failures, 5.0))
                    continue
                if claimed == 0 or capacity <= 0:
                    await self._idle()
        finally:
            if listener and listen_task:
                await listener.stop()
                await listen_task
            await self._drain()

    async def run_once(self) -> int:
        """Claim one batch and process it to the end (tests drive the dispatcher this way)."""
        batch = await self._claim_rows(self.settings.dispatch_batch_size)
        if batch:
            await self._process(batch)
        return len(batch)

    async def stop(self) -> None:
        self._stopping.set()
        self._wake.set()

    async def reclaim(self) -> int:
        async with self.engine.begin() as conn:
            return await outcomes.reclaim_expired(conn, now=self.clock(), actor=self._actor)

    async def _maybe_reclaim(self) -> None:
        every_s = min(self.settings.lease_seconds / 2, 5.0)
        if time.monotonic() - self._last_reclaim >= every_s:
            self._last_reclaim = time.monotonic()
            count = await self.reclaim()
            if count:
                log.warning("reclaimed expired leases", extra={"count": count})

    async def _round(self) -> tuple[int, int]:
        """Reclaim expired leases when due, then claim as much as there is room for."""
        await self._maybe_reclaim()
        capacity = 2 * self.settings.dispatch_concurrency - sum(self._in_flight.values())
        claimed = 0
        if capacity > 0:
            claimed = await self._claim(min(self.settings.dispatch_batch_size, capacity))
        return claimed, capacity

    async def _idle(self, timeout_s: float | None = None) -> None:
        wake = asyncio.ensure_future(self._wake.wait())
        stop = asyncio.ensure_future(self._stopping.wait())
        try:
            await asyncio.wait(
                {wake, stop},
                timeout=timeout_s if timeout_s is not None else self.settings.dispatch_poll_seconds,
                return_when=asyncio.FIRST_COMPLETED,
            )
        finally:
            wake.cancel()
            stop.cancel()
        self._wake.clear()

    async def _claim(self, limit: int) -> int:
        batch = await self._claim_rows(limit)
        if batch:
            task = asyncio.create_task(self._process(batch), name="dispatch-batch")
            self._in_flight[task] = len(batch)
            task.add_done_callback(self._batch_done)
        return len(batch)

    def _batch_done(self, task: asyncio.Task[int]) -> None:
        size = self._in_flight.pop(task)
        if not task.cancelled() and task.exception() is not None:
            # The batch's rows stay SENDING until their lease expires; then they are retried.
            log.error("dispatch batch failed", exc_info=task.exception(), extra={"count": size})
        self._wake.set()  # capacity freed: claim again without waiting for the poll

    async def _claim_rows(self, limit: int) -> list[Claimed]:
        async with self.engine.begin() as conn:
            batch = await claims.claim_batch(
                conn,
                limit=limit,
                worker=self.worker_id,
                lease_s=self.settings.lease_seconds,
                now=self.clock(),
            )
        self.metrics.dispatcher_claims.labels(result="claimed" if batch else "empty").inc()
        if batch:
            self.metrics.dispatcher_batch_size.observe(len(batch))
        return batch

    async def _process(self, batch: list[Claimed]) -> int:
        now = self.clock()
        results: list[Outcome] = []
        to_send: list[Claimed] = []
        for message in batch:
            if message.consented:
                to_send.append(message)
            else:
                log.info(
                    "consent revoked since queuing; not sent",
                    extra=message_fields(
                        message_id=message.id,
                        org_id=message.org_id,
                        attempt=message.attempt,
                        error_code=CONSENT_REVOKED.code,
                        to=mask(message.to),
                    ),
                )
                results.append(
                    Outcome(message, Status.FAILED, "consent_revoked", error=CONSENT_REVOKED)
                )
        granted, held = await admit(self.limiter, to_send, now)
        results += held
        started: set[object] = set()
        sends = [asyncio.ensure_future(self._send(m, started)) for m in granted]
        try:
            results += await asyncio.gather(*sends)
        except asyncio.CancelledError:
            # Shutdown past the grace period: keep what finished, release the rest. A send
            # that never started gives its attempt back; one cut off mid-request keeps it
            # (Meta may have received it) and is retried.
            for message, send in zip(granted, sends, strict=True):
                if send.done() and not send.cancelled():
                    results.append(send.result())
                else:
                    send.cancel()
                    results.append(
                        Outcome(
                            message,
                            Status(message.from_status)
                            if message.id not in started
                            else Status.RETRYING,
                            "released",
                            next_attempt_at=self.clock(),
                            give_back_attempt=message.id not in started,
                            details={"reason": "shutdown"},
                        )
                    )
            await asyncio.shield(self._record(results))
            raise
        await self._record(results)
        return len(batch)

    async def _record(self, results: list[Outcome]) -> None:
        """Write the outcomes, retrying while the database is away. Meta has already answered:
        losing these would resend the batch after its lease expires (a duplicate per message)."""
        deadline = time.monotonic() + self.settings.lease_seconds / 2
        delay_s = 0.1
        while True:
            try:
                await self._write(results)
                return
            except Exception as exc:
                if time.monotonic() + delay_s > deadline:
                    log.error(
                        "outcomes could not be recorded; the lease will retry them",
                        extra={"count": len(results), "error": repr(exc)},
                    )
                    raise
                log.warning(
                    "recording outcomes failed; retrying",
                    extra={"count": len(results), "error": repr(exc)},
                )
                await asyncio.sleep(delay_s)
                delay_s = min(delay_s * 2, 2.0)

    async def _send(self, message: Claimed, started_ids: set[object]) -> Outcome:
        outgoing = OutgoingMessage(
            id=message.id,
            org_id=message.org_id,
            to=message.to,
            kind=message.kind,
            payload=message.payload,
            attempt=message.attempt,
        )
        async with self._send_slots:
            started_ids.add(message.id)
            started = time.perf_counter()
            result = await self.provider.send(outgoing)
            elapsed = time.perf_counter() - started
        self.metrics.send_latency.labels(
            channel=CHANNEL_WHATSAPP, outcome="accepted" if result.wamid else "error"
        ).observe(elapsed)
        return outcome_of(
            message,
            result,
            now=self.clock(),
            base_s=self.settings.retry_base_seconds,
            max_s=self.settings.retry_max_seconds,
        )

    async def _write(self, results: list[Outcome]) -> None:
        now = self.clock()
        async with self.engine.begin() as conn:
            wamids = await outcomes.write_outcomes(conn, results, now=now, actor=self._actor)
            # Statuses that beat this commit wait as pending; apply them in the same transaction.
            if wamids:
                await receipts.apply_pending(conn, wamids, now=now)
        for o in results:
            if o.status is Status.ACCEPTED:
                self.metrics.sent.labels(channel=CHANNEL_WHATSAPP).inc()
                waited_s = (now - o.message.created_at).total_seconds()  # now is accepted_at
                self.metrics.enqueue_to_accepted.labels(channel=CHANNEL_WHATSAPP).observe(waited_s)
            elif o.status is Status.FAILED and o.error is not None:
                self.metrics.failed.labels(channel=CHANNEL_WHATSAPP, error_code=o.error.code).inc()

    async def _drain(self) -> None:
        """Shutdown: let in-flight batches finish within the grace period, then cancel them;
        a cancelled batch releases its unsent messages (see _process)."""
        if not self._in_flight:
            return
        _done, pending = await asyncio.wait(
            set(self._in_flight), timeout=self.settings.shutdown_grace_seconds
        )
        for task in pending:
            task.cancel()
        if pending:
            await asyncio.gather(*pending, return_exceptions=True)
