"""Request and response bodies of the HTTP API (the OpenAPI schema is generated from these)."""

from __future__ import annotations

import re
import uuid
from datetime import UTC, datetime
from typing import Annotated, Any, Literal

from pydantic import (
    AfterValidator,
    AwareDatetime,
    BaseModel,
    BeforeValidator,
    ConfigDict,
    Field,
    StringConstraints,
    model_validator,
)
from pydantic.json_schema import SkipJsonSchema

from wa_outbound import phone, text
from wa_outbound.api.message_kinds import Interactive, Media

Phone = Annotated[str, Field(examples=["+33612345678"]), AfterValidator(phone.normalize)]
MetadataKey = Annotated[str, StringConstraints(min_length=1, max_length=40)]
MetadataValue = Annotated[str, StringConstraints(max_length=500)]
_RFC3339 = re.compile(r"\d{4}-\d{2}-\d{2}[Tt ]\d{2}:\d{2}")


def _rfc3339_text(value: Any) -> Any:
    """Only an RFC 3339 string is a time: pydantic would also read a number, or a string of
    digits, as Unix seconds, which the schema does not offer."""
    if isinstance(value, datetime) or (isinstance(value, str) and _RFC3339.match(value)):
        return value
    raise ValueError("must be an RFC 3339 time with its zone, e.g. 2026-12-01T09:00:00Z")


def _in_utc(value: datetime) -> datetime:
    try:
        return value.astimezone(UTC)
    except OverflowError:  # 9999-12-31T23:00:00-02:00 is in the year 10000 in UTC
        raise ValueError("is out of range once in UTC") from None


Time = Annotated[AwareDatetime, BeforeValidator(_rfc3339_text), AfterValidator(_in_utc)]
# JSON numbers and booleans are taken as they are: no `false` for 0, no "1" for 1.
QuotaCount = Annotated[int, Field(ge=0, le=2**53, strict=True)]
RatePerSecond = Annotated[float, Field(gt=0, le=1_000_000, strict=True)]


class Strict(BaseModel):
    model_config = ConfigDict(extra="forbid")


class TemplateParameter(BaseModel):
    """One parameter, e.g. `{"type": "text", "text": "42"}`; other Meta parameter shapes pass."""

    model_config = ConfigDict(extra="allow")
    type: Annotated[str, StringConstraints(min_length=1, max_length=32)]


class TemplateComponent(BaseModel):
    """Sent to Meta exactly as given: the keys left out stay out. Meta refuses `null`, so a
    `null` anywhere in a component is refused here, where the caller can still fix it."""

    model_config = ConfigDict(extra="allow")
    type: Literal["header", "body", "button", "footer"]
    # Optional, not nullable: the `None` default only stands for "left out".
    sub_type: Annotated[str, StringConstraints(max_length=32)] | SkipJsonSchema[None] = None
    index: (
        Annotated[int, Field(ge=0, le=9999, strict=True)]
        | Annotated[str, StringConstraints(max_length=4)]
        | SkipJsonSchema[None]
    ) = None
    parameters: Annotated[list[TemplateParameter], Field(max_length=100)] = []

    @model_validator(mode="before")
    @classmethod
    def _no_null(cls, data: Any) -> Any:
        where = _a_null(data)
        if where is not None:
            raise ValueError(f"{where or 'the component'} is null: leave the key out instead")
        return data


def _a_null(value: Any) -> str | None:
    """The dotted path to a `null` in decoded JSON ("" for `value` itself), or None."""
    for path, node in text.nodes(value):
        if node is None:
            return ".".join(str(part) for part in path)
    return None


class Template(Strict):
    name: Annotated[str, StringConstraints(pattern=r"^[a-z0-9_]{1,512}$")] = Field(
        examples=["order_update"]
    )
    language: Annotated[str, StringConstraints(pattern=r"^[a-z]{2,3}(_[A-Za-z]{2,4})?$")] = Field(
        examples=["en_US"]
    )
    components: Annotated[list[TemplateComponent], Field(max_length=20)] = []


class Text(Strict):
    body: Annotated[str, StringConstraints(min_length=1, max_length=4096)]
    preview_url: Annotated[bool, Field(strict=True)] = False


class MessageCreate(Strict):
    """A template message, or a session message (`text`, `media` or `interactive`: only inside
    the recipient's 24-hour service window with that sender)."""

    model_config = ConfigDict(
        extra="forbid",
        populate_by_name=False,
        json_schema_extra={
            "examples": [
                {
                    "to": "+33612345678",
                    "template": {
                        "name": "order_update",
                        "language": "en_US",
                        "components": [
                            {"type": "body", "parameters": [{"type": "text", "text": "42"}]}
                        ],
                    },
                    "metadata": {"order_id": "42"},
                }
            ]
        },
    )
    to: Phone
    template: Template | None = None
    text: Text | None = None
    media: Media | None = None
    interactive: Interactive | None = None
    reply_to: Annotated[str, StringConstraints(min_length=1, max_length=128)] | None = Field(
        None,
        description="The message this one replies to: the wamid of an inbound message, or the "
        "`id` of a `message.received` event. Sent to Meta as `context.message_id`.",
    )
    metadata: Annotated[dict[MetadataKey, MetadataValue], Field(max_length=20)] = {}
    send_after: Time | None = None
    expires_at: Time | None = Field(
        None,
        description="Still unsent at this time, the message ends FAILED with the code "
        "`expired` (not dead-lettered). After `send_after`, and in the future.",
    )
    from_: Annotated[
        str | None,
        Field(
            alias="from",
            min_length=1,
            max_length=64,
            description="The sender to send from: its id, or its display_phone_number. Without "
            "it, the organisation's default sender (or, for an organisation with no sender of "
            "its own, the deployment's shared sender).",
        ),
    ] = None

    @model_validator(mode="after")
    def _exactly_one_content(self) -> MessageCreate:
        given = [self.template, self.text, self.media, self.interactive]
        if sum(part is not None for part in given) != 1:
            raise ValueError("exactly one of 'template', 'text', 'media' or 'interactive'")
        if self.expires_at is not None:
            if self.expires_at <= datetime.now(UTC):
                raise ValueError("'expires_at' must be in the future")
            if self.send_after is not None and self.expires_at <= self.send_after:
                raise ValueError("'expires_at' must be after 'send_after'")
        return self


class BatchItem(MessageCreate):
    idempotency_key: Annotated[str, StringConstraints(min_length=1, max_length=255)] | None = None


class BatchRequest(Strict):
    messages: Annotated[
        list[dict[str, Any]],
        Field(
            min_length=1,
            max_length=1000,
            description="Up to 1000 message bodies as for POST /v1/messages, each with an "
            "optional `idempotency_key`. Each is validated on its own: invalid items get an "
            "error result and the valid ones are queued.",
        ),
    ]


class ErrorInfo(BaseModel):
    code: str
    title: str | None = None
    message: str | None = None
    retryable: bool
    details: str | None = None


class Message(BaseModel):
    id: str
    org_id: str
    channel: Literal["WHATSAPP"]
    to: str | None = Field(description="The recipient; null once the contact was erased.")
    kind: Literal["template", "text", "media", "interactive"]
    template: dict[str, Any] | None
    text: dict[str, Any] | None
    media: dict[str, Any] | None = None
    interactive: dict[str, Any] | None = None
    reply_to: str | None = Field(None, description="The wamid of the message it replies to.")
    metadata: dict[str, str]
    status: Literal[
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
    attempts: int
    max_attempts: int
    next_attempt_at: datetime
    provider_message_id: str | None
    error: ErrorInfo | None
    dead_lettered: bool
    created_at: datetime
    updated_at: datetime
    sent_at: datetime | None
    delivered_at: datetime | None
    read_at: datetime | None
    failed_at: datetime | None
    sender_id: str | None = Field(
        description="The sender it goes from; null for the deployment's shared sender."
    )
    expires_at: datetime | None = Field(
        default=None, description="When it fails with the code `expired` if still unsent."
    )
    waiting_reason: (
        Literal[
            "quota",
            "throughput",
            "pair_interval",
            "messaging_limit",
            "sender_paused",
            "template_paused",
            "send_unknown",
        ]
        | None
    ) = Field(description="Why a QUEUED or RETRYING message is waiting, if a limit holds it.")
    redacted: bool = Field(
        default=False,
        description="The contact was erased (`DELETE /v1/contacts/{phone}`): `to` is null and "
        "the content's texts are `redacted:` tokens.",
    )


class ErrorBody(BaseModel):
    code: str = Field(examples=["validation_error"])
    message: str
    details: dict[str, Any] = {}


class ErrorResponse(BaseModel):
    error: ErrorBody


class BatchResult(BaseModel):
    index: int
    message: Message | None = None
    error: ErrorBody | None = None


class BatchResponse(BaseModel):
    results: list[BatchResult]


class MessagePage(BaseModel):
    items: list[Message]
    next_cursor: str | None


class MessageEvent(BaseModel):
    at: datetime
    type: str
    from_status: str | None
    to_status: str | None
    actor: str
    details: dict[str, Any]


class MessageEvents(BaseModel):
    items: list[MessageEvent]


class OrgCreate(Strict):
    id: Annotated[str, StringConstraints(pattern=r"^[A-Za-z0-9_-]{1,64}$")] | None = None
    name: Annotated[str, StringConstraints(min_length=1, max_length=200)]
    daily_quota: QuotaCount | None = None
    messages_per_second: RatePerSecond | None = None


class Org(BaseModel):
    id: str
    name: str
    daily_quota: int
    messages_per_second: float | None = Field(
        description="The org's own per-second cap; null: none (its senders' throughput paces it)"
    )
    created_at: datetime


class ApiKeyCreate(Strict):
    name: Annotated[str, StringConstraints(max_length=200)] | None = None


class ApiKeyCreated(BaseModel):
    id: str
    prefix: str
    api_key: str = Field(description="The plain key. Shown only in this response; store it.")


class ReplayRequest(Strict):
    ids: Annotated[list[uuid.UUID], Field(min_length=1, max_length=1000)] | None = None
    error_code: Annotated[str, StringConstraints(min_length=1, max_length=64)] | None = None

    @model_validator(mode="after")
    def _some_selector(self) -> ReplayRequest:
        if self.ids is None and self.error_code is None:
            raise ValueError("give 'ids', 'error_code', or both")
        return self


class Replayed(BaseModel):
    replayed: int


class ErrorCodeCount(BaseModel):
    code: str
    title: str | None
    count: int


class DlqReport(BaseModel):
    total_failed: int
    by_channel: dict[str, int]
    top_error_codes: list[ErrorCodeCount]
    window_hours: int
    recommendations: list[str]


class Quota(BaseModel):
    org_id: str
    limit: int = Field(description="Messages allowed per window")
    used: int = Field(description="Messages granted in the current window")
    remaining: int
    window_seconds: int
    resets_at: datetime = Field(
        description="End of the current window; with nothing sent yet in a window, the end "
        "of a window opened now"
    )
    throttled: bool = Field(description="The quota is used up until `resets_at`")
    messages_per_second: float | None = Field(
        description="The org's own per-second cap; null: none (its senders' throughput paces it)"
    )
    backend: Literal["redis", "database"] = Field(description="Which backend decides now")


class QuotaUpdate(Strict):
    """Only the fields given change; they apply to the very next decision."""

    limit: QuotaCount | None = None
    window_seconds: Annotated[int, Field(ge=1, le=31_622_400, strict=True)] | None = None
    messages_per_second: RatePerSecond | None = None
