"""The callback delivery worker: drains `callback_delivery` into the organisations' endpoints.

Each round claims due deliveries under a lease (one short statement, claims.py) and hands them to
the slots (slots.py): at most `callback_concurrency` attempts at once and at most
`callback_per_host_connections` to one host, so an endpoint that hangs holds its own host's slots
and no one else's; endpoints whose host holds enough are left out of the next claims. The
attempts are made by `callback_concurrency` long-lived runner tasks, each taking the next started
delivery (no task per delivery). Outcomes go
to a writer that writes whatever has arrived within `SETTLE_LINGER_S` in one statement
(outcomes.py). No transaction is held across a request. A heartbeat keeps the leases of
everything claimed alive, so only a dead or stalled replica's claims expire, and any replica then
takes them again.
"""

from __future__ import annotations

import asyncio
import contextlib
import logging
import os
import random
import socket
import time
import uuid
from collections.abc import Callable
from datetime import datetime

from sqlalchemy.ext.asyncio import AsyncEngine

from wa_outbound.callbacks import claims, outcomes
from wa_outbound.callbacks.claims import Claimed
from wa_outbound.callbacks.policy import Answer, Outcome, outcome_of
from wa_outbound.callbacks.request import request_of
from wa_outbound.callbacks.runners import Runners
from wa_outbound.callbacks.slots import Slots
from wa_outbound.callbacks.transport import Request, Transport
from wa_outbound.config import Settings
from wa_outbound.crypto import UndecryptableSecret
from wa_outbound.db.listener import CALLBACKS_CHANNEL, Listener
from wa_outbound.db.types import utcnow
from wa_outbound.metrics import CALLBACK_RESULTS, Metrics

log = logging.getLogger(__name__)

# How long the writer waits, after an outcome, for more to write with it (not when behind).
SETTLE_LINGER_S = 0.02
SETTLE_BACKLOG = 32
SETTLE_MAX = 1000
CLAIMS_IN_FLIGHT = 1
WRITE_TRIES = 5


class CallbackWorker:
    def __init__(
        self,
        *,
        settings: Settings,
        engine: AsyncEngine,
        metrics: Metrics,
        decrypt: Callable[[str], str],
        clock: Callable[[], datetime] = utcnow,
        rng: random.Random | None = None,
        session_engine: AsyncEngine | None = None,
    ) -> None:
        self.settings = settings
        self.engine = engine
        # LISTEN needs a session: not a transaction pooler's (db.engine.create_session_engine).
        self.session_engine = session_engine or engine
        self.metrics = metrics
        self.decrypt = decrypt
        self.clock = clock
        self.rng = rng or random.Random()
        self.worker_id = f"{socket.gethostname()[:24]}:{os.getpid()}:{id(self) % 10_000}"
        self._claim_no = 0
        # Long enough for a wait for a host's slot and a whole attempt; renewed meanwhile.
        self.lease_s = 2 * settings.callback_timeout_seconds + 5
        self._slots = Slots(
            concurrency=settings.callback_concurrency,
            per_host=settings.callback_per_host_connections,
            # All of a host's slots busy and a whole batch waiting: enough until the next claim.
            saturated_at=settings.callback_per_host_connections + settings.callback_batch_size,
            start=self._start,
        )
        self._owned: dict[uuid.UUID, Claimed] = {}
        self._claims: dict[asyncio.Task[int], int] = {}
        """Claims in flight, with how many rows each may bring."""
        self._failures = 0
        self._empty_claims = False
        self._attempts: set[asyncio.Task[None]] = set()
        """Attempts in tasks of their own (run_once, without runners)."""
        self._runners = Runners(settings.callback_concurrency, self._attempt_and_settle)
        self._results: asyncio.Queue[Outcome | None] = asyncio.Queue()
        self._wake = asyncio.Event()
        self._stopping = asyncio.Event()
        self._transport: Transport | None = None
        self._counted = {r: metrics.callback_deliveries.labels(result=r) for r in CALLBACK_RESULTS}
        self._timed = {
            True: metrics.callback_latency.labels(outcome="success"),
            False: metrics.callback_latency.labels(outcome="error"),
        }

    def wake(self) -> None:
        """New deliveries were written: claim now rather than at the next poll."""
        self._wake.set()

    async def stop(self) -> None:
        self._stopping.set()
        self._wake.set()

    async def run(self) -> None:
        self._transport = Transport(self.settings)
        listener = (
            Listener(self.session_engine, self.wake, channel=CALLBACKS_CHANNEL)
            if self.settings.is_postgres
            else None
        )
        side = [
            asyncio.create_task(self._write_loop(), name="callback-writer"),
            asyncio.create_task(self._heartbeat(), name="callback-heartbeat"),
        ]
        if listener is not None:
            side.append(asyncio.create_task(listener.run(), name="callback-listener"))
        self._runners.run()
        try:
            while not self._stopping.is_set():
                if not self._round():
                    await self._idle(self._pause_s())
                    self._empty_claims = False  # news, or the poll: look again
        finally:
            if listener is not None:
                await listener.stop()
            await self._drain()
            await self._results.put(None)  # the writer writes what is left, then ends
            with contextlib.suppress(Exception):
                await asyncio.wait_for(side[0], self.settings.shutdown_grace_seconds)
            for task in side:
                task.cancel()
            await asyncio.gather(*side, return_exceptions=True)
            await self._transport.close()
            self._transport = None

    async def run_once(self) -> int:
        """Claim one batch, attempt it and write its outcomes (tests drive the worker so)."""
        own_transport = self._transport is None
        if own_transport:
            self._transport = Transport(self.settings)
        try:
            batch = await self._claim(self.settings.callback_batch_size)
            for delivery in batch:
                self._slots.add(delivery)
            results = [await self._results.get() for _ in batch]
            await self._write([r for r in results if r is not None])
            return len(batch)
        finally:
            if own_transport and self._transport is not None:
                await self._transport.close()
                self._transport = None

    def _round(self) -> bool:
        """Start a claim when there is room for a good batch; False when none was started.
        One claim at a time (two at once skip each other's locked rows at the head of the queue
        and each take about twice as long), the next started as soon as one ends: the room is
        the attempts that may run and two batches (one queued behind them, one being claimed),
        less what the slots hold, so the runners still find deliveries queued while a claim
        waits for the database."""
        if len(self._claims) >= CLAIMS_IN_FLIGHT:
            return False
        concurrency = self.settings.callback_concurrency
        batch = self.settings.callback_batch_size
        capacity = concurrency + 2 * batch - self._slots.busy()
        # Claims of a few rows each cost as much as full ones: wait for room for a good batch,
        # unless nothing is held.
        room = min(batch, concurrency) // 4
        if capacity < max(room, 1) and (capacity <= 0 or self._owned):
            return False
        if self._empty_claims:
            return False  # the last claim found nothing: wait for news or the poll
        limit = min(batch, capacity)
        task = asyncio.create_task(self._claim_and_start(limit), name="callback-claim")
        self._claims[task] = limit
        task.add_done_callback(self._claim_done)
        return True

    async def _claim_and_start(self, limit: int) -> int:
        batch = await self._claim(limit)
        for delivery in batch:
            self._slots.add(delivery)
        return len(batch)

    def _claim_done(self, task: asyncio.Task[int]) -> None:
        self._claims.pop(task, None)
        if task.cancelled():
            return
        exc = task.exception()
        if exc is not None:
            # The database is unavailable: back off, claim again later.
            self._failures += 1
            log.warning(
                "callback claim failed", extra={"error": repr(exc), "failures": self._failures}
            )
            return
        self._failures = 0
        self._empty_claims = task.result() == 0
        if not self._empty_claims:
            # There may be more: claim again now, not on the main loop's next turn (it wakes
            # a few turns of the event loop later, tens of milliseconds when the runners are
            # busy, while they drain the batch just claimed).
            if not self._stopping.is_set():
                self._round()
            self._wake.set()

    def _pause_s(self) -> float:
        poll_s = self.settings.callback_poll_seconds
        return min(poll_s * 2**self._failures, 5.0) if self._failures else poll_s

    async def _claim(self, limit: int) -> list[Claimed]:
        self._claim_no += 1
        async with self.engine.begin() as conn:
            batch = await claims.claim(
                conn,
                worker=f"{self.worker_id}/{self._claim_no}",
                limit=limit,
                lease_s=self.lease_s,
                now=self.clock(),
                skip_endpoints=self._slots.saturated_endpoints(),
            )
        for delivery in batch:
            self._owned[delivery.id] = delivery
        return batch

    def _start(self, delivery: Claimed) -> None:
        """The slots started `delivery`: hand it to a runner (a task of its own without)."""
        if self._runners.running:
            self._runners.start(delivery)
            return
        task = asyncio.create_task(self._attempt_and_settle(delivery), name="callback")
        self._attempts.add(task)
        task.add_done_callback(self._attempts.discard)

    async def _attempt_and_settle(self, delivery: Claimed) -> None:
        # The request is awaited here, not in a helper coroutine: each of its resumptions runs
        # through every coroutine that awaits it, and a runner resumes several per attempt.
        assert self._transport is not None
        try:
            request = self._request(delivery)
            answer = request if isinstance(request, Answer) else await self._transport.post(request)
            outcome = self._outcome(delivery, answer)
        except asyncio.CancelledError:
            # Shutdown past its grace: give the claim back now rather than at lease expiry.
            # The request may have gone out: the attempt counts (at least once).
            self._results.put_nowait(self._released(delivery))
            raise
        finally:
            self._runners.settling = True
            try:
                if self._slots.done(delivery):
                    self._wake.set()  # its host held enough until now: claim for it again
            finally:
                self._runners.settling = False
        self._results.put_nowait(outcome)

    def _released(self, delivery: Claimed, *, attempted: bool = True) -> Outcome:
        return Outcome(
            delivery, "released", "pending", self.clock(), None, "interrupted", attempted
        )

    def _request(self, delivery: Claimed) -> Request | Answer:
        """The attempt's signed request, or the answer it gets without one."""
        try:
            return request_of(
                delivery, decrypt=self.decrypt, now=self.clock, timestamp=int(time.time())
            )
        except UndecryptableSecret:
            return Answer(error="secret_unreadable")

    def _outcome(self, delivery: Claimed, answer: Answer) -> Outcome:
        outcome = outcome_of(
            delivery,
            answer,
            schedule=self.settings.callback_retry_schedule,
            now=self.clock(),
            rng=self.rng,
        )
        self._counted[outcome.result].inc()
        self._timed[outcome.succeeded].observe(answer.elapsed_s)
        return outcome

    async def _write_loop(self) -> None:
        while True:
            first = await self._results.get()
            if first is None:
                return
            batch = [first]
            if self._results.qsize() < SETTLE_BACKLOG:
                # Wait a moment for more answers to share the write; behind, write at once.
                await asyncio.sleep(SETTLE_LINGER_S)
            ended = False
            while not self._results.empty() and len(batch) < SETTLE_MAX:
                item = self._results.get_nowait()
                if item is None:
                    ended = True
                    break
                batch.append(item)
            await self._write(batch)
            if ended:
                return

    async def _write(self, batch: list[Outcome]) -> None:
        """Write a batch of outcomes, retrying a failed write a few times (a deadlock, a
        restart); a batch that cannot be written is left to its leases' expiry."""
        if not batch:
            return
        try:
            for attempt in range(1, WRITE_TRIES + 1):
                try:
                    async with self.engine.begin() as conn:
                        written = await outcomes.write_outcomes(
                            conn,
                            batch,
                            now=self.clock(),
                            disable_after_s=self.settings.callback_disable_after_seconds,
                        )
                except Exception as exc:
                    if attempt == WRITE_TRIES:
                        log.error(
                            "writing callback outcomes failed; their leases will expire",
                            extra={"error": repr(exc), "count": len(batch)},
                        )
                        return
                    await asyncio.sleep(min(0.1 * 2**attempt, 2.0))
                    continue
                for endpoint_id, reason in written.disabled.items():
                    log.warning(
                        "callback endpoint disabled",
                        extra={"endpoint_id": str(endpoint_id), "reason": reason},
                    )
                return
        finally:
            for outcome in batch:
                self._owned.pop(outcome.delivery.id, None)
            self._wake.set()

    async def renew_leases(self) -> int:
        """Push the lease of every delivery this worker holds one lease ahead."""
        async with self.engine.begin() as conn:
            return await claims.extend_leases(
                conn, list(self._owned.values()), lease_s=self.lease_s
            )

    async def _heartbeat(self) -> None:
        while True:
            await asyncio.sleep(self.lease_s / 3)
            if self._owned:
                try:
                    await self.renew_leases()
                except Exception as exc:
                    log.warning("renewing callback leases failed", extra={"error": repr(exc)})

    async def _idle(self, timeout_s: float) -> None:
        wake = asyncio.ensure_future(self._wake.wait())
        stop = asyncio.ensure_future(self._stopping.wait())
        try:
            await asyncio.wait({wake, stop}, timeout=timeout_s, return_when=asyncio.FIRST_COMPLETED)
        finally:
            wake.cancel()
            stop.cancel()
        self._wake.clear()

    async def _drain(self) -> None:
        """Shutdown: give back the claims not started, let attempts in flight finish within
        the grace period, then cancel them (a cancelled attempt gives its claim back too)."""
        if self._claims:
            await asyncio.wait(set(self._claims), timeout=self.settings.shutdown_grace_seconds)
        for delivery in [*self._slots.take_queued(), *self._runners.take_started()]:
            self._results.put_nowait(self._released(delivery, attempted=False))
        await self._runners.stop(self.settings.shutdown_grace_seconds)
        if not self._attempts:
            return
        _done, pending = await asyncio.wait(
            set(self._attempts), timeout=self.settings.shutdown_grace_seconds
        )
        for task in pending:
            task.cancel()
        if pending:
            await asyncio.gather(*pending, return_exceptions=True)
