"""Meta's webhook POST on PostgreSQL, answered ahead of FastAPI's router.

Meta posts one status per request, three per message sent, so this is the service's most
frequent request, and its own work is small (a signature, a body committed with others:
webhooks/group_commit.py). Routing, dependency solving, the exception middleware and the
response classes cost more than that work (docs/performance.md), so this ASGI middleware
answers `POST /webhooks/whatsapp` itself when the lifespan has a group-committed intake. It makes
the route's checks in the route's order (api/webhooks.py: `signing_secret`, the body's size,
`verified`) and answers the route's bodies; every other request, and every request on SQLite,
goes on to the app. The body has already been read and size-checked by `BodySizeLimit`,
which wraps this.
"""

from __future__ import annotations

import logging
from typing import Any

import orjson
from starlette.types import ASGIApp, Receive, Scope, Send

from wa_outbound.api.errors import error_body
from wa_outbound.api.limits import WEBHOOK_BODY_BYTES
from wa_outbound.api.webhooks import ACK_BODY, router, signing_secret, verified
from wa_outbound.db.types import utcnow
from wa_outbound.errors import PayloadTooLarge, ServiceError
from wa_outbound.webhooks.applier import WebhookIntake

log = logging.getLogger(__name__)
PATH = f"{router.prefix}/whatsapp"
_SIGNATURE = b"x-hub-signature-256"


class MetaWebhookPath:
    """ASGI middleware: `POST /webhooks/whatsapp` with a group-committed intake, answered here."""

    def __init__(self, app: ASGIApp) -> None:
        self.app = app

    async def __call__(self, scope: Scope, receive: Receive, send: Send) -> None:
        if scope["type"] != "http" or scope["path"] != PATH or scope["method"] != "POST":
            await self.app(scope, receive, send)
            return
        state: dict[str, Any] = scope.get("state") or {}
        pipeline: WebhookIntake | None = state.get("webhook_intake")
        if pipeline is None:
            await self.app(scope, receive, send)
            return
        try:
            signature = _header(scope, _SIGNATURE)
            secret = signing_secret(state["settings"], signature)
            raw = await _body(receive)
            body = verified(secret, signature or "", raw)
            await pipeline.receive(raw, body, now=utcnow())
            status, answer = 200, ACK_BODY
        except ServiceError as exc:
            status = exc.status
            answer = orjson.dumps(error_body(exc.code, exc.message, exc.details))
        except Exception as exc:  # as api/errors.py answers what nothing else handled
            log.exception("unhandled error", exc_info=exc)
            status = 500
            answer = orjson.dumps(error_body("internal_error", "An internal error occurred."))
        await send(
            {
                "type": "http.response.start",
                "status": status,
                "headers": [
                    (b"content-type", b"application/json"),
                    (b"content-length", str(len(answer)).encode()),
                ],
            }
        )
        await send({"type": "http.response.body", "body": answer})


def _header(scope: Scope, name: bytes) -> str | None:
    for key, value in scope["headers"]:
        if key == name:
            return bytes(value).decode("latin-1")
    return None


async def _body(receive: Receive) -> bytes:
    chunks: list[bytes] = []
    size = 0
    while True:
        message = await receive()
        chunk = message.get("body", b"")
        size += len(chunk)
        if size > WEBHOOK_BODY_BYTES:
            raise PayloadTooLarge(limit_bytes=WEBHOOK_BODY_BYTES)
        chunks.append(chunk)
        if not message.get("more_body", False):
            return b"".join(chunks)
