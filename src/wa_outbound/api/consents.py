"""Consent API: one record per organisation and phone number."""

from __future__ import annotations

from typing import Annotated, Any

from fastapi import APIRouter, Body, Path

from wa_outbound import phone
from wa_outbound.api import examples, responses
from wa_outbound.api.deps import EngineDep, PrincipalDep
from wa_outbound.api.models import Consent, ConsentUpdate
from wa_outbound.contacts import consents
from wa_outbound.errors import InvalidRequest

router = APIRouter(prefix="/v1/consents", tags=["consents"])
PhonePath = Annotated[str, Path(description="E.164, with or without +", examples=["+33612345678"])]


def _normalized(raw: str) -> str:
    try:
        return phone.normalize(raw)
    except ValueError as exc:
        raise InvalidRequest(f"phone: {exc}", field="phone") from exc


@router.put(
    "/{phone_number}",
    response_model=Consent,
    responses=responses.PUT_CONSENT,
    summary="Grant or revoke consent",
    description="Records whether the number agreed to receive the organisation's messages. "
    "Messages are queued only to a number whose consent is granted; a message already queued "
    "when consent is revoked is not sent (it ends `FAILED` with the code `consent_revoked`). "
    "`source` says where the choice was made and replaces the previous one (null when left "
    "out); `granted_at` keeps the moment of the first grant until a revocation.",
)
async def put_consent(
    phone_number: PhonePath,
    body: Annotated[ConsentUpdate, Body(openapi_examples=examples.CONSENT_UPDATE)],
    principal: PrincipalDep,
    engine: EngineDep,
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


@router.get(
    "/{phone_number}",
    response_model=Consent,
    responses=responses.GET_CONSENT,
    summary="Read a consent record",
    description="The number's consent record in the calling organisation; 404 if none was "
    "ever recorded.",
)
async def get_consent(
    phone_number: PhonePath, principal: PrincipalDep, engine: EngineDep
) -> dict[str, Any]:
    async with engine.connect() as conn:
        return await consents.get_consent(
            conn, org_id=principal.org_id, phone=_normalized(phone_number)
        )
