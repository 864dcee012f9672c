"""The webhook endpoints API's documented answers (see responses.py for the shared ones)."""

from __future__ import annotations

from typing import Any

from wa_outbound.api.examples import CURSOR
from wa_outbound.api.openapi import Answer, errors, example, invalid, success
from wa_outbound.api.responses import API_KEY, BAD_PAGE, NOT_JSON, REPEATED_QUERY, UNAVAILABLE
from wa_outbound.api.sender_responses import ADMIN_ORG
from wa_outbound.errors import DeliveryBlocked, NotFound, UrlNotAllowed

ENDPOINT_ID = "0b7e3c2a-4f15-4d8e-9c61-7a2f5e8d1b34"
DELIVERY_ID = "c4a1f9e2-8b3d-4e6a-b7c5-1d2e3f4a5b6c"
ENDPOINT = {
    "id": ENDPOINT_ID,
    "url": "https://app.example.com/hooks/whatsapp",
    "events": ["message.delivered", "message.failed", "message.received"],
    "description": "Order notifications",
    "enabled": True,
    "disabled_reason": None,
    "created_at": "2026-12-02T08:10:00Z",
    "updated_at": "2026-12-02T08:10:00Z",
}
SECRET = "whsec_MfKQ9r8GKYqrTwjUPD8ILPZIo2LaLaSw+b4/9mXOpYU="
DISABLED = ENDPOINT | {
    "enabled": False,
    "disabled_reason": "gone",
    "updated_at": "2026-12-02T09:00:00Z",
}
DELIVERY = {
    "id": DELIVERY_ID,
    "event_id": "4d3c2b1a-0f9e-4d8c-8b7a-6f5e4d3c2b1a",
    "event_type": "message.delivered",
    "message_id": "937730a7-1644-4f8a-a7cb-ecc5ac5ed725",
    "status": "failed",
    "attempts": 8,
    "last_status_code": 500,
    "last_error": "HTTP 500",
    "next_attempt_at": "2026-12-03T12:41:05Z",
    "created_at": "2026-12-02T08:16:37Z",
    "delivered_at": None,
}
PENDING = DELIVERY | {"status": "pending", "next_attempt_at": "2026-12-04T10:00:00Z"}

NOT_FOUND = Answer(
    NotFound,
    "no endpoint of the organisation has this id (another organisation's endpoint is not found "
    "either), or `X-Org-Id` names no organisation",
    "webhook endpoint not found",
)
DELIVERY_NOT_FOUND = Answer(
    NotFound,
    "no endpoint of the organisation has this id, or the endpoint has no delivery with this id",
    "delivery not found",
)
URL_REFUSED = Answer(
    UrlNotAllowed,
    "the URL is not `https://`, carries `user:password@`, or its host is or resolves to an "
    "address that is not public (loopback, private, link-local, CGNAT...)",
    "The URL's host resolves to an address that is not public.",
)
BAD_ID = invalid(
    "the endpoint id is not a UUID",
    ("path", "endpoint_id"),
    "Input should be a valid UUID, invalid length: found 3",
    "uuid_parsing",
)
_CALL = (API_KEY, ADMIN_ORG, UNAVAILABLE)


def _with(ok: dict[int | str, Any], *answers: Answer) -> dict[int | str, Any]:
    return {**ok, **errors(*answers)}


CREATE: dict[int | str, Any] = _with(
    {
        201: success(
            "The endpoint, and its secret (shown now and at rotation only)",
            created=example(None, ENDPOINT | {"secret": SECRET}),
        )
    },
    NOT_JSON,
    URL_REFUSED,
    invalid(
        "the body breaks a rule of the schema, e.g. an event type that does not exist",
        ("body", "events", "0"),
        "Value error, unknown event type; the types are message.accepted, message.sent, ...",
        "value_error",
    ),
    *_CALL,
)
LIST: dict[int | str, Any] = _with(
    {200: success("The organisation's endpoints", listed=example(None, {"items": [ENDPOINT]}))},
    *_CALL,
)
GET: dict[int | str, Any] = _with(
    {
        200: success(
            "The endpoint",
            enabled=example(None, ENDPOINT),
            disabled=example("Disabled: the receiver answered 410 Gone", DISABLED),
        )
    },
    NOT_FOUND,
    BAD_ID,
    *_CALL,
)
UPDATE: dict[int | str, Any] = _with(
    {200: success("The endpoint, changed", changed=example(None, ENDPOINT))},
    NOT_JSON,
    NOT_FOUND,
    BAD_ID,
    URL_REFUSED,
    *_CALL,
)
DELETE: dict[int | str, Any] = _with({204: {"description": "Deleted"}}, NOT_FOUND, BAD_ID, *_CALL)
ROTATE: dict[int | str, Any] = _with(
    {200: success("The new secret", rotated=example(None, {"secret": SECRET}))},
    NOT_FOUND,
    BAD_ID,
    *_CALL,
)
DELIVERIES: dict[int | str, Any] = _with(
    {
        200: success(
            "A page of the endpoint's deliveries, newest first",
            page=example(None, {"items": [DELIVERY], "next_cursor": CURSOR}),
        )
    },
    NOT_FOUND,
    BAD_ID,
    BAD_PAGE,
    REPEATED_QUERY,
    *_CALL,
)
RETRY: dict[int | str, Any] = _with(
    {202: success("The delivery, pending and due now", retried=example(None, PENDING))},
    DELIVERY_NOT_FOUND,
    BAD_ID,
    Answer(
        DeliveryBlocked,
        "an earlier event of the same message is still pending for this endpoint; it goes first",
        details={"pending_delivery_id": "5e6f7a8b-9c0d-4e1f-a2b3-c4d5e6f7a8b9"},
    ),
    *_CALL,
)
RECOVER: dict[int | str, Any] = _with(
    {
        202: success(
            "How many failed deliveries are sent again", recovered=example(None, {"requeued": 12})
        )
    },
    NOT_JSON,
    NOT_FOUND,
    BAD_ID,
    invalid(
        "`since` is missing or is not a time with its zone",
        ("body", "since"),
        "Field required",
        "missing",
    ),
    *_CALL,
)
