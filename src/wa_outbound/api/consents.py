"""Consent API: one record per organisation and phone number, and its history (org key, or
admin + `X-Org-Id`)."""

from __future__ import annotations

from typing import Annotated, Any

from fastapi import APIRouter, Body, Path

from wa_outbound import phone
from wa_outbound.api import examples, responses
from wa_outbound.api.consent_models import Consent, ConsentEvents, ConsentUpdate
from wa_outbound.api.deps import CallerDep, EngineDep
from wa_outbound.api.openapi import errors
from wa_outbound.api.template_answers import CONSENT_EVENTS, NO_HISTORY
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
    summary="Grant or revoke consent, or set the marketing preference",
    description="Records whether the number agreed to receive the organisation's messages. "
    "Messages are queued only to a number whose consent is granted; a message already queued "
    "when consent is revoked is not sent (it ends `FAILED` with the code `consent_revoked`). "
    "`source` says where the choice was made and replaces the previous one (null when left "
    "out); `granted_at` keeps the moment of the first grant until a revocation. "
    "`marketing_opt_out: true` refuses `MARKETING` templates to the number (422 "
    "`marketing_opted_out`; one already waiting fails); left out, it stays as it is. Either "
    "field may be given alone; a preference for a number with no consent gives `status: null`.",
)
async def put_consent(
    phone_number: PhonePath,
    body: Annotated[ConsentUpdate, Body(openapi_examples=examples.CONSENT_UPDATE)],
    caller: CallerDep,
    engine: EngineDep,
) -> dict[str, Any]:
    async with engine.begin() as conn:
        return await consents.set_consent(
            conn,
            org_id=caller.org_id,
            phone=_normalized(phone_number),
            status=body.status,
            source=body.source,
            actor=caller.actor,
            marketing_opt_out=body.marketing_opt_out,
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
    phone_number: PhonePath, caller: CallerDep, engine: EngineDep
) -> dict[str, Any]:
    async with engine.connect() as conn:
        return await consents.get_consent(
            conn, org_id=caller.org_id, phone=_normalized(phone_number)
        )


@router.get(
    "/{phone_number}/events",
    response_model=ConsentEvents,
    responses={**CONSENT_EVENTS, **errors(NO_HISTORY, responses.BAD_PHONE, *responses.ORG_CALL)},
    summary="A consent record's history",
    description="Every change of the number's record, oldest first: the API's, Meta's "
    "(`user_preferences`, error 131050) and the user's own keywords (`source` "
    "`keyword:STOP`, ...).",
)
async def get_consent_events(
    phone_number: PhonePath, caller: CallerDep, engine: EngineDep
) -> dict[str, Any]:
    async with engine.connect() as conn:
        items = await consents.history(conn, org_id=caller.org_id, phone=_normalized(phone_number))
    return {"items": items}
