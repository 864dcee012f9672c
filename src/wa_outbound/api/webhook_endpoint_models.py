"""Request and response bodies of the webhook endpoints API."""

from __future__ import annotations

from datetime import UTC, datetime
from typing import Annotated, Literal

from pydantic import (
    AfterValidator,
    AwareDatetime,
    BaseModel,
    ConfigDict,
    Field,
    StringConstraints,
    WithJsonSchema,
)

from wa_outbound.events.outgoing import EVENT_TYPES

Url = Annotated[
    str,
    StringConstraints(min_length=1, max_length=2048, pattern=r"^\S+$"),
    Field(
        description="Where events are posted: `https://`, no `user:password@`, on a host whose "
        "every address is public (`WA_CALLBACK_ALLOW_INSECURE=true` lifts this in development).",
        examples=["https://app.example.com/hooks/whatsapp"],
    ),
]


def _known(value: str) -> str:
    if value not in EVENT_TYPES:
        raise ValueError(f"unknown event type; the types are {', '.join(EVENT_TYPES)}")
    return value


EventType = Annotated[
    str,
    AfterValidator(_known),
    WithJsonSchema({"type": "string", "enum": list(EVENT_TYPES)}),
]
Events = Annotated[
    list[EventType] | None,
    Field(
        max_length=50,
        description="The event types it is sent; null (or absent at creation): every type, "
        "types added later included.",
    ),
]
Description = Annotated[str, StringConstraints(max_length=500)]


def _in_utc(value: datetime) -> datetime:
    try:
        return value.astimezone(UTC)
    except OverflowError:  # 0001-01-01T00:00:00+01:00 is before the first UTC time
        raise ValueError("the time is out of range in UTC") from None


UtcTime = Annotated[AwareDatetime, AfterValidator(_in_utc)]
DisabledReason = Literal["manual", "gone", "failing"]
DeliveryStatus = Literal["pending", "succeeded", "failed"]


class EndpointCreate(BaseModel):
    model_config = ConfigDict(
        extra="forbid",
        json_schema_extra={
            "examples": [
                {
                    "url": "https://app.example.com/hooks/whatsapp",
                    "events": ["message.delivered", "message.failed", "message.received"],
                    "description": "Order notifications",
                }
            ]
        },
    )
    url: Url
    events: Events = None
    description: Description | None = None


class EndpointUpdate(BaseModel):
    model_config = ConfigDict(extra="forbid")
    url: Url | None = None
    events: Events = None
    description: Description | None = None
    enabled: Annotated[bool, Field(strict=True)] | None = None


class Endpoint(BaseModel):
    id: str
    url: str
    events: list[str] | None
    description: str | None
    enabled: bool
    disabled_reason: DisabledReason | None
    created_at: datetime
    updated_at: datetime


class CreatedEndpoint(Endpoint):
    secret: str = Field(
        description="`whsec_` and the base64 of 32 random bytes: shown here and at rotation only."
    )


class EndpointList(BaseModel):
    items: list[Endpoint]


class Secret(BaseModel):
    secret: str


class Delivery(BaseModel):
    id: str
    event_id: str = Field(description="The event's id: the `webhook-id` header of every attempt.")
    event_type: str
    message_id: str | None
    status: DeliveryStatus
    attempts: int
    last_status_code: int | None
    last_error: str | None
    next_attempt_at: datetime
    created_at: datetime
    delivered_at: datetime | None


class DeliveryPage(BaseModel):
    items: list[Delivery]
    next_cursor: str | None


class Recover(BaseModel):
    model_config = ConfigDict(
        extra="forbid",
        json_schema_extra={"examples": [{"since": "2026-12-01T00:00:00Z"}]},
    )
    since: UtcTime = Field(description="Failed deliveries created at or after this time.")


class Requeued(BaseModel):
    requeued: int
