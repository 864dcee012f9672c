"""Messages: the list (by status, recipient, sender) and one message with its whole timeline."""

from __future__ import annotations

import uuid
from typing import Any

from fastapi import APIRouter, Request, Response

from wa_outbound import phone
from wa_outbound.console.identity import OrgOperatorDep
from wa_outbound.console.web import ConsoleRoute, form, page, redirect
from wa_outbound.db.schema import SHARED_SENDER_ID
from wa_outbound.outbox import messages
from wa_outbound.senders import store
from wa_outbound.status import CANCELLABLE, Status

router = APIRouter(route_class=ConsoleRoute)
PAGE_SIZE = 50


@router.get("/messages")
async def list_messages(
    request: Request,
    operator: OrgOperatorDep,
    status: str = "",
    to: str = "",
    sender: str = "",
    cursor: str | None = None,
) -> Response:
    error = None
    wanted_status = status if status in {s.value for s in Status} else None
    wanted_to = None
    if to.strip():
        try:
            wanted_to = phone.normalize(to)
        except ValueError as exc:
            error = f"Recipient: {exc}"
    sender_id = None
    if sender:
        try:
            sender_id = uuid.UUID(sender)
        except ValueError:
            error = "Sender: not a sender's id"
    async with request.state.engine.connect() as conn:
        senders = await store.of_org(conn, operator.org_id)
        rows: list[dict[str, Any]] = []
        next_cursor = None
        if error is None:
            rows, next_cursor = await messages.list_messages(
                conn,
                org_id=operator.org_id,
                limit=PAGE_SIZE,
                cursor=cursor or None,
                status=wanted_status,
                to=wanted_to,
                sender_id=sender_id,
            )
    return page(
        request,
        "messages.html",
        operator=operator,
        nav="messages",
        items=[messages.view(row) for row in rows],
        next_cursor=next_cursor,
        statuses=[s.value for s in Status],
        senders=senders,
        shared_sender_id=str(SHARED_SENDER_ID),
        filters={"status": wanted_status or "", "to": to.strip(), "sender": sender},
        error=error,
    )


@router.get("/messages/{message_id}")
async def show_message(
    request: Request, operator: OrgOperatorDep, message_id: uuid.UUID
) -> Response:
    async with request.state.engine.connect() as conn:
        row = await messages.get_message(conn, org_id=operator.org_id, message_id=message_id)
        events = await messages.list_events(conn, org_id=operator.org_id, message_id=message_id)
    return page(
        request,
        "message.html",
        operator=operator,
        nav="messages",
        message=messages.view(row),
        events=events,
        cancellable=row["status"] in CANCELLABLE,
    )


@router.post("/messages/{message_id}/cancel")
async def cancel_message(
    request: Request, operator: OrgOperatorDep, message_id: uuid.UUID
) -> Response:
    await form(request, csrf_token=operator.csrf_token)
    async with request.state.engine.begin() as conn:
        await messages.cancel_message(
            conn, org_id=operator.org_id, message_id=message_id, actor=operator.actor
        )
    return redirect(request, f"/messages/{message_id}")
