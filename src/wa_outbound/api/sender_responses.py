"""The senders API's documented answers (see responses.py for the shared ones)."""

from __future__ import annotations

from typing import Any

from wa_outbound.api.examples import ORG_ID, SENDER_ID
from wa_outbound.api.openapi import Answer, errors, example, invalid, success
from wa_outbound.api.responses import API_KEY, NOT_JSON, UNAVAILABLE
from wa_outbound.errors import (
    AdminOnly,
    DefaultRequired,
    InvalidRequest,
    NotFound,
    SenderExists,
    SenderInUse,
    SenderIsDefault,
    SenderVerificationFailed,
)

SENDER = {
    "id": SENDER_ID,
    "org_id": ORG_ID,
    "name": "Support line",
    "phone_number_id": "106540352242922",
    "waba_id": "102290129340398",
    "display_phone_number": "+1 555-025-3483",
    "default": True,
    "messages_per_second": 80.0,
    "status": "active",
    "paused_reasons": [],
    "paused_at": None,
    "messaging_limit": "TIER_2K",
    "quality_rating": "GREEN",
    "token_last4": "x9Qz",
    "created_at": "2026-12-02T08:10:00Z",
    "updated_at": "2026-12-02T08:10:00Z",
}
PAUSED_SENDER = SENDER | {
    "status": "paused",
    "paused_reasons": ["token_invalid"],
    "paused_at": "2026-12-02T09:00:00Z",
    "updated_at": "2026-12-02T09:00:00Z",
}

NOT_FOUND = Answer(
    NotFound,
    "no sender of the organisation has this id (another organisation's sender is not found "
    "either), or `X-Org-Id` names no organisation",
    "sender not found",
)
ADMIN_ORG = Answer(
    InvalidRequest,
    "the admin token is used without `X-Org-Id`",
    "X-Org-Id is required with the admin token",
    {"field": "X-Org-Id"},
)
VERIFICATION = Answer(
    SenderVerificationFailed,
    "Meta did not confirm the number with this token (its error is in `details`); nothing is "
    "stored",
    details={"meta": "Error validating access token", "http_status": 401, "meta_code": 190},
)
BAD_ID = invalid(
    "the sender id is not a UUID",
    ("path", "sender_id"),
    "Input should be a valid UUID, invalid length: found 3",
    "uuid_parsing",
)
_CALL = (API_KEY, ADMIN_ORG, UNAVAILABLE)


def _with(ok: dict[int | str, Any], *answers: Answer) -> dict[int | str, Any]:
    return {**ok, **errors(*answers)}


CREATE: dict[int | str, Any] = _with(
    {
        201: success("The sender, as Meta described it", created=example(None, SENDER)),
    },
    NOT_JSON,
    Answer(
        SenderExists,
        "the phone_number_id is registered already (to any organisation, or is the shared "
        "sender's)",
        details={"phone_number_id": "106540352242922"},
    ),
    VERIFICATION,
    invalid(
        "the body breaks a rule of the schema",
        ("body", "waba_id"),
        "Field required",
        "missing",
    ),
    *_CALL,
)
LIST: dict[int | str, Any] = _with(
    {200: success("The organisation's senders", listed=example(None, {"items": [SENDER]}))},
    *_CALL,
)
GET: dict[int | str, Any] = _with(
    {
        200: success(
            "The sender",
            active=example(None, SENDER),
            paused=example("Paused: Meta refused its token", PAUSED_SENDER),
        )
    },
    NOT_FOUND,
    BAD_ID,
    *_CALL,
)
UPDATE: dict[int | str, Any] = _with(
    {200: success("The sender, changed", changed=example(None, SENDER))},
    NOT_JSON,
    NOT_FOUND,
    BAD_ID,
    VERIFICATION,
    Answer(DefaultRequired, "`default: false` on the organisation's default sender"),
    Answer(AdminOnly, "`messaging_limit` with an organisation's API key"),
    *_CALL,
)
DELETE: dict[int | str, Any] = _with(
    {204: {"description": "Deleted"}},
    NOT_FOUND,
    BAD_ID,
    Answer(
        SenderInUse,
        "messages wait on the sender and `cancel_waiting=true` was not given",
        details={"waiting": 12},
    ),
    Answer(SenderIsDefault, "it is the default sender and the organisation has others"),
    *_CALL,
)
