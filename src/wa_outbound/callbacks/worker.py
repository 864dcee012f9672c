"""The callback delivery worker: drains `callback_delivery` into the organisations' endpoints.

Each round claims due deliveries under a lease (one short transaction, claims.py) and attempts
them concurrently: at most `callback_concurrency` at once, and at most
`callback_per_host_connections` to one host, waited for *before* a global slot is taken, so an
endpoint that hangs holds its own host's slots and no one else's. Endpoints whose host is
saturated are left out of the next claims. Outcomes go to a writer that writes whatever has
arrived within `SETTLE_LINGER_S` in one transaction (outcomes.py). No transaction is held across
a request. A heartbeat keeps the leases of everything claimed alive, so only a dead or stalled
replica's claims expire, and any replica then takes them again.
"""

from __future__ import annotations

import asyncio
import contextlib
import functools
import logging
import os
import random
import socket
import time
import uuid
from collections import Counter
from collections.abc import Callable
from datetime import datetime
from urllib.parse import urlsplit

from sqlalchemy.ext.asyncio import AsyncEngine

from wa_outbound.callbacks import claims, outcomes
from wa_outbound.callbacks.claims import Claimed
from wa_outbound.callbacks.policy import Answer, Outcome, outcome_of
from wa_outbound.callbacks.request import request_of
from wa_outbound.callbacks.transport import Transport
from wa_outbound.config import Settings
from wa_outbound.crypto import UndecryptableSecret
from wa_outbound.db.listener import CALLBACKS_CHANNEL, Listener
from wa_outbound.db.types import utcnow
from wa_outbound.metrics import CALLBACK_RESULTS, Metrics

log = logging.getLogger(__name__)

# How long the writer waits, after an outcome, for more to write with it.
SETTLE_LINGER_S = 0.02
SETTLE_MAX = 1000
SETTLE_BACKLOG = 32
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
    ) -> None:
        self.settings = settings
        self.engine = engine
        self.metrics = metrics
        self.decrypt = decrypt
        self.clock = clock
        self.rng = rng or random.Random()
        self.worker_id = f"{socket.gethostname()[:40]}:{os.getpid()}:{id(self) % 10_000}"
        # Long enough for a wait for a host's slot and a whole attempt; renewed meanwhile.
        self.lease_s = 2 * settings.callback_timeout_seconds + 5
        self._per_host = settings.callback_per_host_connections
        self._saturated_at = self._per_host + settings.callback_batch_size
        self._slots = asyncio.Semaphore(settings.callback_concurrency)
        self._host_slots: dict[str, asyncio.Semaphore] = {}
        self._host_load: Counter[str] = Counter()
        self._host_endpoints: dict[str, Counter[uuid.UUID]] = {}
        self._owned: dict[uuid.UUID, Claimed] = {}
        self._attempts: set[asyncio.Task[None]] = set()
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
            Listener(self.engine, self.wake, channel=CALLBACKS_CHANNEL)
            if self.settings.is_postgres
            else None
        )
        side = [
            asyncio.create_task(self._write_loop(), name="callback-writer"),
            asyncio.create_task(self._heartbeat(), name="callback-heartbeat"),
        ]
        if listener is not None:
            side.append(asyncio.create_task(listener.run(), name="callback-listener"))
        try:
            failures = 0
            while not self._stopping.is_set():
                try:
                    claimed, capacity = await self._round()
                    failures = 0
                except Exception as exc:
                    # The database is unavailable: keep the loop, back off, claim again later.
                    failures += 1
                    log.warning(
                        "callback claim failed", extra={"error": repr(exc), "failures": failures}
                    )
                    await self._idle(min(self.settings.callback_poll_seconds * 2**failures, 5.0))
                    continue
                if claimed == 0 or capacity <= 0:
                    await self._idle(self.settings.callback_poll_seconds)
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
            results = await asyncio.gather(*(self._attempt(c) for c in batch))
            await self._write(list(results))
            return len(batch)
        finally:
            if own_transport and self._transport is not None:
                await self._transport.close()
                self._transport = None

    def _capacity(self) -> int:
        # A host's deliveries beyond its own connection limit wait for that host, not for a
        # global slot: they do not count against what other endpoints may claim.
        busy = sum(min(n, self._per_host) for n in self._host_load.values())
        return 2 * self.settings.callback_concurrency - busy

    async def _round(self) -> tuple[int, int]:
        capacity = self._capacity()
        claimed = 0
        # Claims of a few rows each cost as much as full ones: wait for room for a good batch,
        # unless little is in flight.
        room = min(self.settings.callback_batch_size, self.settings.callback_concurrency) // 4
        if capacity >= max(room, 1) or (capacity > 0 and not self._owned):
            batch = await self._claim(min(self.settings.callback_batch_size, capacity))
            for delivery in batch:
                task = asyncio.create_task(self._attempt_and_settle(delivery), name="callback")
                self._attempts.add(task)
                task.add_done_callback(self._attempts.discard)
            claimed = len(batch)
        return claimed, capacity

    async def _claim(self, limit: int) -> list[Claimed]:
        # A host with every slot busy and a whole batch waiting for one has enough at hand
        # until its next claim: its endpoints are left to other replicas meanwhile.
        saturated = [
            endpoint_id
            for host, load in self._host_load.items()
            if load >= self._saturated_at
            for endpoint_id in self._host_endpoints.get(host, ())
        ]
        async with self.engine.begin() as conn:
            batch = await claims.claim(
                conn,
                worker=self.worker_id,
                limit=limit,
                lease_s=self.lease_s,
                now=self.clock(),
                skip_endpoints=saturated,
            )
        for delivery in batch:
            self._owned[delivery.id] = delivery
            host = _host_of(delivery.url)
            self._host_load[host] += 1
            self._host_endpoints.setdefault(host, Counter())[delivery.endpoint_id] += 1
        return batch

    async def _attempt_and_settle(self, delivery: Claimed) -> None:
        try:
            outcome = await self._attempt(delivery)
        except asyncio.CancelledError:
            # Shutdown past its grace: give the claim back now rather than at lease expiry.
            # The request may have gone out: the attempt counts (at least once).
            outcome = Outcome(delivery, "released", "pending", self.clock(), None, "interrupted")
            self._results.put_nowait(outcome)
            raise
        self._results.put_nowait(outcome)

    async def _attempt(self, delivery: Claimed) -> Outcome:
        host = _host_of(delivery.url)
        slot = self._host_slots.get(host)
        if slot is None:
            slot = self._host_slots[host] = asyncio.Semaphore(self._per_host)
        try:
            async with slot, self._slots:
                answer = await self._post(delivery)
        finally:
            self._release_host(host, delivery.endpoint_id)
        outcome = outcome_of(
            delivery, answer, schedule=self.settings.callback_retry_schedule, now=self.clock()
        )
        self._counted[outcome.result].inc()
        self._timed[outcome.succeeded].observe(answer.elapsed_s)
        return outcome

    async def _post(self, delivery: Claimed) -> Answer:
        assert self._transport is not None
        try:
            request = request_of(
                delivery, decrypt=self.decrypt, now=self.clock(), timestamp=int(time.time())
            )
        except UndecryptableSecret:
            return Answer(error="secret_unreadable")
        return await self._transport.post(request)

    def _release_host(self, host: str, endpoint_id: uuid.UUID) -> None:
        if self._host_load[host] == self._saturated_at:
            self._wake.set()  # the host was saturated: its endpoints may be claimed again
        self._host_load[host] -= 1
        if self._host_load[host] <= 0:
            del self._host_load[host]
        endpoints = self._host_endpoints.get(host)
        if endpoints is not None:
            endpoints[endpoint_id] -= 1
            if endpoints[endpoint_id] <= 0:
                del endpoints[endpoint_id]
            if not endpoints:
                del self._host_endpoints[host]

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
                conn, list(self._owned.values()), worker=self.worker_id, lease_s=self.lease_s
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
        """Shutdown: let attempts in flight finish within the grace period, then cancel them
        (a cancelled attempt gives its claim back)."""
        if not self._attempts:
            return
        _done, pending = await asyncio.wait(
            set(self._attempts), timeout=self.settings.shutdown_grace_seconds
        )
        for task in pending:
            task.cancel()
        if pending:
            await asyncio.gather(*pending, return_exceptions=True)


@functools.lru_cache(maxsize=4096)
def _host_of(url: str) -> str:
    """The connection pool's key of a URL (host and port), for the per-host limits."""
    try:
        parts = urlsplit(url)
        return f"{parts.scheme}://{parts.hostname}:{parts.port or ''}"
    except ValueError:
        return url
