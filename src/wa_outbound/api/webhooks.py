"""Meta's webhook: the verification handshake, and signed status and message notifications."""

from __future__ import annotations

import hashlib
import hmac
from typing import Annotated, Any, Literal

import orjson
from fastapi import APIRouter, Header, Query, Request
from fastapi.responses import PlainTextResponse, Response
from pydantic import BaseModel

from wa_outbound import text
from wa_outbound.api import examples, webhook_responses
from wa_outbound.api.deps import SettingsDep
from wa_outbound.api.limits import WEBHOOK_BODY_BYTES
from wa_outbound.config import Settings
from wa_outbound.contacts.keywords import Keywords
from wa_outbound.db.types import utcnow
from wa_outbound.errors import (
    BadRequest,
    Forbidden,
    InvalidJson,
    PayloadTooLarge,
    Unauthorized,
)
from wa_outbound.webhooks import intake
from wa_outbound.webhooks.applier import WebhookIntake

router = APIRouter(prefix="/webhooks", tags=["webhooks"])
MAX_BODY_BYTES = WEBHOOK_BODY_BYTES
SIGNATURE_PREFIX = "sha256="


class WebhookAck(BaseModel):
    status: Literal["received"] = "received"


@router.get(
    "/whatsapp",
    summary="Meta's verification handshake",
    description="Meta calls it once, when the webhook is configured in its dashboard: the "
    "answer echoes `hub.challenge` when `hub.mode` is `subscribe` and `hub.verify_token` "
    "equals `WA_WEBHOOK_VERIFY_TOKEN`.",
    # Not `response_class=PlainTextResponse`: that would document the JSON error bodies as text.
    responses=webhook_responses.VERIFY_WEBHOOK,
)
async def verify(
    settings: SettingsDep,
    mode: Annotated[str, Query(alias="hub.mode")] = "",
    token: Annotated[str, Query(alias="hub.verify_token")] = "",
    challenge: Annotated[str, Query(alias="hub.challenge")] = "",
) -> PlainTextResponse:
    """Echo `hub.challenge` when `hub.verify_token` equals `WA_WEBHOOK_VERIFY_TOKEN`; else 403."""
    expected = settings.webhook_verify_token.get_secret_value()
    if mode != "subscribe" or not expected or not _equal(token, expected):
        raise Forbidden("The verify token does not match WA_WEBHOOK_VERIFY_TOKEN.")
    return PlainTextResponse(challenge)


@router.post(
    "/whatsapp",
    response_model=WebhookAck,
    summary="Statuses and inbound messages from Meta",
    description="Called by Meta, never by integrators. The signature is checked on the raw "
    "body before it is parsed; the body is then stored and its statuses applied (a "
    "status never moves a message backwards; statuses of ids not known yet are kept until "
    "they are) and its inbound messages open service windows. 200 also for parts the service "
    "does not use.",
    responses=webhook_responses.RECEIVE_WEBHOOK,
    openapi_extra={
        "requestBody": {
            "required": True,
            "content": {
                "application/json": {
                    "schema": {"type": "object"},
                    "examples": {"delivered": {"value": examples.WEBHOOK_STATUS}},
                }
            },
            "description": "Meta's webhook body, signed in X-Hub-Signature-256 (≤ 3 MB).",
        }
    },
)
async def receive(
    request: Request,
    signature: Annotated[
        str | None,
        Header(
            alias="X-Hub-Signature-256",
            description="`sha256=<hex HMAC-SHA256 of the raw body with WA_APP_SECRET>`",
        ),
    ] = None,
) -> Response:
    """200 once the body is committed; statuses of unknown messages are kept until they are known.

    The signature is checked on the raw bytes before anything is parsed or stored. On
    PostgreSQL the POST is answered ahead of the router by api/webhook_path.py, with the same
    checks and answers; this route documents it and serves SQLite.
    """
    settings: Settings = request.state.settings
    secret = signing_secret(settings, signature)
    raw = await _read_body(request)
    body = verified(secret, signature or "", raw)
    pipeline: WebhookIntake | None = request.state.webhook_intake
    if pipeline is not None:  # PostgreSQL (without the fast path of api/webhook_path.py)
        await pipeline.receive(raw, body, now=utcnow())
        return Response(ACK_BODY, media_type="application/json")
    keywords = Keywords.from_settings(settings)
    processed = await intake.receive(
        request.state.engine, raw, body, now=utcnow(), keywords=keywords
    )
    intake.count(request.state.metrics, processed)
    return Response(ACK_BODY, media_type="application/json")


def signing_secret(settings: Settings, signature: str | None) -> str:
    """The app secret, once the signature header has the right form; else Unauthorized."""
    secret = settings.app_secret.get_secret_value()
    if not secret:
        raise Unauthorized("Webhooks are refused: WA_APP_SECRET is not set.")
    if not signature or not signature.startswith(SIGNATURE_PREFIX):
        raise Unauthorized("The X-Hub-Signature-256 header is missing or not `sha256=<hex>`.")
    return secret


def verified(secret: str, signature: str, raw: bytes) -> dict[str, Any]:
    """The body, once its signature matches (else Unauthorized) and it is a JSON object."""
    expected = hmac.new(secret.encode(), raw, hashlib.sha256).hexdigest()
    if not _equal(signature.removeprefix(SIGNATURE_PREFIX).lower(), expected):
        raise Unauthorized("The X-Hub-Signature-256 header does not match the body.")
    return _parse(raw)


async def _read_body(request: Request) -> bytes:
    declared = request.headers.get("content-length", "")
    if declared.isdigit() and int(declared) > MAX_BODY_BYTES:
        raise PayloadTooLarge(limit_bytes=MAX_BODY_BYTES)
    # The declared length may be absent (chunked) or wrong: count what actually arrives.
    received = bytearray()
    async for chunk in request.stream():
        received += chunk
        if len(received) > MAX_BODY_BYTES:
            raise PayloadTooLarge(limit_bytes=MAX_BODY_BYTES)
    return bytes(received)


def _parse(raw: bytes) -> dict[str, Any]:
    try:
        # A NUL, which PostgreSQL cannot store, is read as U+FFFD: the statuses still apply, and
        # the stored raw body keeps the original.
        body = text.decoded_storable(raw)
    except orjson.JSONDecodeError:
        raise InvalidJson() from None
    if not isinstance(body, dict):
        raise BadRequest("The body must be a JSON object.")
    return body


ACK_BODY = WebhookAck().model_dump_json().encode()  # answered as is, not serialised per request


def _equal(given: str, expected: str) -> bool:
    # Constant time; bytes, because compare_digest refuses non-ASCII str.
    return hmac.compare_digest(given.encode(), expected.encode())
