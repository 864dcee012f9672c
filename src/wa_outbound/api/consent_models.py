"""The consent API's bodies: a change of the record, the record, and its history."""

from __future__ import annotations

from datetime import datetime
from typing import Annotated, Any, Literal

from pydantic import BaseModel, Field, StringConstraints, field_validator, model_validator
from pydantic.json_schema import SkipJsonSchema

from wa_outbound.api.models import Strict

Status = Literal["granted", "revoked"] | None


class ConsentUpdate(Strict):
    """The status, the marketing preference, or both; what is left out stays as it is."""

    status: Literal["granted", "revoked"] | SkipJsonSchema[None] = None
    source: Annotated[str, StringConstraints(max_length=200)] | None = None
    marketing_opt_out: Annotated[bool, Field(strict=True)] | SkipJsonSchema[None] = None

    @field_validator("status", "marketing_opt_out", mode="before")
    @classmethod
    def _not_null(cls, value: Any) -> Any:
        if value is None:  # left out is the default; an explicit null is not a value
            raise ValueError("must not be null; leave the field out to keep it as it is")
        return value

    @model_validator(mode="after")
    def _something_to_set(self) -> ConsentUpdate:
        if self.status is None and self.marketing_opt_out is None:
            raise ValueError("give status, marketing_opt_out, or both")
        return self


class Consent(BaseModel):
    phone: str
    status: Literal["granted", "revoked"] | None
    source: str | None
    marketing_opt_out: bool
    granted_at: datetime | None
    revoked_at: datetime | None
    updated_at: datetime


class ConsentEvent(BaseModel):
    """One change of the record: what it became, what it was, and who or what changed it."""

    at: datetime
    status: Status
    from_status: Status
    marketing_opt_out: bool
    from_marketing_opt_out: bool | None
    source: str | None
    actor: str


class ConsentEvents(BaseModel):
    items: list[ConsentEvent]
