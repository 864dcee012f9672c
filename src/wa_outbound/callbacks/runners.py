"""The tasks that make the delivery worker's attempts: a fixed number of long-lived runners,
each taking the next delivery the slots started, instead of a task per delivery.

There are as many runners as attempts may run at once (`callback_concurrency`), so a started
delivery always finds a runner: an idle one is woken for it, and a runner that has just settled
an attempt (whose end made room for it) takes it itself without waking another.
"""

from __future__ import annotations

import asyncio
import contextlib
import logging
from collections import deque
from collections.abc import Awaitable, Callable

from wa_outbound.callbacks.claims import Claimed

log = logging.getLogger(__name__)


class Runners:
    def __init__(self, count: int, attempt: Callable[[Claimed], Awaitable[None]]) -> None:
        self._count = count
        self._attempt = attempt
        self._tasks: list[asyncio.Task[None]] = []
        self._started: deque[Claimed] = deque()
        """Deliveries started, not yet taken by a runner."""
        self._idle: deque[asyncio.Future[None]] = deque()
        self._attempting = 0
        self._quiet = asyncio.Event()
        self.settling = False
        """True while a runner settles its attempt: what that starts, the runner takes."""

    @property
    def running(self) -> bool:
        return bool(self._tasks)

    def run(self) -> None:
        self._tasks = [
            asyncio.create_task(self._runner(), name="callback-runner") for _ in range(self._count)
        ]

    def start(self, delivery: Claimed) -> None:
        self._started.append(delivery)
        if not self.settling:
            self._wake_one()

    def take_started(self) -> list[Claimed]:
        """Shutdown: the deliveries no runner has taken yet."""
        taken = list(self._started)
        self._started.clear()
        return taken

    async def stop(self, grace_s: float) -> None:
        """Let the attempts in flight end within `grace_s`, then cancel every runner (an attempt
        cancelled so gives its claim back)."""
        if self._attempting:
            with contextlib.suppress(TimeoutError):
                await asyncio.wait_for(self._quiet.wait(), grace_s)
        for task in self._tasks:
            task.cancel()
        await asyncio.gather(*self._tasks, return_exceptions=True)
        self._tasks = []

    def _wake_one(self) -> None:
        while self._idle:
            idle = self._idle.popleft()
            if not idle.done():
                idle.set_result(None)
                return

    async def _runner(self) -> None:
        loop = asyncio.get_running_loop()
        while True:
            while not self._started:
                idle = loop.create_future()
                self._idle.append(idle)
                await idle
            delivery = self._started.popleft()
            if self._started:
                self._wake_one()
            self._attempting += 1
            self._quiet.clear()
            try:
                await self._attempt(delivery)
            except Exception:
                # A bug, not an answer: the delivery's lease expires; the runner goes on.
                log.exception("callback attempt failed", extra={"delivery_id": str(delivery.id)})
            finally:
                self._attempting -= 1
                if not self._attempting:
                    self._quiet.set()
