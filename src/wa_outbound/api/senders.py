"""Senders API: an organisation's own WhatsApp numbers (org key, or admin + `X-Org-Id`)."""

from __future__ import annotations

import uuid
from typing import Annotated, Any

from fastapi import APIRouter, Body, Path, Query, Request, Response

from wa_outbound.api import sender_responses as answers
from wa_outbound.api.deps import CallerDep, EngineDep, SettingsDep, TemplatesDep
from wa_outbound.api.examples import SENDER_ID
from wa_outbound.api.sender_models import Sender, SenderCreate, SenderList, SenderUpdate
from wa_outbound.db.types import utcnow
from wa_outbound.errors import AdminOnly, SenderExists
from wa_outbound.senders import service, store
from wa_outbound.senders.verify import verify_number

router = APIRouter(prefix="/v1/senders", tags=["senders"])
SenderId = Annotated[
    uuid.UUID,
    Path(description="The sender's id, as creating it returned it.", examples=[SENDER_ID]),
]


def _encrypt(request: Request) -> service.Encrypt:
    """Tokens are sealed by the app's keyring (wa_outbound.crypto) before they are stored."""
    encrypt: service.Encrypt = request.app.state.keyring.encrypt
    return encrypt


async def _view(engine: Any, item: store.Sender) -> dict[str, Any]:
    async with engine.connect() as conn:
        tier = await store.messaging_limit(conn, item.waba_id)
    return service.view(item, tier)


@router.post(
    "",
    status_code=201,
    response_model=Sender,
    responses=answers.CREATE,
    summary="Add a sender",
    description="Registers one of the organisation's WhatsApp business numbers with its access "
    "token. Meta is asked first, with that token, for the number "
    "(`display_phone_number`, `quality_rating`, the messaging limit) and for the WABA's list of "
    "numbers, which must hold it; if Meta does not confirm it, nothing is stored. The "
    "organisation's first sender is its default. The token is stored encrypted and never shown "
    "again (`token_last4` only).",
)
async def create_sender(
    body: Annotated[SenderCreate, Body()],
    request: Request,
    caller: CallerDep,
    engine: EngineDep,
    settings: SettingsDep,
    templates: TemplatesDep,
) -> dict[str, Any]:
    shared = settings.has_shared_sender and body.phone_number_id == settings.shared_phone_number_id
    async with engine.connect() as conn:
        if shared or await service.registered(conn, body.phone_number_id):
            raise SenderExists(phone_number_id=body.phone_number_id)
    info = await verify_number(
        settings,
        phone_number_id=body.phone_number_id,
        waba_id=body.waba_id,
        token=body.access_token,
    )
    new = service.NewSender(
        phone_number_id=body.phone_number_id,
        waba_id=body.waba_id,
        access_token=body.access_token,
        name=body.name,
        messages_per_second=body.messages_per_second,
        default=body.default,
    )
    async with engine.begin() as conn:
        created = await service.create(
            conn,
            caller.org_id,
            new,
            info,
            encrypt=_encrypt(request),
            now=utcnow(),
            actor=caller.actor,
        )
    # A WABA new to the service: its template registry is read in the background.
    templates.request(body.waba_id, unless_synced=True)
    return await _view(engine, created)


@router.get(
    "",
    response_model=SenderList,
    responses=answers.LIST,
    summary="List the organisation's senders",
    description="The organisation's senders, oldest first. The deployment's shared sender is "
    "not listed.",
)
async def list_senders(caller: CallerDep, engine: EngineDep) -> dict[str, Any]:
    async with engine.connect() as conn:
        items = await store.of_org(conn, caller.org_id)
        tiers = await store.messaging_limits(conn, {i.waba_id for i in items if i.waba_id})
    return {"items": [service.view(i, tiers.get(i.waba_id or "")) for i in items]}


@router.get(
    "/{sender_id}",
    response_model=Sender,
    responses=answers.GET,
    summary="Read a sender",
    description="One of the organisation's senders; another organisation's id answers 404.",
)
async def get_sender(sender_id: SenderId, caller: CallerDep, engine: EngineDep) -> dict[str, Any]:
    async with engine.connect() as conn:
        item = await service.owned(conn, caller.org_id, sender_id)
    return await _view(engine, item)


@router.patch(
    "/{sender_id}",
    response_model=Sender,
    responses=answers.UPDATE,
    summary="Change a sender",
    description="Only the fields given change. A new `access_token` is verified with Meta "
    "first, as at creation, and clears the `token_invalid` pause. `paused: true` pauses the "
    "sender (`manual`); `paused: false` clears every pause reason, and its waiting messages go "
    "out again. `default: true` makes it the organisation's default; `default: false` on the "
    "default answers 422 `default_required`. `messaging_limit` (the WABA's) is the admin "
    "token's only.",
)
async def update_sender(
    sender_id: SenderId,
    body: Annotated[SenderUpdate, Body()],
    request: Request,
    caller: CallerDep,
    engine: EngineDep,
    settings: SettingsDep,
) -> dict[str, Any]:
    changes = body.model_dump(exclude_unset=True)
    if "messaging_limit" in changes and not caller.is_admin:
        raise AdminOnly("Only the admin token may set messaging_limit.")
    for field in ("access_token", "messages_per_second", "default", "paused"):
        if changes.get(field, False) is None:
            del changes[field]  # null leaves the field as it is (`name: null` clears the name)
    async with engine.connect() as conn:
        current = await service.owned(conn, caller.org_id, sender_id)
    info = None
    if "access_token" in changes:
        info = await verify_number(
            settings,
            phone_number_id=current.phone_number_id,
            waba_id=current.waba_id or "",
            token=changes["access_token"],
        )
    async with engine.begin() as conn:
        updated = await service.update(
            conn,
            caller.org_id,
            sender_id,
            changes,
            encrypt=_encrypt(request),
            info=info,
            now=utcnow(),
            actor=caller.actor,
        )
    request.state.wake_dispatcher()
    return await _view(engine, updated)


@router.delete(
    "/{sender_id}",
    status_code=204,
    responses=answers.DELETE,
    summary="Delete a sender",
    description="Deletes the sender. While messages wait on it, 409 `sender_in_use`, unless "
    "`cancel_waiting=true`, which cancels them in the same transaction. The default sender "
    "cannot be deleted while the organisation has others (409 `sender_is_default`). A message "
    "being sent at that moment finishes, and statuses of its messages still apply.",
)
async def delete_sender(
    sender_id: SenderId,
    caller: CallerDep,
    engine: EngineDep,
    cancel_waiting: Annotated[bool, Query()] = False,
) -> Response:
    async with engine.begin() as conn:
        await service.delete(
            conn,
            caller.org_id,
            sender_id,
            cancel_waiting=cancel_waiting,
            now=utcnow(),
            actor=caller.actor,
        )
    return Response(status_code=204)
