"""An organisation's app for the callback tests: an aiohttp server on a loopback port that
records every request and answers as each path is told (a status, a delay, a hang, a redirect)."""

from __future__ import annotations

import asyncio
import socket
import time
from collections.abc import AsyncIterator
from contextlib import asynccontextmanager
from dataclasses import dataclass, field
from typing import Any

import orjson
from aiohttp import web


@dataclass(frozen=True)
class Received:
    path: str
    headers: dict[str, str]
    body: bytes
    at: float
    """time.monotonic() when the request arrived."""

    @property
    def json(self) -> Any:
        return orjson.loads(self.body)

    @property
    def webhook_id(self) -> str:
        return self.headers["webhook-id"]


@dataclass
class Behaviour:
    """How a path answers: `statuses` first, one per request, then `status`."""

    status: int = 200
    statuses: list[int] = field(default_factory=list)
    delay_s: float = 0.0
    hang: bool = False
    headers: dict[str, str] = field(default_factory=dict)


class Receiver:
    def __init__(self) -> None:
        self.received: list[Received] = []
        self.behaviours: dict[str, Behaviour] = {}
        self.release = asyncio.Event()
        """Set to end every hanging request."""
        self.base_url = ""

    def at(self, path: str) -> list[Received]:
        """What arrived at `path` (and answered or not), in arrival order."""
        return [r for r in self.received if r.path == path]

    def url(self, path: str) -> str:
        return self.base_url + path

    async def _handle(self, request: web.Request) -> web.StreamResponse:
        body = await request.read()
        self.received.append(
            Received(
                request.path,
                {k.lower(): v for k, v in request.headers.items()},
                body,
                time.monotonic(),
            )
        )
        behaviour = self.behaviours.get(request.path, Behaviour())
        if behaviour.hang:
            await self.release.wait()
        if behaviour.delay_s:
            await asyncio.sleep(behaviour.delay_s)
        status = behaviour.statuses.pop(0) if behaviour.statuses else behaviour.status
        return web.Response(status=status, headers=behaviour.headers, text="ok")


@asynccontextmanager
async def receiving(receiver: Receiver | None = None) -> AsyncIterator[Receiver]:
    """Serve a receiver on a free 127.0.0.1 port until the block ends."""
    receiver = receiver or Receiver()
    app = web.Application()
    app.router.add_route("*", "/{tail:.*}", receiver._handle)
    runner = web.AppRunner(app, access_log=None, shutdown_timeout=0.5)
    await runner.setup()
    # Bound here, so the port is known up front (and TCP_NODELAY applies: see tests/serving.py).
    sock = socket.socket(socket.AF_INET, socket.SOCK_STREAM, socket.IPPROTO_TCP)
    sock.setsockopt(socket.SOL_SOCKET, socket.SO_REUSEADDR, 1)
    sock.bind(("127.0.0.1", 0))
    port = sock.getsockname()[1]
    await web.SockSite(runner, sock).start()
    receiver.base_url = f"http://127.0.0.1:{port}"
    try:
        yield receiver
    finally:
        receiver.release.set()
        await runner.cleanup()
        sock.close()
