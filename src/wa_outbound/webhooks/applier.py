"""Applying committed webhook bodies behind the answer, in batches, on PostgreSQL.

`WebhookIntake.receive` is what the route calls: the body is group-committed (group_commit.py),
then offered to the `Applier`, which applies everything offered while its previous batch ran in
one transaction (webhooks/stored.py). With `WA_WEBHOOK_ANSWER_AFTER=applied` the request also
waits for that transaction. What is offered is a hint kept in memory: bodies the applier never
reaches (the queue full, the process stopped or killed) are committed and unprocessed, and
the sweep applies them (webhooks/sweep.py).
"""

from __future__ import annotations

import asyncio
import logging
from collections import deque
from datetime import datetime
from typing import Any

from sqlalchemy.ext.asyncio import AsyncEngine

from wa_outbound.contacts.keywords import DEFAULT_KEYWORDS, Keywords
from wa_outbound.db.types import utcnow
from wa_outbound.metrics import Metrics
from wa_outbound.webhooks import stored, sweep
from wa_outbound.webhooks.group_commit import BodyStore

log = logging.getLogger(__name__)
Offered = tuple[stored.StoredBody, asyncio.Future[None] | None]


class Applier:
    """Applies offered bodies in batches of at most `batch_size`; a worker."""

    def __init__(
        self,
        engine: AsyncEngine,
        *,
        metrics: Metrics,
        keywords: Keywords = DEFAULT_KEYWORDS,
        batch_size: int = 500,
        max_queued: int = 50_000,
        gather_s: float = 0.02,
    ) -> None:
        self._engine = engine
        self._metrics = metrics
        self._keywords = keywords
        self._batch_size = batch_size
        self._max_queued = max_queued
        self._gather_s = gather_s
        self._queue: deque[Offered] = deque()
        self._wake = asyncio.Event()
        self._stopping = False
        self._failing = False
        self.batches = 0
        self.left_to_sweep = 0  # bodies not queued: the queue was full

    def offer(self, body: stored.StoredBody, *, wait: bool) -> asyncio.Future[None] | None:
        """Queue a committed body; a future done once it is applied, when `wait`."""
        if len(self._queue) >= self._max_queued:
            self.left_to_sweep += 1  # committed and unprocessed: the sweep applies it
            return None
        future = asyncio.get_running_loop().create_future() if wait else None
        self._queue.append((body, future))
        self._wake.set()
        return future

    @property
    def queued(self) -> int:
        return len(self._queue)

    async def run(self) -> None:
        while True:
            if not self._queue:
                if self._stopping:
                    return
                await self._wake.wait()
                self._wake.clear()
                continue
            if len(self._queue) < self._batch_size and not self._stopping:
                # Let a batch gather: each one costs a few statements whatever its size.
                await asyncio.sleep(self._gather_s)
            await self._apply(self._take())

    async def run_once(self) -> int:
        """Apply what is queued now; how many bodies were taken."""
        taken = 0
        while self._queue:
            batch = self._take()
            taken += len(batch)
            await self._apply(batch)
        return taken

    async def stop(self) -> None:
        """Applies what is queued, then ends `run` (what it cannot apply stays for the sweep)."""
        self._stopping = True
        self._wake.set()

    def _take(self) -> list[Offered]:
        n = min(len(self._queue), self._batch_size)
        return [self._queue.popleft() for _ in range(n)]

    async def _apply(self, batch: list[Offered]) -> None:
        try:
            applied = await stored.apply_batch(
                self._engine, [body for body, _ in batch], now=utcnow(), keywords=self._keywords
            )
        except Exception as exc:  # the database is unreachable: the sweep applies them later
            if not self._failing:
                log.warning(
                    "webhook bodies stored but not applied yet; the sweep will",
                    extra={"bodies": len(batch), "error": f"{type(exc).__name__}: {exc}"[:500]},
                )
            self._failing = True
        else:
            self._failing = False
            self.batches += 1
            sweep.count(self._metrics, applied)
        for _, future in batch:
            if future is not None and not future.done():
                future.set_result(None)


class WebhookIntake:
    """PostgreSQL's webhook intake: group-committed bodies, applied behind the answer."""

    def __init__(
        self,
        engine: AsyncEngine,
        *,
        metrics: Metrics,
        keywords: Keywords = DEFAULT_KEYWORDS,
        answer_after: str = "stored",
    ) -> None:
        self._wait = answer_after == "applied"
        self.store = BodyStore(engine)
        # A batch gathers for 20 ms behind the answers; 2 ms when the answers wait for it.
        self.applier = Applier(
            engine, metrics=metrics, keywords=keywords, gather_s=0.002 if self._wait else 0.02
        )

    async def receive(self, raw: bytes, body: dict[str, Any], *, now: datetime) -> None:
        """Returns once `raw` is committed (and applied, with `answer_after="applied"`)."""
        event_id = await self.store.store(raw, now)
        applied = self.applier.offer(stored.StoredBody(event_id, body), wait=self._wait)
        if applied is not None:
            await applied
