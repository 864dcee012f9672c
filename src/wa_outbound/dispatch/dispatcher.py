"""The dispatcher: drains the outbox into the provider, many replicas safely, nothing lost.

Each round locks the due rows at the head of the queue, asks the rate limiter once per
sender and claims what it granted under a lease (one short transaction), sends
concurrently under a semaphore, and writes every outcome back in one short transaction, fenced
by the claim. No transaction is held across a call to Meta. Batches overlap: the loop claims the
next batch while earlier ones are still sending, up to twice the send concurrency in flight. A
heartbeat keeps the leases of everything in flight alive, so only a dead or stalled replica's
claims expire.
"""

from __future__ import annotations

import asyncio
import logging
import os
import socket
import time
from asyncio import FIRST_COMPLETED
from collections.abc import Callable
from datetime import datetime

from sqlalchemy.ext.asyncio import AsyncConnection, AsyncEngine

from wa_outbound.config import Settings
from wa_outbound.db.listener import Listener
from wa_outbound.db.types import utcnow
from wa_outbound.dispatch import claims, expiry, outcomes, refusals, unsent
from wa_outbound.dispatch.admission import Admission, Gate, Limiter
from wa_outbound.dispatch.claims import Claimed
from wa_outbound.dispatch.outcomes import Outcome
from wa_outbound.dispatch.policy import outcome_of
from wa_outbound.dispatch.recorder import Recorder
from wa_outbound.logs import message_fields
from wa_outbound.metrics import Metrics
from wa_outbound.senders.directory import Credentials, Directory
from wa_outbound.status import CHANNEL_WHATSAPP
from wa_outbound.whatsapp.provider import OutgoingMessage, Provider, SendResult
from wa_outbound.whatsapp.retry import ProviderError

log = logging.getLogger(__name__)

# How long a batch waits, after an answer, for more answers to write with it.
SETTLE_LINGER_S = 0.02


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
        senders: Directory | None = None,
        session_engine: AsyncEngine | None = None,
    ) -> None:
        self.settings = settings
        self.engine = engine
        # LISTEN needs a session: not a transaction pooler's (db.engine.create_session_engine).
        self.session_engine = session_engine or engine
        self.provider = provider
        self.metrics = metrics
        self.limiter = limiter
        self.clock = clock
        self.senders = senders or Directory(engine, settings)
        self.worker_id = f"{socket.gethostname()}:{os.getpid()}:{id(self) % 10_000}"
        self._actor = f"dispatcher:{self.worker_id}"
        self._send_slots = asyncio.Semaphore(settings.dispatch_concurrency)
        self._wake = asyncio.Event()
        self._stopping = asyncio.Event()
        self._batches: set[asyncio.Task[int]] = set()
        self._last_reclaim = 0.0
        throttled = metrics.sender_throttled
        self._gate = Gate(lambda sender, why: throttled.labels(sender=sender, reason=why).inc())
        self._recorder = Recorder(
            engine=engine,
            metrics=metrics,
            actor=self._actor,
            clock=clock,
            deadline=lambda: self._leases_renewed_at + settings.lease_seconds,
        )
        # Every claim this replica holds, for the heartbeat; and when its leases were last known
        # to be renewed (monotonic), which bounds how long an outcome write may be retried.
        self._owned: dict[object, Claimed] = {}
        self._leases_renewed_at = time.monotonic()

    def wake(self) -> None:
        """New work was queued: claim now rather than at the next poll."""
        self._wake.set()

    async def run(self) -> None:
        await self.senders.ensure_shared()
        listener = Listener(self.session_engine, self.wake) if self.settings.is_postgres else None
        listen_task = (
            asyncio.create_task(listener.run(), name="outbox-listener") if listener else None
        )
        heartbeat = asyncio.create_task(self._heartbeat(), name="dispatch-heartbeat")
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
                    # Held orgs wake the loop when their hold ends, not a poll later.
                    release_s = self._gate.next_release_s()
                    poll_s = self.settings.dispatch_poll_seconds
                    await self._idle(poll_s if release_s is None else min(poll_s, release_s))
        finally:
            if listener and listen_task:
                await listener.stop()
                await listen_task
            await self._drain()
            heartbeat.cancel()
            await asyncio.gather(heartbeat, return_exceptions=True)

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
        """Expired leases back to the queue, and messages past their `expires_at` ended."""
        async with self.engine.begin() as conn:
            await expiry.expire_due(conn, now=self.clock(), actor=self._actor)
            return await outcomes.reclaim_expired(conn, now=self.clock(), actor=self._actor)

    async def renew_leases(self) -> int:
        """Push the lease of every claim in flight one lease ahead; returns how many held."""
        claimed = list(self._owned.values())
        renewing_at = time.monotonic()  # the new leases count from no later than this
        async with self.engine.begin() as conn:
            held = await claims.extend_leases(
                conn, claimed, worker=self.worker_id, lease_s=self.settings.lease_seconds
            )
        self._leases_renewed_at = renewing_at
        return held

    async def _heartbeat(self) -> None:
        every_s = self.settings.lease_seconds / 3
        while True:
            await asyncio.sleep(every_s)
            if not self._owned:
                self._leases_renewed_at = time.monotonic()
                continue
            try:
                await self.renew_leases()
            except Exception as exc:
                log.warning("renewing leases failed", extra={"error": repr(exc)})

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
        capacity = 2 * self.settings.dispatch_concurrency - len(self._owned)
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
            self._batches.add(task)
            task.add_done_callback(self._batch_done)
        return len(batch)

    def _batch_done(self, task: asyncio.Task[int]) -> None:
        self._batches.discard(task)
        if not task.cancelled() and task.exception() is not None:
            # Its unsettled rows stay SENDING until their lease expires; then they are retried.
            log.error("dispatch batch failed", exc_info=task.exception())
        self._wake.set()  # capacity freed: claim again without waiting for the poll

    async def _claim_rows(self, limit: int) -> list[Claimed]:
        now = self.clock()
        senders, orgs = self._gate.senders.held(), self._gate.orgs.held()
        if self.settings.is_postgres:
            # The limiter is asked while the due rows are locked, so what it grants is exactly
            # what is claimed; a limiter or database error rolls everything back and burns no
            # attempt.
            async with self.engine.begin() as conn:
                due = await claims.lock_due(
                    conn, limit=limit, now=now, skip_senders=senders, skip_orgs=orgs
                )
                admission = await self._gate.admit(self.limiter, due, now)
                batch = await self._claim_granted(conn, admission, now)
        else:
            # SQLite: one process, one writer. The database limiter writes on a connection of
            # its own, so it is asked between the read and the claim's write transaction.
            async with self.engine.connect() as conn:
                due = await claims.lock_due(
                    conn, limit=limit, now=now, skip_senders=senders, skip_orgs=orgs
                )
            admission = await self._gate.admit(self.limiter, due, now)
            async with self.engine.begin() as conn:
                batch = await self._claim_granted(conn, admission, now)
        self._owned.update((message.id, message) for message in batch)
        self.metrics.dispatcher_claims.labels(result="claimed" if batch else "empty").inc()
        if batch:
            self.metrics.dispatcher_batch_size.observe(len(batch))
        return batch

    async def _claim_granted(
        self, conn: AsyncConnection, admission: Admission, now: datetime
    ) -> list[Claimed]:
        await claims.hold(conn, admission.waits, now=now, actor=self._actor)
        refused, metrics = admission.refused, self.metrics
        await refusals.fail(conn, refused, now=now, actor=self._actor, metrics=metrics)
        claimed = await claims.claim(
            conn,
            [row.id for row in admission.granted],
            worker=self.worker_id,
            lease_s=self.settings.lease_seconds,
            now=now,
        )
        return admission.send_order(claimed)

    async def _process(self, batch: list[Claimed]) -> int:
        """Send a claimed batch and write its outcomes as the answers come, in groups: answers
        that arrive within `SETTLE_LINGER_S` of each other share one write, so a send that waits
        out its timeout holds back no other message's outcome (nor its slot)."""
        try:
            revoked = [unsent.consent_revoked(m) for m in batch if not m.consented]
            if revoked:
                await self._settle(revoked)
            to_send = [m for m in batch if m.consented]
            try:
                credentials = await self.senders.credentials({m.sender_id for m in to_send})
            except Exception as exc:
                # Nothing was sent: every claim goes back as it was, its attempt given back.
                log.warning("reading senders failed", extra={"error": repr(exc)})
                await self._settle(
                    [
                        unsent.released(m, False, self.clock(), "senders_unavailable")
                        for m in to_send
                    ]
                )
                return len(batch)
            unknown = [m for m in to_send if m.sender_id not in credentials]
            if unknown:
                await self._settle([unsent.no_sender(m) for m in unknown])
            readable = {key: c for key, c in credentials.items() if c.token is not None}
            sealed = [m for m in to_send if m.sender_id in credentials.keys() - readable.keys()]
            if sealed:
                later = self.clock() + unsent.UNREADABLE_RETRY
                await self._settle(
                    [unsent.released(m, False, later, "token_unreadable") for m in sealed]
                )
            started: set[object] = set()
            sends: dict[asyncio.Future[Outcome], Claimed] = {
                asyncio.ensure_future(self._send(m, readable[m.sender_id], started)): m
                for m in to_send
                if m.sender_id in readable
            }
            unsettled: set[asyncio.Future[Outcome]] = set(sends)
            try:
                while unsettled:
                    await asyncio.wait(unsettled, return_when=FIRST_COMPLETED)
                    running = {send for send in unsettled if not send.done()}
                    if running:
                        await asyncio.wait(running, timeout=SETTLE_LINGER_S)
                    done = {send for send in unsettled if send.done()}
                    unsettled -= done  # before the write: a cancelled write still completes
                    await self._settle([send.result() for send in done])
            except asyncio.CancelledError:
                # Shutdown past the grace period: settle what finished, release the rest.
                finished = [s.result() for s in unsettled if s.done() and not s.cancelled()]
                cut = [
                    unsent.released(sends[s], sends[s].id in started, self.clock())
                    for s in unsettled
                    if not s.done() or s.cancelled()
                ]
                for send in unsettled:
                    send.cancel()
                await self._settle(finished + cut)
                raise
            return len(batch)
        finally:
            for message in batch:
                self._owned.pop(message.id, None)

    async def _settle(self, results: list[Outcome]) -> None:
        """Write these outcomes; their claims leave the replica's care and free their slots."""
        try:
            await self._recorder.record(results)
        finally:
            for outcome in results:
                self._owned.pop(outcome.message.id, None)
            self._wake.set()

    async def _send(
        self, message: Claimed, credentials: Credentials, started_ids: set[object]
    ) -> Outcome:
        outgoing = OutgoingMessage(
            id=message.id,
            org_id=message.org_id,
            to=message.to,
            kind=message.kind,
            payload=message.payload,
            attempt=message.attempt,
            phone_number_id=credentials.phone_number_id,
            token=credentials.token or "",
        )
        async with self._send_slots:
            started_ids.add(message.id)
            started = time.perf_counter()
            try:
                result = await self.provider.send(outgoing)
            except Exception as exc:
                # A bug or an unforeseen error of one send must not cost the batch its other
                # outcomes. The request may have gone out: the attempt counts, as a timeout's.
                log.exception(
                    "send raised",
                    extra=message_fields(
                        message_id=message.id,
                        org_id=message.org_id,
                        attempt=message.attempt,
                        error_code="send_error",
                    ),
                )
                result = SendResult(
                    error=ProviderError(
                        code="send_error",
                        title=type(exc).__name__,
                        message=str(exc)[:300],
                        transport=True,
                    )
                )
            elapsed = time.perf_counter() - started
        result_label = "accepted" if result.wamid else "error"
        self.metrics.send_latency.labels(channel=CHANNEL_WHATSAPP, outcome=result_label).observe(
            elapsed
        )
        self.metrics.sender_sends.labels(
            sender=credentials.phone_number_id, result=result_label
        ).inc()
        return outcome_of(
            message,
            result,
            now=self.clock(),
            base_s=self.settings.retry_base_seconds,
            max_s=self.settings.retry_max_seconds,
            stored_token=credentials.stored_token,
            reconcile_s=self.settings.reconcile_seconds,
        )

    async def _drain(self) -> None:
        """Shutdown: let in-flight batches finish within the grace period, then cancel them;
        a cancelled batch releases its unsent messages (see _process)."""
        if not self._batches:
            return
        _done, pending = await asyncio.wait(
            set(self._batches), timeout=self.settings.shutdown_grace_seconds
        )
        for task in pending:
            task.cancel()
        if pending:
            await asyncio.gather(*pending, return_exceptions=True)
