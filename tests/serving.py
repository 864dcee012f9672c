"""Serving an ASGI app over loopback with uvicorn, inside the test's running event loop."""

from __future__ import annotations

import asyncio
import contextlib
import socket
from collections.abc import AsyncIterator, Callable
from typing import Literal

import uvicorn
from starlette.types import ASGIApp


class Server(uvicorn.Server):
    """uvicorn's server, calling `on_shutdown` as soon as shutdown begins: before uvicorn waits
    for in-flight requests, so that a handler told to hang can be told to stop."""

    def __init__(self, config: uvicorn.Config, on_shutdown: Callable[[], None] | None) -> None:
        super().__init__(config)
        self._on_shutdown = on_shutdown

    async def shutdown(self, sockets: list[socket.socket] | None = None) -> None:
        if self._on_shutdown is not None:
            self._on_shutdown()
        await super().shutdown(sockets)


@contextlib.asynccontextmanager
async def serving(
    app: ASGIApp,
    *,
    lifespan: Literal["auto", "on", "off"] = "auto",
    on_shutdown: Callable[[], None] | None = None,
    access_log: bool = False,
    backlog: int = 2048,
) -> AsyncIterator[str]:
    """Serves `app` on a free 127.0.0.1 port until the block ends; yields its base URL.
    With `access_log`, uvicorn's access lines go to the process's logging at INFO; a small
    `backlog` makes a server whose listen queue overflows under a burst of connections."""
    config = uvicorn.Config(
        app,
        lifespan=lifespan,
        log_config=None,  # leave the test process's logging alone
        log_level="info" if access_log else "warning",
        access_log=access_log,
        # A handler that never returns must not wedge the test run.
        timeout_graceful_shutdown=5,
        backlog=backlog,
    )
    server = Server(config, on_shutdown)
    # Binding here rather than in uvicorn gives the port up front, with no race for a free one.
    # The explicit IPPROTO_TCP matters: asyncio sets TCP_NODELAY on accepted connections only
    # when the socket says TCP, and without it every answer waits ~40 ms for a delayed ACK.
    sock = socket.socket(socket.AF_INET, socket.SOCK_STREAM, socket.IPPROTO_TCP)
    sock.setsockopt(socket.SOL_SOCKET, socket.SO_REUSEADDR, 1)
    sock.bind(("127.0.0.1", 0))
    port = sock.getsockname()[1]
    task = asyncio.create_task(server.serve(sockets=[sock]), name=f"uvicorn-127.0.0.1:{port}")
    try:
        while not server.started:
            if task.done():
                await task
                raise RuntimeError("uvicorn stopped while starting")
            await asyncio.sleep(0.005)
        yield f"http://127.0.0.1:{port}"
    finally:
        server.should_exit = True
        await task
        sock.close()
