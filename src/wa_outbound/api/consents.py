"""Consent API: one record per organisation and phone number."""

from __future__ import annotations

from typing import Annotated, Any

from fastapi import APIRouter, Path

from wa_outbound import phone
from wa_outbound.api.deps import EngineDep, PrincipalDep
from wa_outbound.api.errors import ERROR_RESPONSES
from wa_outbound.api.models import Consent, ConsentUpdate
from wa_outbound.contacts import consents
from wa_outbound.errors import InvalidRequest

router = APIRouter(prefix="/v1/consents", tags=["consents"], responses=ERROR_RESPONSES)
PhonePath = Annotated[str, Path(description="E.164, with or without +", examples=["+33612345678"])]


def _normalized(raw: str) -> str:
    try:
        return phone.normalize(raw)
    except ValueError as exc:
        raise InvalidRequest(f"phone: {exc}", field="phone") from exc


@router.put("/{phone_number}", response_model=Consent, summary="Grant or revoke consent")
async def put_consent(
    phone_number: PhonePath, body: ConsentUpdate, principal: PrincipalDep, engine: EngineDep
) -> dict[str, Any]:
    async with engine.begin() as conn:
        return await consents.set_consent(
            conn,
            org_id=principal.org_id,
            phone=_normalized(phone_number),
            status=body.status,
            source=body.source,
            actor=principal.actor,
        )


@router.get("/{phone_number}", response_model=Consent, summary="Read a consent record")
async def get_consent(
    phone_number: PhonePath, principal: PrincipalDep, engine: EngineDep
) -> dict[str, Any]:
    async with engine.connect() as conn:
        return await consents.get_consent(
            conn, org_id=principal.org_id, phone=_normalized(phone_number)
        )
