"""Rate limits API: an org reads its WhatsApp quota; the admin changes it."""

from __future__ import annotations

from typing import Annotated, Any

from fastapi import APIRouter, Body, Header

from wa_outbound.api import examples, responses
from wa_outbound.api.deps import AdminDep, LimiterDep, PrincipalDep
from wa_outbound.api.models import Quota, QuotaUpdate

router = APIRouter(prefix="/v1/rate-limits/whatsapp", tags=["rate limits"])

OrgHeader = Annotated[
    str,
    Header(
        alias="X-Org-Id",
        min_length=1,
        max_length=64,
        description="The organisation whose quota changes.",
        examples=["acme"],
    ),
]


@router.get(
    "/quota",
    response_model=Quota,
    responses=responses.GET_QUOTA,
    summary="The calling organisation's quota",
    description="How many messages the organisation may still send in the current window, "
    "when the window ends, and its throughput cap. A message the limits hold back stays "
    "queued as it is until they let it through; it neither fails nor uses up an attempt.",
)
async def get_quota(principal: PrincipalDep, limiter: LimiterDep) -> dict[str, Any]:
    return await limiter.quota(principal.org_id)


@router.put(
    "/quota",
    response_model=Quota,
    responses=responses.PUT_QUOTA,
    summary="Change an organisation's quota and throughput cap (admin)",
    description="With the admin token, for the organisation named in `X-Org-Id`. Only the "
    "fields given change; the change applies to the very next sending decision.",
)
async def put_quota(
    body: Annotated[QuotaUpdate, Body(openapi_examples=examples.QUOTA_UPDATE)],
    org_id: OrgHeader,
    actor: AdminDep,
    limiter: LimiterDep,
) -> dict[str, Any]:
    return await limiter.configure(
        org_id,
        limit=body.limit,
        window_seconds=body.window_seconds,
        messages_per_second=body.messages_per_second,
        actor=actor,
    )
