"""Real servers on loopback for the notifiers: an SMTP sink (aiosmtpd) and a stand-in for
Slack's incoming webhook (Starlette under uvicorn), both in the test's event loop."""

from __future__ import annotations

import asyncio
import email
import email.policy
import socket
from collections.abc import AsyncIterator
from contextlib import asynccontextmanager
from dataclasses import dataclass, field
from email.message import EmailMessage
from typing import Any

import uvicorn
from aiosmtpd.smtp import SMTP, AuthResult, Envelope, LoginPassword, Session
from starlette.applications import Starlette
from starlette.requests import Request
from starlette.responses import JSONResponse, PlainTextResponse
from starlette.routing import Route


@dataclass
class Mailbox:
    """What the SMTP sink received; `arrived` is set on each message."""

    port: int
    messages: list[EmailMessage] = field(default_factory=list)
    recipients: list[list[str]] = field(default_factory=list)
    logins: list[str] = field(default_factory=list)
    arrived: asyncio.Event = field(default_factory=asyncio.Event)

    async def handle_DATA(self, server: SMTP, session: Session, envelope: Envelope) -> str:
        content = envelope.original_content or b""
        parsed = email.message_from_bytes(content, policy=email.policy.default)
        assert isinstance(parsed, EmailMessage)
        self.messages.append(parsed)
        self.recipients.append(list(envelope.rcpt_tos))
        self.arrived.set()
        return "250 OK"


@asynccontextmanager
async def smtp_sink(
    *, username: str | None = None, password: str = "", port: int = 0
) -> AsyncIterator[Mailbox]:
    """An SMTP server on `port` (a free one by default); with `username`, it offers AUTH and
    checks the login."""
    mailbox = Mailbox(port=0)

    def authenticator(
        server: SMTP, session: Session, envelope: Envelope, mechanism: str, data: Any
    ) -> AuthResult:
        ok = isinstance(data, LoginPassword) and (data.login, data.password) == (
            (username or "").encode(),
            password.encode(),
        )
        if ok:
            mailbox.logins.append(username or "")
        return AuthResult(success=ok)

    def protocol() -> SMTP:
        if username is None:
            return SMTP(mailbox, hostname="localhost")
        return SMTP(
            mailbox, hostname="localhost", authenticator=authenticator, auth_require_tls=False
        )

    server = await asyncio.get_running_loop().create_server(protocol, "127.0.0.1", port)
    mailbox.port = server.sockets[0].getsockname()[1]
    try:
        yield mailbox
    finally:
        server.close()
        await server.wait_closed()


def free_port() -> int:
    """A port nothing listens on (for 'server down' tests)."""
    with socket.socket() as sock:
        sock.bind(("127.0.0.1", 0))
        port: int = sock.getsockname()[1]
    return port


@dataclass
class FakeSlack:
    """Posts received by the stand-in; `status` is what it answers."""

    url: str = ""
    status: int = 200
    posts: list[dict[str, Any]] = field(default_factory=list)
    arrived: asyncio.Event = field(default_factory=asyncio.Event)

    async def receive(self, request: Request) -> PlainTextResponse | JSONResponse:
        assert request.headers["content-type"] == "application/json"
        self.posts.append(await request.json())
        self.arrived.set()
        if self.status != 200:
            return JSONResponse({"error": "boom"}, status_code=self.status)
        return PlainTextResponse("ok")


@asynccontextmanager
async def slack_server(status: int = 200) -> AsyncIterator[FakeSlack]:
    slack = FakeSlack(status=status)
    app = Starlette(routes=[Route("/services/T000/B000/XXX", slack.receive, methods=["POST"])])
    sock = socket.socket()
    sock.bind(("127.0.0.1", 0))
    slack.url = f"http://127.0.0.1:{sock.getsockname()[1]}/services/T000/B000/XXX"
    server = uvicorn.Server(uvicorn.Config(app, log_level="warning", lifespan="off"))
    task = asyncio.create_task(server.serve(sockets=[sock]), name="fake-slack")
    try:
        while not server.started:
            if task.done():
                task.result()
            await asyncio.sleep(0.01)
        yield slack
    finally:
        server.should_exit = True
        await task
        sock.close()
