"""Request and response bodies of the senders API."""

from __future__ import annotations

from datetime import datetime
from typing import Annotated, Literal

from pydantic import BaseModel, ConfigDict, Field, StringConstraints

MetaId = Annotated[
    str,
    StringConstraints(min_length=1, max_length=64, pattern=r"^[A-Za-z0-9_-]+$"),
    Field(examples=["106540352242922"]),
]
Token = Annotated[str, StringConstraints(min_length=8, max_length=4096, pattern=r"^\S+$")]
Name = Annotated[str, StringConstraints(min_length=1, max_length=200)]
Throughput = Annotated[float, Field(gt=0, le=1000, strict=False)]
Tier = Literal["TIER_250", "TIER_2K", "TIER_10K", "TIER_100K", "TIER_UNLIMITED"]
PauseReason = Literal["manual", "token_invalid", "account_restricted", "payment_issue"]


class SenderCreate(BaseModel):
    model_config = ConfigDict(
        extra="forbid",
        json_schema_extra={
            "examples": [
                {
                    "phone_number_id": "106540352242922",
                    "waba_id": "102290129340398",
                    "access_token": "EAAG...",
                    "name": "Support line",
                }
            ]
        },
    )
    phone_number_id: MetaId
    waba_id: MetaId
    access_token: Token
    name: Name | None = None
    messages_per_second: Throughput = Field(
        80.0, description="Meta's throughput for the number: 80 by default, 1,000 upgraded."
    )
    default: Annotated[bool, Field(strict=True)] = False


class SenderUpdate(BaseModel):
    model_config = ConfigDict(extra="forbid")
    access_token: Token | None = None
    name: Name | None = None
    messages_per_second: Throughput | None = None
    default: Annotated[bool, Field(strict=True)] | None = None
    paused: Annotated[bool, Field(strict=True)] | None = None
    messaging_limit: Tier | None = Field(
        None, description="The WABA's messaging limit; the admin token only."
    )


class Sender(BaseModel):
    id: str
    org_id: str
    name: str | None
    phone_number_id: str
    waba_id: str
    display_phone_number: str | None
    default: bool
    messages_per_second: float
    status: Literal["active", "paused"]
    paused_reasons: list[PauseReason]
    paused_at: datetime | None
    messaging_limit: Tier | None
    quality_rating: Literal["GREEN", "YELLOW", "RED"] | None
    token_last4: str | None
    created_at: datetime
    updated_at: datetime


class SenderList(BaseModel):
    items: list[Sender]
