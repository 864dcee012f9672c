"""Dead-letter queue API: list, replay (one, or in bulk by ids or error code), discard, report."""

from __future__ import annotations

from typing import Annotated, Any

from fastapi import APIRouter, Body, Depends, Query, Request, Response

from wa_outbound.api import examples, responses
from wa_outbound.api.deps import EngineDep, PrincipalDep, wake_dispatcher
from wa_outbound.api.limits import single_valued_query
from wa_outbound.api.models import DlqReport, Message, MessagePage, Replayed, ReplayRequest
from wa_outbound.api.openapi import MessageId
from wa_outbound.db.types import utcnow
from wa_outbound.dlq import replay
from wa_outbound.dlq import report as dlq_report
from wa_outbound.outbox import messages

router = APIRouter(
    prefix="/v1/dlq",
    tags=["dead-letter queue"],
    dependencies=[Depends(single_valued_query)],
)


@router.get(
    "",
    response_model=MessagePage,
    responses=responses.LIST_DLQ,
    summary="Messages in the dead-letter queue",
    description="The calling organisation's dead-lettered messages (`FAILED`, "
    "`dead_lettered: true`), newest first, optionally only those whose `error.code` is "
    "`error_code`. Paged as `GET /v1/messages`.",
)
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


@router.get(
    "/report",
    response_model=DlqReport,
    responses=responses.DLQ_REPORT,
    summary="What is failing, and what to do",
    description="How many messages are in the dead-letter queue now (`total_failed`, "
    "`by_channel`), the error codes most of those that failed in the last 24 hours share "
    "(up to 10), and one line of advice per code.",
)
async def report(principal: PrincipalDep, engine: EngineDep) -> dict[str, Any]:
    async with engine.connect() as conn:
        return await dlq_report.report(conn, org_id=principal.org_id, now=utcnow())


@router.post(
    "/replay",
    status_code=202,
    response_model=Replayed,
    responses=responses.REPLAY_MANY,
    summary="Replay dead-lettered messages by ids and/or error code",
    description="Puts dead-lettered messages back in the queue, as `POST /v1/dlq/{id}/replay` "
    "does one: those among `ids`, those whose error code is `error_code`, or, with both, "
    "those that match both. Ids not in the dead-letter queue are skipped. One call replays at "
    "most 10,000 messages: call again while `replayed` is 10,000.",
)
async def replay_many(
    body: Annotated[ReplayRequest, Body(openapi_examples=examples.REPLAY)],
    request: Request,
    principal: PrincipalDep,
    engine: EngineDep,
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
    responses=responses.REPLAY_ONE,
    summary="Replay one message: back to QUEUED with attempts reset",
    description="Fix the cause first. The message goes back to `QUEUED`, due now, with its "
    "attempts at 0 and its error, wamid and delivery times cleared; what it had is kept in "
    "its timeline (`replayed` event).",
)
async def replay_one(
    message_id: MessageId, request: Request, principal: PrincipalDep, engine: EngineDep
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
    responses=responses.DISCARD,
    summary="Remove a message from the DLQ (it is kept, FAILED)",
    description="Takes the message out of the dead-letter queue without sending it: it stays "
    "`FAILED` with its error, `dead_lettered` becomes false (event `dlq_discarded`).",
)
async def discard(message_id: MessageId, principal: PrincipalDep, engine: EngineDep) -> Response:
    async with engine.begin() as conn:
        await replay.discard(
            conn, org_id=principal.org_id, message_id=message_id, actor=principal.actor
        )
    return Response(status_code=204)
