"""The API's objects, as TypedDicts: the JSON the service answers, typed, with nothing parsed.

Times are RFC 3339 strings in UTC (`parse_time` makes datetimes of them). A field the service
adds later is in the dict at runtime before it is in these types.
"""

from __future__ import annotations

from datetime import datetime
from typing import Any, Literal, NotRequired, Required, TypedDict

MessageStatus = Literal[
    "QUEUED",
    "SENDING",
    "RETRYING",
    "ACCEPTED",
    "SENT",
    "DELIVERED",
    "READ",
    "FAILED",
    "CANCELLED",
]
ConsentStatus = Literal["granted", "revoked"]
DeliveryStatus = Literal["pending", "succeeded", "failed"]
EventType = Literal[
    "message.accepted",
    "message.sent",
    "message.delivered",
    "message.read",
    "message.failed",
    "message.cancelled",
    "message.received",
    "consent.changed",
    "sender.updated",
    "template.updated",
]


class TemplateComponent(TypedDict, total=False):
    """A component as Meta takes it; parameters pass Meta's other fields through."""

    type: Required[Literal["header", "body", "button", "footer"]]
    sub_type: str
    index: int | str
    parameters: list[dict[str, Any]]


class Template(TypedDict):
    name: str
    language: str
    components: NotRequired[list[TemplateComponent]]


class Text(TypedDict):
    body: str
    preview_url: NotRequired[bool]


class Media(TypedDict, total=False):
    """Exactly one of `link` (https) and `id` (a Meta media id)."""

    type: Required[Literal["image", "video", "audio", "document", "sticker"]]
    link: str
    id: str
    caption: str
    filename: str


class InteractiveText(TypedDict):
    text: str


class Interactive(TypedDict, total=False):
    """Meta's interactive object (reply buttons, a list, a call-to-action URL), sent as given;
    `header` and `action` follow Meta's reference (docs/api.md lists the limits)."""

    type: Required[Literal["button", "list", "cta_url"]]
    header: dict[str, Any]
    body: Required[InteractiveText]
    footer: InteractiveText
    action: Required[dict[str, Any]]


# `from` is a Python keyword: the functional form is the only way to name that key.
MessageCreate = TypedDict(
    "MessageCreate",
    {
        "to": Required[str],
        "template": Template,
        "text": Text,
        "media": Media,
        "interactive": Interactive,
        "reply_to": str,
        "metadata": dict[str, str],
        "send_after": str,
        "expires_at": str,
        "from": str,
        "idempotency_key": str,
    },
    total=False,
)
"""One item of `messages.batch`: the body of `POST /v1/messages`, and its idempotency key."""


class MessageError(TypedDict):
    code: str
    title: str | None
    message: str | None
    retryable: bool
    details: str | None


class Message(TypedDict):
    id: str
    org_id: str
    channel: str
    to: str | None
    """Null once the contact was erased (`redacted`)."""
    kind: Literal["template", "text", "media", "interactive"]
    template: Template | None
    text: Text | None
    media: Media | None
    interactive: Interactive | None
    reply_to: str | None
    metadata: dict[str, str]
    status: MessageStatus
    attempts: int
    max_attempts: int
    next_attempt_at: str
    provider_message_id: str | None
    error: MessageError | None
    dead_lettered: bool
    created_at: str
    updated_at: str
    sent_at: str | None
    delivered_at: str | None
    read_at: str | None
    failed_at: str | None
    sender_id: str | None
    expires_at: str | None
    waiting_reason: str | None
    redacted: bool


class MessagePage(TypedDict):
    items: list[Message]
    next_cursor: str | None


class MessageEvent(TypedDict):
    at: str
    type: str
    from_status: MessageStatus | None
    to_status: MessageStatus | None
    actor: str
    details: dict[str, Any]


class ErrorBody(TypedDict):
    code: str
    message: str
    details: dict[str, Any]


class BatchResult(TypedDict):
    index: int
    message: Message | None
    error: ErrorBody | None


class Consent(TypedDict):
    phone: str
    status: ConsentStatus
    source: str | None
    granted_at: str | None
    revoked_at: str | None
    updated_at: str


class Erasure(TypedDict):
    messages_redacted: int
    messages_cancelled: int


class Quota(TypedDict):
    org_id: str
    limit: int
    used: int
    remaining: int
    window_seconds: int
    resets_at: str
    throttled: bool
    messages_per_second: float | None
    backend: Literal["redis", "database"]


class ErrorCodeCount(TypedDict):
    code: str
    title: str | None
    count: int


class DlqReport(TypedDict):
    total_failed: int
    by_channel: dict[str, int]
    top_error_codes: list[ErrorCodeCount]
    window_hours: int
    recommendations: list[str]


class Sender(TypedDict):
    id: str
    org_id: str
    name: str | None
    phone_number_id: str
    waba_id: str
    display_phone_number: str | None
    default: bool
    messages_per_second: float
    status: Literal["active", "paused"]
    paused_reasons: list[str]
    paused_at: str | None
    messaging_limit: str | None
    quality_rating: str | None
    token_last4: str | None
    created_at: str
    updated_at: str


class WebhookEndpoint(TypedDict):
    id: str
    url: str
    events: list[EventType] | None
    description: str | None
    enabled: bool
    disabled_reason: str | None
    created_at: str
    updated_at: str


class CreatedWebhookEndpoint(WebhookEndpoint):
    secret: str
    """`whsec_...`: shown at creation and rotation only."""


class Delivery(TypedDict):
    id: str
    event_id: str
    event_type: str
    message_id: str | None
    status: DeliveryStatus
    attempts: int
    last_status_code: int | None
    last_error: str | None
    next_attempt_at: str
    created_at: str
    delivered_at: str | None


class DeliveryPage(TypedDict):
    items: list[Delivery]
    next_cursor: str | None


class CallbackEvent(TypedDict):
    """The body of a callback request: what `verify_callback` returns. A message's events
    carry `{"message": Message, "sequence": int}` in `data`."""

    id: str
    type: EventType
    timestamp: str
    data: dict[str, Any]


def parse_time(value: str) -> datetime:
    """An API time (`2026-12-02T08:16:36.806973Z`) as an aware datetime."""
    return datetime.fromisoformat(value)


def format_time(value: datetime | str) -> str:
    """A time for a request: a string as given, or an aware datetime in RFC 3339. A naive
    datetime is refused here, as the API would refuse it (422), since its zone is unknown."""
    if isinstance(value, str):
        return value
    if value.tzinfo is None or value.utcoffset() is None:
        raise ValueError("a datetime sent to the API must carry its zone (tzinfo)")
    return value.isoformat()
