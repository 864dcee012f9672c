"""Contacts API: erasing what an organisation keeps about one phone number."""

from __future__ import annotations

from typing import Annotated, Any

from fastapi import APIRouter, Path
from pydantic import BaseModel, Field

from wa_outbound import phone
from wa_outbound.api.deps import CallerDep, EngineDep, SettingsDep
from wa_outbound.api.openapi import Answer, errors, example, success
from wa_outbound.api.responses import API_KEY, BAD_PHONE, ORG_NOT_FOUND, UNAVAILABLE
from wa_outbound.errors import InvalidRequest
from wa_outbound.lifecycle.erasure import erase_contact
from wa_outbound.lifecycle.keys import erasure_key

router = APIRouter(prefix="/v1/contacts", tags=["contacts"])
PhonePath = Annotated[str, Path(description="E.164, with or without +", examples=["+33612345678"])]


class Erasure(BaseModel):
    messages_redacted: int = Field(
        description="The organisation's messages to the number, now redacted (`to` null)."
    )
    messages_cancelled: int = Field(
        description="Of those, the ones still waiting to be sent, now `CANCELLED`."
    )


ERASE_CONTACT: dict[int | str, Any] = {
    200: success(
        "Erased: how many messages were redacted, and how many of them cancelled",
        erased=example(None, {"messages_redacted": 12, "messages_cancelled": 1}),
    ),
    **errors(
        BAD_PHONE,
        Answer(
            InvalidRequest,
            "the admin token without `X-Org-Id`",
            "X-Org-Id is required with the admin token",
            {"field": "X-Org-Id"},
        ),
        ORG_NOT_FOUND,
        API_KEY,
        UNAVAILABLE,
    ),
}


@router.delete(
    "/{phone_number}",
    response_model=Erasure,
    responses=ERASE_CONTACT,
    summary="Erase a contact",
    description="Erases what the calling organisation keeps about the number, in one "
    "transaction: its consent record and history are deleted, its messages still waiting are "
    "cancelled, pending callback deliveries about them are dropped, and the number and the "
    "content sent to or received from it are replaced by `redacted:` tokens wherever they are "
    "kept (messages, whose `to` becomes null with `redacted: true`; their events; callback "
    "events; stored webhook bodies; service windows; the limiter's records). Other "
    "organisations' data about the same number is untouched. Erasing a number the "
    "organisation never knew answers 200 with zeros. With the admin token, `X-Org-Id` names "
    "the organisation.",
)
async def erase(
    phone_number: PhonePath, caller: CallerDep, engine: EngineDep, settings: SettingsDep
) -> dict[str, Any]:
    try:
        number = phone.normalize(phone_number)
    except ValueError as exc:
        raise InvalidRequest(f"phone: {exc}", field="phone") from exc
    async with engine.begin() as conn:
        erased = await erase_contact(
            conn,
            org_id=caller.org_id,
            phone=number,
            key=erasure_key(settings),
            shared_numbers={settings.shared_phone_number_id},
            actor=caller.actor,
        )
    return {
        "messages_redacted": erased.messages_redacted,
        "messages_cancelled": erased.messages_cancelled,
    }
