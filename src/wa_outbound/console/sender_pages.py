"""Senders: the organisation's numbers with their health and limits; pause, resume, and a new
access token, through senders.service as PATCH /v1/senders/{id} does (a new token is verified
with Meta first, and clears the `token_invalid` pause)."""

from __future__ import annotations

import uuid

from fastapi import APIRouter, Request, Response

from wa_outbound.console.identity import OrgOperatorDep
from wa_outbound.console.web import ConsoleRoute, Refused, first, form, page, redirect
from wa_outbound.db.types import utcnow
from wa_outbound.senders import service, store
from wa_outbound.senders.verify import verify_number

router = APIRouter(route_class=ConsoleRoute)
DONE = {"paused": "Sender paused.", "resumed": "Sender resumed.", "token": "New token saved."}


@router.get("/senders")
async def senders(request: Request, operator: OrgOperatorDep, done: str = "") -> Response:
    async with request.state.engine.connect() as conn:
        items = await store.of_org(conn, operator.org_id)
        tiers = await store.messaging_limits(conn, {i.waba_id for i in items if i.waba_id})
    return page(
        request,
        "senders.html",
        operator=operator,
        nav="senders",
        items=[service.view(i, tiers.get(i.waba_id or "")) for i in items],
        done=DONE.get(done),
    )


async def _change(
    request: Request, operator: OrgOperatorDep, sender_id: uuid.UUID, changes: dict[str, object]
) -> None:
    settings = request.state.settings
    async with request.state.engine.connect() as conn:
        current = await service.owned(conn, operator.org_id, sender_id)
    info = None
    if "access_token" in changes:
        info = await verify_number(
            settings,
            phone_number_id=current.phone_number_id,
            waba_id=current.waba_id or "",
            token=str(changes["access_token"]),
        )
    async with request.state.engine.begin() as conn:
        await service.update(
            conn,
            operator.org_id,
            sender_id,
            changes,
            encrypt=request.app.state.keyring.encrypt,
            info=info,
            now=utcnow(),
            actor=operator.actor,
        )
    request.state.wake_dispatcher()


@router.post("/senders/{sender_id}/pause")
async def pause(request: Request, operator: OrgOperatorDep, sender_id: uuid.UUID) -> Response:
    await form(request, csrf_token=operator.csrf_token)
    await _change(request, operator, sender_id, {"paused": True})
    return redirect(request, "/senders?done=paused")


@router.post("/senders/{sender_id}/resume")
async def resume(request: Request, operator: OrgOperatorDep, sender_id: uuid.UUID) -> Response:
    await form(request, csrf_token=operator.csrf_token)
    await _change(request, operator, sender_id, {"paused": False})
    return redirect(request, "/senders?done=resumed")


@router.post("/senders/{sender_id}/token")
async def new_token(request: Request, operator: OrgOperatorDep, sender_id: uuid.UUID) -> Response:
    fields = await form(request, csrf_token=operator.csrf_token)
    token = first(fields, "access_token")
    if not token or len(token) > 1024:
        raise Refused(422, "Paste the sender's new access token.")
    await _change(request, operator, sender_id, {"access_token": token})
    return redirect(request, "/senders?done=token")
