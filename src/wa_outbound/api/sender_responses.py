"""The senders API's documented answers (see responses.py for the shared ones)."""

from __future__ import annotations

from typing import Any

from wa_outbound.api import examples as ex
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
        201: success("The sender, as Meta described it", created=example(None, ex.SENDER)),
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
    {200: success("The organisation's senders", listed=example(None, {"items": [ex.SENDER]}))},
    *_CALL,
)
GET: dict[int | str, Any] = _with(
    {
        200: success(
            "The sender",
            active=example(None, ex.SENDER),
            paused=example("Paused: Meta refused its token", ex.PAUSED_SENDER),
        )
    },
    NOT_FOUND,
    BAD_ID,
    *_CALL,
)
UPDATE: dict[int | str, Any] = _with(
    {200: success("The sender, changed", changed=example(None, ex.SENDER))},
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
