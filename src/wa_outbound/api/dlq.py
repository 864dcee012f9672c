"""Dead-letter queue API: list, replay (one, or in bulk by ids or error code), discard, report."""

from __future__ import annotations

import uuid
from typing import Annotated, Any

from fastapi import APIRouter, Depends, Query, Request, Response

from wa_outbound.api.deps import EngineDep, PrincipalDep, wake_dispatcher
from wa_outbound.api.errors import ERROR_RESPONSES
from wa_outbound.api.limits import single_valued_query
from wa_outbound.api.models import DlqReport, Message, MessagePage, Replayed, ReplayRequest
from wa_outbound.db.types import utcnow
from wa_outbound.dlq import replay
from wa_outbound.dlq import report as dlq_report
from wa_outbound.outbox import messages

router = APIRouter(
    prefix="/v1/dlq",
    tags=["dead-letter queue"],
    responses=ERROR_RESPONSES,
    dependencies=[Depends(single_valued_query)],
)


@router.get("", response_model=MessagePage, summary="Messages in the dead-letter queue")
async def list_dead_letters(
    principal: PrincipalDep,
    engine: EngineDep,
    error_code: Annotated[str | None, Query(max_length=64)] = None,
    limit: Annotated[int, Query(ge=1, le=500)] = 50,
    cursor: str | None = None,
) -> dict[str, Any]:
    async with engine.connect() as conn:
        rows, next_cursor = await messages.list_messages(
            conn,
            org_id=principal.org_id,
            limit=limit,
            cursor=cursor,
            dead_lettered=True,
            error_code=error_code,
        )
    return {"items": [messages.view(r) for r in rows], "next_cursor": next_cursor}


@router.get("/report", response_model=DlqReport, summary="What is failing, and what to do")
async def report(principal: PrincipalDep, engine: EngineDep) -> dict[str, Any]:
    async with engine.connect() as conn:
        return await dlq_report.report(conn, org_id=principal.org_id, now=utcnow())


@router.post(
    "/replay",
    status_code=202,
    response_model=Replayed,
    summary="Replay dead-lettered messages by ids and/or error code",
)
async def replay_many(
    body: ReplayRequest, request: Request, principal: PrincipalDep, engine: EngineDep
) -> dict[str, int]:
    async with engine.begin() as conn:
        rows = await replay.replay(
            conn,
            org_id=principal.org_id,
            actor=principal.actor,
            ids=body.ids,
            error_code=body.error_code,
        )
    wake_dispatcher(request)
    return {"replayed": len(rows)}


@router.post(
    "/{message_id}/replay",
    status_code=202,
    response_model=Message,
    summary="Replay one message: back to QUEUED with attempts reset",
)
async def replay_one(
    message_id: uuid.UUID, request: Request, principal: PrincipalDep, engine: EngineDep
) -> dict[str, Any]:
    async with engine.begin() as conn:
        row = await replay.replay_one(
            conn, org_id=principal.org_id, message_id=message_id, actor=principal.actor
        )
    wake_dispatcher(request)
    return messages.view(row)


@router.delete(
    "/{message_id}",
    status_code=204,
    response_class=Response,
    summary="Remove a message from the DLQ (it is kept, FAILED)",
)
async def discard(message_id: uuid.UUID, principal: PrincipalDep, engine: EngineDep) -> Response:
    async with engine.begin() as conn:
        await replay.discard(
            conn, org_id=principal.org_id, message_id=message_id, actor=principal.actor
        )
    return Response(status_code=204)
