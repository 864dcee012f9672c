"""Supervision of the background workers that the app's lifespan starts."""

from __future__ import annotations

import asyncio
import contextlib
import logging
from collections.abc import Awaitable, Callable, Coroutine
from typing import Any, Protocol

log = logging.getLogger(__name__)


class Worker(Protocol):
    """A background loop: `run()` until `stop()`; tests drive `run_once()` directly."""

    async def run(self) -> None: ...

    async def run_once(self) -> Any: ...

    async def stop(self) -> None: ...


async def repeat(
    step: Callable[[], Awaitable[object]], *, every_s: float, until: asyncio.Event, what: str
) -> None:
    """Run `step` every `every_s` seconds until `until` is set. A failing step never ends the
    loop (the database may be down for a while; the next round retries). Of a run of failures,
    the first is logged with its traceback, the others in a line each, and the recovery once,
    so an outage does not fill the log with the same traceback every few seconds."""
    failures = 0
    while not until.is_set():
        try:
            await step()
        except Exception as exc:
            failures += 1
            if failures == 1:
                log.exception("%s failed", what)
            else:
                log.warning(
                    "%s failed again", what, extra={"error": repr(exc), "failures": failures}
                )
        else:
            if failures:
                log.warning("%s works again", what, extra={"failures": failures})
            failures = 0
        with contextlib.suppress(TimeoutError):
            await asyncio.wait_for(until.wait(), every_s)


class Supervisor:
    """Starts named workers as tasks, remembers which crashed, stops them in reverse order."""

    def __init__(self) -> None:
        self._workers: list[tuple[str, Worker, asyncio.Task[None]]] = []
        self.crashed: dict[str, str] = {}

    def start(self, name: str, worker: Worker) -> None:
        task = asyncio.create_task(self._guard(name, worker.run()), name=name)
        self._workers.append((name, worker, task))

    async def _guard(self, name: str, coro: Coroutine[Any, Any, None]) -> None:
        try:
            await coro
        except asyncio.CancelledError:
            raise
        except Exception as exc:
            # A dead loop must be visible: /health/ready turns 503 while this is set.
            self.crashed[name] = f"{type(exc).__name__}: {exc}"
            log.exception("background worker crashed", extra={"worker": name})

    def status(self) -> dict[str, dict[str, Any]]:
        out: dict[str, dict[str, Any]] = {}
        for name, _worker, task in self._workers:
            if name in self.crashed:
                out[name] = {"status": "crashed", "error": self.crashed[name]}
            elif task.done():
                out[name] = {"status": "stopped"}
            else:
                out[name] = {"status": "running"}
        return out

    @property
    def healthy(self) -> bool:
        return all(item["status"] == "running" for item in self.status().values())

    async def stop_all(self, timeout_s: float = 30.0) -> None:
        for name, worker, task in reversed(self._workers):
            try:
                await worker.stop()
                await asyncio.wait_for(asyncio.shield(task), timeout_s)
            except (TimeoutError, asyncio.CancelledError):
                log.warning("worker did not stop in time; cancelling", extra={"worker": name})
                task.cancel()
            except Exception:
                log.exception("worker failed while stopping", extra={"worker": name})
        self._workers.clear()
