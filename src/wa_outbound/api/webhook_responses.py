"""Meta's webhook's documented answers: the subscription handshake and the signed POST (see
responses.py for the shared ones)."""

from __future__ import annotations

from typing import Any

from wa_outbound.api.limits import WEBHOOK_BODY_BYTES
from wa_outbound.api.openapi import Answer, errors, example, success
from wa_outbound.api.responses import NOT_JSON
from wa_outbound.errors import BadRequest, Forbidden, Unauthorized, Unavailable

VERIFY_WEBHOOK: dict[int | str, Any] = {
    200: {
        "description": "`hub.challenge`, echoed as text",
        "content": {
            "text/plain": {
                "schema": {"type": "string"},
                "examples": {"challenge": example(None, "1158201444")},
            }
        },
    },
    **errors(
        Answer(
            Forbidden,
            "`hub.mode` is not `subscribe`, `WA_WEBHOOK_VERIFY_TOKEN` is not set, or "
            "`hub.verify_token` does not equal it",
            "The verify token does not match WA_WEBHOOK_VERIFY_TOKEN.",
        ),
        body_limit_bytes=WEBHOOK_BODY_BYTES,
    ),
}
RECEIVE_WEBHOOK: dict[int | str, Any] = {
    200: success(
        "Stored (and processed, or kept for a retry by the sweep)",
        received=example(None, {"status": "received"}),
    ),
    **errors(
        NOT_JSON,
        Answer(BadRequest, "the body is JSON but not an object", "The body must be a JSON object."),
        Answer(
            Unauthorized,
            "`X-Hub-Signature-256` is missing, malformed or does not match the body, or "
            "`WA_APP_SECRET` is not set (every POST is then refused)",
            "The X-Hub-Signature-256 header does not match the body.",
        ),
        Answer(
            Unavailable,
            "the body could not be stored (the database does not answer): Meta sends it again",
            "The database is unavailable; retry later.",
        ),
        body_limit_bytes=WEBHOOK_BODY_BYTES,
    ),
}
