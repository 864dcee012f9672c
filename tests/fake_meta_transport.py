"""The connection's transport handed to the fake Meta Graph API's routes, so that a `drop` step
can cut the connection with no answer at all. Used by `fake_meta.FakeMeta`."""

from __future__ import annotations

from starlette.types import ASGIApp, Receive, Scope, Send

# The scope's key under which `WithTransport` puts the transport.
TRANSPORT = "fake_meta.transport"


class WithTransport:
    """Puts the connection's transport in the scope (uvicorn's `send` is a method of the
    request's cycle, which holds it), so a `drop` step can cut the connection."""

    def __init__(self, app: ASGIApp) -> None:
        self.app = app

    async def __call__(self, scope: Scope, receive: Receive, send: Send) -> None:
        if scope["type"] == "http":
            scope[TRANSPORT] = getattr(getattr(send, "__self__", None), "transport", None)
        await self.app(scope, receive, send)
