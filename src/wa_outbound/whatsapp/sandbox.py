"""The sandbox provider: WhatsApp simulated in-process, with no credentials and no network.

A send is accepted with a `wamid.SANDBOX.…` id, then `sent`, `delivered` and `read` follow within
about a second through the same status-processing code as Meta's webhooks. Magic recipients:
…0000 fails with 131026 after `sent`; …0429 gets 130429 on its first two attempts; …0500 gets
HTTP 500 on every attempt (and so ends in the dead-letter queue).
"""

from __future__ import annotations

import asyncio
import contextlib
import heapq
import itertools
import logging
import uuid
from datetime import UTC, datetime

from sqlalchemy.ext.asyncio import AsyncEngine

from wa_outbound.receipts import statuses as receipts
from wa_outbound.receipts.statuses import StatusUpdate
from wa_outbound.whatsapp.provider import OutgoingMessage, SendResult
from wa_outbound.whatsapp.retry import ProviderError

log = logging.getLogger(__name__)
STEP_S = 0.25  # between simulated statuses
UNDELIVERABLE = {
    "code": "131026",
    "title": "Message undeliverable",
    "message": "Message undeliverable",
    "details": "Sandbox recipient ending in 0000",
}


class SandboxProvider:
    name = "sandbox"

    def __init__(self, statuses: SandboxStatuses) -> None:
        self._statuses = statuses

    async def send(self, message: OutgoingMessage) -> SendResult:
        if message.to.endswith("0500"):
            return SendResult(
                error=ProviderError(
                    code="http_500",
                    title="HTTP 500",
                    message="Sandbox: internal server error",
                    http_status=500,
                )
            )
        if message.to.endswith("0429") and message.attempt <= 2:
            return SendResult(
                error=ProviderError(
                    code="130429",
                    title="Rate limit hit",
                    message="(#130429) Rate limit hit: Cloud API message throughput reached",
                    http_status=400,
                )
            )
        wamid = f"wamid.SANDBOX.{uuid.uuid4().hex}"
        if message.to.endswith("0000"):
            self._statuses.schedule(wamid, [("sent", None), ("failed", UNDELIVERABLE)])
        else:
            self._statuses.schedule(wamid, [("sent", None), ("delivered", None), ("read", None)])
        return SendResult(wamid=wamid)

    async def close(self) -> None:
        return None


class SandboxStatuses:
    """A worker that applies the simulated statuses when they fall due."""

    def __init__(self, engine: AsyncEngine, *, step_s: float = STEP_S) -> None:
        self._engine = engine
        self._step_s = step_s
        self._due: list[tuple[float, int, StatusUpdate]] = []
        self._order = itertools.count()
        self._changed = asyncio.Event()
        self._stop = asyncio.Event()

    def schedule(self, wamid: str, steps: list[tuple[str, dict[str, str] | None]]) -> None:
        loop_now = asyncio.get_running_loop().time()
        for index, (status, error) in enumerate(steps, start=1):
            update = StatusUpdate(provider_message_id=wamid, status=status, at=None, error=error)
            heapq.heappush(self._due, (loop_now + index * self._step_s, next(self._order), update))
        self._changed.set()

    async def run(self) -> None:
        while not self._stop.is_set():
            await self.run_once()
            timeout = self._due[0][0] - asyncio.get_running_loop().time() if self._due else 1.0
            self._changed.clear()
            with contextlib.suppress(TimeoutError):
                await asyncio.wait_for(self._changed.wait(), max(timeout, 0.005))

    async def run_once(self, *, everything: bool = False) -> int:
        """Apply what is due (tests pass everything=True to skip the waiting)."""
        now_loop = asyncio.get_running_loop().time()
        batch: list[StatusUpdate] = []
        while self._due and (everything or self._due[0][0] <= now_loop):
            batch.append(heapq.heappop(self._due)[2])
        if not batch:
            return 0
        now = datetime.now(UTC)
        stamped = [
            StatusUpdate(
                provider_message_id=u.provider_message_id, status=u.status, at=now, error=u.error
            )
            for u in batch
        ]
        try:
            async with self._engine.begin() as conn:
                await receipts.apply_statuses(conn, stamped, actor="sandbox", now=now)
        except Exception:
            # Like Meta, try again later rather than drop a status.
            log.exception("sandbox statuses could not be applied; retrying")
            retry_at = now_loop + 1.0
            for update in batch:
                heapq.heappush(self._due, (retry_at, next(self._order), update))
            return 0
        return len(batch)

    async def stop(self) -> None:
        self._stop.set()
        self._changed.set()
