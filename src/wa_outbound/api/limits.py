"""Request limits: body sizes, enforced before any route runs; one value per query
parameter; and text the databases can store, in parameters and JSON bodies.

The body limit is a plain ASGI middleware rather than a dependency: it must refuse a body that
is too large before the framework reads all of it into memory, and it must count the bytes that
actually arrive, because a `Content-Length` header can be absent (chunked) or wrong.
"""

from __future__ import annotations

from typing import Any

import orjson
from fastapi import Request
from fastapi.exceptions import RequestValidationError
from starlette.types import ASGIApp, Message, Receive, Scope, Send

from wa_outbound import text
from wa_outbound.api.errors import error_body
from wa_outbound.errors import InvalidRequest

SINGLE_BODY_BYTES = 64 * 1024  # one message, a consent, an org: a few kB at most
BATCH_BODY_BYTES = 4 * 1024 * 1024  # 1,000 messages of ~4 kB each
WEBHOOK_BODY_BYTES = 3 * 1024 * 1024  # Meta's own limit for one webhook body

# Paths whose bodies may be larger than one message's; every other path gets SINGLE_BODY_BYTES.
LARGE_BODY_PATHS = {
    "/v1/messages/batch": BATCH_BODY_BYTES,
    "/v1/dlq/replay": BATCH_BODY_BYTES,
    "/webhooks/whatsapp": WEBHOOK_BODY_BYTES,
}


def body_limit(path: str) -> int:
    """The most bytes a request body to `path` may have."""
    return LARGE_BODY_PATHS.get(path.rstrip("/") or "/", SINGLE_BODY_BYTES)


class BodySizeLimit:
    """Answers 413 with the contract's error body when a request body exceeds `body_limit`.

    The body is read here, counted as it streams in, and handed on to the app in one piece:
    the routes read whole bodies anyway, so nothing is buffered that would not have been.
    """

    def __init__(self, app: ASGIApp) -> None:
        self.app = app

    async def __call__(self, scope: Scope, receive: Receive, send: Send) -> None:
        if scope["type"] != "http":
            await self.app(scope, receive, send)
            return
        limit = body_limit(scope["path"])
        declared = _content_length(scope)
        if declared is not None and declared > limit:
            await _too_large(send, limit)
            return
        chunks: list[bytes] = []
        received = 0
        while True:
            message = await receive()
            if message["type"] != "http.request":  # the client went away: let the app see it
                await self.app(scope, _replay(b"".join(chunks), receive, first=message), send)
                return
            chunk = message.get("body", b"")
            received += len(chunk)
            if received > limit:
                await _too_large(send, limit)
                return
            chunks.append(chunk)
            if not message.get("more_body", False):
                break
        await self.app(scope, _replay(b"".join(chunks), receive), send)


def _content_length(scope: Scope) -> int | None:
    for name, value in scope["headers"]:
        if name == b"content-length":
            return int(value) if value.isdigit() else None
    return None


def _replay(body: bytes, receive: Receive, *, first: Message | None = None) -> Receive:
    """A `receive` that yields the whole body once, then whatever the client sends next
    (its disconnect)."""
    pending: list[Message] = [first or {"type": "http.request", "body": body, "more_body": False}]

    async def replayed() -> Message:
        if pending:
            return pending.pop()
        return await receive()

    return replayed


async def _too_large(send: Send, limit: int) -> None:
    body = orjson.dumps(
        error_body(
            "payload_too_large",
            f"The request body is larger than {limit} bytes.",
            {"limit_bytes": limit},
        )
    )
    await send(
        {
            "type": "http.response.start",
            "status": 413,
            "headers": [
                (b"content-type", b"application/json"),
                (b"content-length", str(len(body)).encode()),
                # The rest of the body is not read: the connection cannot be reused.
                (b"connection", b"close"),
            ],
        }
    )
    await send({"type": "http.response.body", "body": body})


async def single_valued_query(request: Request) -> None:
    """Every query parameter of the API takes one value: `?cursor=a&cursor=b` is refused (422)
    rather than silently read as its last value."""
    params = request.query_params
    pairs = params.multi_items()
    if len(pairs) != len(params):  # len(params) counts distinct names
        names = sorted({name for name, _ in pairs if len(params.getlist(name)) > 1})
        raise InvalidRequest(f"query parameters given more than once: {', '.join(names)}")


_MAX_REPORTED = 20


async def storable_text(request: Request) -> None:
    """Refuses (422 `validation_error`, naming each place) a path or query parameter, or a
    string or key anywhere in the JSON body the route reads, holding a character neither
    database can store: a NUL, or an unpaired surrogate. Runs before the route's own
    validation, on the body the framework has already parsed."""
    found: list[tuple[str | int, ...]] = [
        (where, name)
        for where, params in (
            ("path", request.path_params.items()),
            ("query", request.query_params.multi_items()),
        )
        for name, value in params
        if isinstance(value, str) and text.UNSTORABLE.search(f"{name}{value}")
    ]
    route = request.scope.get("route")
    if getattr(route, "body_field", None) is not None and text.may_hold_unstorable(
        await request.body()
    ):
        try:
            body = await request.json()  # parsed and kept by the framework already
        except (ValueError, RecursionError):  # not JSON: the framework answers for it
            body = None
        found += [("body", *path) for path in text.unstorable_paths(body)]
    if found:
        raise RequestValidationError([_unstorable_error(loc) for loc in found[:_MAX_REPORTED]])


def _unstorable_error(loc: tuple[str | int, ...]) -> dict[str, Any]:
    return {
        "type": "string_unstorable",
        "loc": tuple(text.escaped(p) if isinstance(p, str) else p for p in loc),
        "msg": "holds a NUL character or an unpaired surrogate, which cannot be stored",
        "input": None,
    }
