"""Every route's documented answers: its successful answer's examples and each error it can
give, with when. Routes take theirs as `responses=`; docs/api.md explains the rules behind them.
The answers many routes share are here; the senders', the webhook endpoints' and Meta's webhook's
own are in `sender_responses`, `webhook_endpoint_responses` and `webhook_responses`.
"""

from __future__ import annotations

from typing import Any

from prometheus_client import CONTENT_TYPE_LATEST

from wa_outbound.api import examples as ex
from wa_outbound.api.limits import BATCH_BODY_BYTES
from wa_outbound.api.models import Message
from wa_outbound.api.openapi import Answer, errors, example, invalid, success
from wa_outbound.api.template_answers import GATES
from wa_outbound.errors import (
    AlreadyExists,
    ConsentRequired,
    Forbidden,
    IdempotencyConflict,
    InvalidJson,
    InvalidRequest,
    NoSender,
    NotCancellable,
    NotFound,
    OutsideServiceWindow,
    Unauthorized,
    Unavailable,
    UnknownSender,
)

# --- answers many routes share ------------------------------------------------------------

API_KEY = Answer(
    Unauthorized, "the API key is missing, unknown or revoked", "The API key is unknown or revoked."
)
ADMIN_TOKEN = (
    Answer(Unauthorized, "the admin token is missing or wrong", "The admin token is not valid."),
    Answer(
        Forbidden,
        "the admin API is disabled: `WA_ADMIN_TOKEN` is not set",
        "The admin API is disabled: WA_ADMIN_TOKEN is not set.",
    ),
)
NOT_JSON = Answer(InvalidJson, "the body is not valid JSON")
UNAVAILABLE = Answer(
    Unavailable,
    "the database does not answer; nothing was changed, retry later",
    "The database is unavailable; retry later.",
)
REPEATED_QUERY = Answer(
    InvalidRequest,
    "a query parameter is given more than once",
    "query parameters given more than once: limit",
)
BAD_MESSAGE_ID = invalid(
    "the message id is not a UUID",
    ("path", "message_id"),
    "Input should be a valid UUID, invalid length: found 3",
    "uuid_parsing",
)
BAD_PAGE = Answer(
    InvalidRequest,
    "a filter, `limit` (1 to 500) or `cursor` is not valid (a cursor must be one this API "
    "returned)",
    "cursor: not a cursor returned by this API",
    {"field": "cursor"},
)
BAD_PHONE = Answer(
    InvalidRequest,
    "the phone number in the path is not E.164 (`+` then 8 to 15 digits)",
    "phone: must be an E.164 phone number: + then 8 to 15 digits",
    {"field": "phone"},
)
# On PostgreSQL a NUL character in a path's text cannot be looked up: it answers 422.
BAD_ORG_ID = Answer(
    InvalidRequest,
    "`org_id` holds a character the database cannot hold (NUL)",
    "A value in the request cannot be stored (e.g. a NUL character in a string).",
)
ORG_NOT_FOUND = Answer(NotFound, "no organisation has this id", "organisation 'globex' not found")
MESSAGE_NOT_FOUND = Answer(
    NotFound, "no message has this id in the calling organisation", "message not found"
)
NOT_IN_DLQ = Answer(
    NotFound,
    "no message with this id is in the calling organisation's dead-letter queue",
    "no such message in the dead-letter queue",
)
ORG_CALL = (API_KEY, UNAVAILABLE)
ORG_PAGED_CALL = (API_KEY, REPEATED_QUERY, UNAVAILABLE)  # routers with `single_valued_query`
ADMIN_CALL = (*ADMIN_TOKEN, UNAVAILABLE)


def _message_routes(*answers: Answer, body_limit_bytes: int | None = None) -> dict[int | str, Any]:
    limit = {"body_limit_bytes": body_limit_bytes} if body_limit_bytes else {}
    return errors(*answers, *ORG_PAGED_CALL, **limit)


# --- messages -----------------------------------------------------------------------------

QUEUE_MESSAGE: dict[int | str, Any] = {
    202: success("Queued: the message, `QUEUED`", queued=example(None, ex.QUEUED)),
    200: {
        "model": Message,
        **success(
            "The same `Idempotency-Key` and body again: the message first queued, as it is "
            "now; nothing new is queued",
            replayed=example("The original message, since read", ex.READ),
        ),
    },
    **_message_routes(
        NOT_JSON,
        Answer(
            IdempotencyConflict,
            "the `Idempotency-Key` was used before with a different body",
            details={"idempotency_key": "order-42"},
        ),
        invalid(
            "the body or the `Idempotency-Key` header breaks a rule of the schema (e.g. `to` "
            "is not a phone number; not exactly one of `template`, `text`, `media` and "
            "`interactive`; beyond Meta's limits, with the field's path)",
            ("body", "to"),
            "Value error, must be an E.164 phone number: + then 8 to 15 digits",
            "value_error",
        ),
        Answer(
            ConsentRequired,
            "the recipient has not granted consent; nothing is stored",
            details={"phone_suffix": "5678"},
        ),
        Answer(
            OutsideServiceWindow,
            "a session message, and the recipient has not written to that sender in 24 hours",
        ),
        Answer(UnknownSender, "`from` names no sender of the org", details={"sender": "+1555"}),
        Answer(NoSender, "the organisation has no sender, and the deployment no shared sender"),
        *GATES,
    ),
}
QUEUE_BATCH: dict[int | str, Any] = {
    200: success(
        "One result per item, in order: `message` or `error`, the other null",
        mixed=example("One queued, one refused", ex.BATCH_RESULTS),
    ),
    **_message_routes(
        NOT_JSON,
        invalid(
            "`messages` is missing, empty, longer than 1,000 items, or holds something other "
            "than objects (items are judged one by one, in the results)",
            ("body", "messages"),
            "List should have at least 1 item after validation, not 0",
            "too_short",
        ),
        body_limit_bytes=BATCH_BODY_BYTES,
    ),
}
LIST_MESSAGES: dict[int | str, Any] = {
    200: success(
        "A page of messages, newest first",
        page=example(None, {"items": [ex.READ], "next_cursor": ex.CURSOR}),
    ),
    **_message_routes(BAD_PAGE),
}
READ_MESSAGE: dict[int | str, Any] = {
    200: success("The message", read=example(None, ex.READ)),
    **_message_routes(MESSAGE_NOT_FOUND, BAD_MESSAGE_ID),
}
MESSAGE_EVENTS: dict[int | str, Any] = {
    200: success("The events, oldest first", sent=example(None, ex.EVENTS)),
    **_message_routes(MESSAGE_NOT_FOUND, BAD_MESSAGE_ID),
}
CANCEL_MESSAGE: dict[int | str, Any] = {
    200: success("The message, `CANCELLED`", cancelled=example(None, ex.CANCELLED)),
    **_message_routes(
        MESSAGE_NOT_FOUND,
        Answer(
            NotCancellable,
            "the message is no longer `QUEUED` or `RETRYING`, or its last send's outcome is "
            "unknown (`waiting_reason` `send_unknown`); `details.status` is its status",
            details={"status": "SENT"},
        ),
        BAD_MESSAGE_ID,
    ),
}

# --- consents -----------------------------------------------------------------------------

PUT_CONSENT: dict[int | str, Any] = {
    200: success("The consent record", granted=example(None, ex.CONSENT)),
    **errors(
        NOT_JSON,
        BAD_PHONE,
        invalid(
            "the body breaks a rule of the schema",
            ("body", "status"),
            "Input should be 'granted' or 'revoked'",
            "literal_error",
        ),
        *ORG_CALL,
    ),
}
GET_CONSENT: dict[int | str, Any] = {
    200: success("The consent record", granted=example(None, ex.CONSENT)),
    **errors(
        Answer(
            NotFound,
            "no consent was ever recorded for this number",
            "no consent recorded for this phone number",
        ),
        BAD_PHONE,
        *ORG_CALL,
    ),
}

# --- rate limits --------------------------------------------------------------------------

GET_QUOTA: dict[int | str, Any] = {
    200: success("The quota now", quota=example(None, ex.QUOTA)),
    **errors(*ORG_CALL),
}
PUT_QUOTA: dict[int | str, Any] = {
    200: success("The quota, with the new limits", quota=example(None, ex.QUOTA)),
    **errors(
        NOT_JSON,
        ORG_NOT_FOUND,
        invalid(
            "the body breaks a rule of the schema, or `X-Org-Id` is missing or longer than 64",
            ("body", "limit"),
            "Input should be greater than or equal to 0",
            "greater_than_equal",
        ),
        *ADMIN_CALL,
    ),
}

# --- dead-letter queue --------------------------------------------------------------------

LIST_DLQ: dict[int | str, Any] = {
    200: success(
        "A page of dead-lettered messages, newest first",
        page=example(None, {"items": [ex.DEAD_LETTERED], "next_cursor": None}),
    ),
    **_message_routes(BAD_PAGE),
}
DLQ_REPORT: dict[int | str, Any] = {
    200: success("The report", report=example(None, ex.DLQ_REPORT)),
    **_message_routes(),
}
REPLAY_MANY: dict[int | str, Any] = {
    202: success(
        "How many messages went back to `QUEUED`", replayed=example(None, {"replayed": 2})
    ),
    **_message_routes(
        NOT_JSON,
        invalid(
            "neither `ids` nor `error_code` is given, an id is not a UUID, or more than 1,000 ids",
            ("body",),
            "Value error, give 'ids', 'error_code', or both",
            "value_error",
        ),
        body_limit_bytes=BATCH_BODY_BYTES,
    ),
}
REPLAY_ONE: dict[int | str, Any] = {
    202: success("The message, back in `QUEUED`", replayed=example(None, ex.REPLAYED)),
    **_message_routes(NOT_IN_DLQ, BAD_MESSAGE_ID),
}
DISCARD: dict[int | str, Any] = _message_routes(NOT_IN_DLQ, BAD_MESSAGE_ID)

# --- admin --------------------------------------------------------------------------------

CREATE_ORG: dict[int | str, Any] = {
    201: success("The organisation", created=example(None, ex.ORG)),
    **errors(
        NOT_JSON,
        Answer(
            AlreadyExists,
            "an organisation already has this `id`",
            "organisation 'acme' already exists",
            {"org_id": "acme"},
        ),
        invalid(
            "the body breaks a rule of the schema (e.g. `id` is not 1 to 64 letters, digits, "
            "`_` or `-`)",
            ("body", "name"),
            "Field required",
            "missing",
        ),
        *ADMIN_CALL,
    ),
}
GET_ORG: dict[int | str, Any] = {
    200: success("The organisation", org=example(None, ex.ORG)),
    **errors(ORG_NOT_FOUND, BAD_ORG_ID, *ADMIN_CALL),
}
CREATE_API_KEY: dict[int | str, Any] = {
    201: success("The new key; `api_key` is shown only here", created=example(None, ex.API_KEY)),
    **errors(
        NOT_JSON,
        ORG_NOT_FOUND,
        invalid(
            "the body breaks a rule of the schema (or `org_id` holds a NUL character)",
            ("body", "name"),
            "String should have at most 200 characters",
            "string_too_long",
        ),
        *ADMIN_CALL,
    ),
}
REVOKE_API_KEY: dict[int | str, Any] = errors(
    Answer(
        NotFound,
        "the organisation has no such key, or it is already revoked",
        "API key not found",
    ),
    invalid(
        "the key id is not a UUID (or `org_id` holds a NUL character)",
        ("path", "key_id"),
        "Input should be a valid UUID, invalid length: found 3",
        "uuid_parsing",
    ),
    *ADMIN_CALL,
)
LIST_ALERTS: dict[int | str, Any] = {
    200: success("A page of alerts, newest first", firing=example(None, ex.ALERTS)),
    **errors(BAD_PAGE, REPEATED_QUERY, *ADMIN_CALL),
}

# --- health and metrics -------------------------------------------------------------------

LIVE: dict[int | str, Any] = {
    200: success("The process runs", ok=example(None, {"status": "ok"})),
    **errors(),
}
READY: dict[int | str, Any] = {
    200: success("Ready", ready=example(None, ex.READY)),
    503: success(
        "Not ready: the database does not answer, its schema is older than the code, or a "
        "background loop died; the body says which (this is not the error body)",
        database_down=example(None, ex.NOT_READY),
    ),
    **errors(),
}
CHANNELS: dict[int | str, Any] = {
    200: success("The calling organisation's figures", channels=example(None, ex.CHANNELS)),
    **errors(*ORG_CALL),
}
METRICS: dict[int | str, Any] = {
    200: success(
        "Prometheus' text exposition format", CONTENT_TYPE_LATEST, text=example(None, ex.METRICS)
    ),
    **errors(),
}
