"""Group commit of Meta's webhook bodies on PostgreSQL: one INSERT and one commit for all the
bodies that arrived while the previous statements were running.

A request hands its raw body to `BodyStore.store` and waits; whenever one of the store's eight
statement slots is free, its loop takes everything waiting (at most `max_batch` bodies or
`max_batch_bytes`), inserts it with one statement sent in autocommit on the asyncpg connection
(no BEGIN/COMMIT round trips, no SQLAlchemy execution layer: db/raw.py), and answers each
waiting request with its row's id once that statement has committed. So a 200 always follows
the commit of its own body, and under load one WAL flush serves many requests instead of one
each. A commit that fails answers every request of its batch 503 (Meta sends those bodies
again).
"""

from __future__ import annotations

import asyncio
import logging
from collections import deque
from datetime import datetime

from sqlalchemy.ext.asyncio import AsyncEngine

from wa_outbound.db import raw
from wa_outbound.errors import Unavailable

log = logging.getLogger(__name__)

# ORDER BY the ordinality: the ids are drawn in the bodies' order, so sorted ids match them.
_INSERT = """
INSERT INTO webhook_event (received_at, body, attempts)
SELECT t.at, t.body, 0
FROM unnest($1::timestamptz[], $2::bytea[]) WITH ORDINALITY AS t(at, body, n)
ORDER BY t.n
RETURNING id
"""
_UNSTORED = "The webhook body could not be stored; retry later."


class _Waiting:
    __slots__ = ("at", "body", "future")

    def __init__(self, body: bytes, at: datetime, future: asyncio.Future[int]) -> None:
        self.body = body
        self.at = at
        self.future = future


class BodyStore:
    """The group commit of webhook bodies; a worker (`run` until `stop`)."""

    def __init__(
        self,
        engine: AsyncEngine,
        *,
        max_batch: int = 500,
        max_batch_bytes: int = 8_000_000,
        timeout_s: float = 30.0,
        in_flight: int = 8,
    ) -> None:
        self._engine = engine
        self._max_batch = max_batch
        self._max_batch_bytes = max_batch_bytes
        self._timeout_s = timeout_s
        self._in_flight = in_flight
        self._waiting: deque[_Waiting] = deque()
        self._wake = asyncio.Event()
        self._stopping = False
        self.commits = 0  # statements committed (for the benchmarks: bodies ÷ commits)
        self.bodies = 0

    async def store(self, body: bytes, at: datetime) -> int:
        """The id of `body`'s row once it is committed; Unavailable if it could not be."""
        future: asyncio.Future[int] = asyncio.get_running_loop().create_future()
        self._waiting.append(_Waiting(body, at, future))
        self._wake.set()
        try:
            return await asyncio.wait_for(future, self._timeout_s)
        except TimeoutError:
            raise Unavailable(_UNSTORED) from None

    async def run(self) -> None:
        # A few statements in flight: while one waits for its WAL flush, the next is inserted,
        # and PostgreSQL flushes their commits together. Each takes all that waits when it
        # starts, so under load the batches stay large.
        slots = asyncio.Semaphore(self._in_flight)
        running: set[asyncio.Task[None]] = set()
        while True:
            if not self._waiting:
                if self._stopping:
                    break
                await self._wake.wait()
                self._wake.clear()
                continue
            await slots.acquire()
            task = asyncio.create_task(self._commit(self._take()))
            running.add(task)
            task.add_done_callback(running.discard)
            task.add_done_callback(lambda _: slots.release())
        if running:
            await asyncio.gather(*running)

    async def run_once(self) -> int:
        """Commit what is waiting now; how many bodies were taken."""
        taken = 0
        while self._waiting:
            batch = self._take()
            taken += len(batch)
            await self._commit(batch)
        return taken

    async def stop(self) -> None:
        """Commits what is waiting, then ends `run`."""
        self._stopping = True
        self._wake.set()

    def _take(self) -> list[_Waiting]:
        batch: list[_Waiting] = []
        size = 0
        while self._waiting and len(batch) < self._max_batch:
            item = self._waiting[0]
            if batch and size + len(item.body) > self._max_batch_bytes:
                break
            self._waiting.popleft()
            if item.future.done():  # its request gave up (timeout, client gone): not answered
                continue
            batch.append(item)
            size += len(item.body)
        return batch

    async def _commit(self, batch: list[_Waiting]) -> None:
        if not batch:
            return
        try:
            async with self._engine.connect() as conn:
                try:
                    rows = await (await raw.driver(conn)).fetch(
                        _INSERT, [item.at for item in batch], [item.body for item in batch]
                    )
                except raw.CONNECTION_LOST as exc:
                    raise await raw.connection_lost(conn, exc) from exc
        except Exception as exc:  # every request of the batch answers 503; Meta retries
            log.warning(
                "webhook bodies could not be stored; answered 503",
                extra={"bodies": len(batch), "error": f"{type(exc).__name__}: {exc}"[:500]},
            )
            for item in batch:
                if not item.future.done():
                    item.future.set_exception(Unavailable(_UNSTORED))
            return
        self.commits += 1
        self.bodies += len(batch)
        for item, event_id in zip(batch, sorted(row[0] for row in rows), strict=True):
            if not item.future.done():
                item.future.set_result(event_id)
