"""Rate limits API: an org reads its WhatsApp quota; the admin changes it."""

from __future__ import annotations

from typing import Annotated, Any

from fastapi import APIRouter, Header

from wa_outbound.api.deps import AdminDep, LimiterDep, PrincipalDep
from wa_outbound.api.errors import ERROR_RESPONSES
from wa_outbound.api.models import Quota, QuotaUpdate

router = APIRouter(
    prefix="/v1/rate-limits/whatsapp", tags=["rate limits"], responses=ERROR_RESPONSES
)

OrgHeader = Annotated[
    str,
    Header(
        alias="X-Org-Id",
        min_length=1,
        max_length=64,
        description="The organisation whose quota changes.",
    ),
]


@router.get("/quota", response_model=Quota, summary="The calling organisation's quota")
async def get_quota(principal: PrincipalDep, limiter: LimiterDep) -> dict[str, Any]:
    return await limiter.quota(principal.org_id)


@router.put(
    "/quota",
    response_model=Quota,
    summary="Change an organisation's quota and throughput cap (admin)",
)
async def put_quota(
    body: QuotaUpdate, org_id: OrgHeader, actor: AdminDep, limiter: LimiterDep
) -> dict[str, Any]:
    return await limiter.configure(
        org_id,
        limit=body.limit,
        window_seconds=body.window_seconds,
        messages_per_second=body.messages_per_second,
        actor=actor,
    )
