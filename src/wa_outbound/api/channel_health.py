"""`GET /v1/health/channels`: the calling organisation's view of its sending channel."""

from __future__ import annotations

from typing import Any

from fastapi import APIRouter
from pydantic import BaseModel, Field

from wa_outbound.api import responses
from wa_outbound.api.deps import EngineDep, PrincipalDep
from wa_outbound.db.types import utcnow
from wa_outbound.monitoring import channel_health

router = APIRouter(prefix="/v1/health", tags=["health"])


class ChannelHealth(BaseModel):
    queue_depth: int = Field(description="Messages QUEUED, RETRYING or SENDING")
    dlq_size: int = Field(description="Messages in the dead-letter queue")
    sent_1h: int = Field(description="Messages Meta accepted in the last hour")
    failed_1h: int = Field(
        description="Messages that failed in the last hour (revoked consents excepted)"
    )
    failure_rate_1h: float = Field(
        description="failed ÷ (accepted or failed) in the last hour; 0 with no traffic"
    )
    p95_send_seconds: float | None = Field(
        description="95th percentile, over the last hour's accepted messages, of the time from "
        "being due (queued, or scheduled/backoff/quota wait over) to Meta's acceptance; "
        "null with no acceptance in the hour"
    )


class ChannelsHealth(BaseModel):
    channels: dict[str, ChannelHealth]


@router.get(
    "/channels",
    response_model=ChannelsHealth,
    responses=responses.CHANNELS,
    summary="Queue, dead-letter queue and last hour's sending figures, per channel",
    description="The calling organisation's figures, computed from the database on each call: "
    "poll it for a dashboard rather than calling it per message.",
)
async def channels(principal: PrincipalDep, engine: EngineDep) -> dict[str, Any]:
    async with engine.connect() as conn:
        figures = await channel_health.channel_health(conn, org_id=principal.org_id, now=utcnow())
    return {"channels": figures}
