"""The dead-letter queue: grouped by error code with the report's advice, and replay or
discard of one message, a selection, or a whole code, each after a confirmation page.

The work is dlq.replay's, as for the API; the timeline records each message's `replayed` or
`dlq_discarded` event with the console's actor.
"""

from __future__ import annotations

import uuid
from typing import Any

import sqlalchemy as sa
from fastapi import APIRouter, Request, Response
from sqlalchemy.ext.asyncio import AsyncConnection

from wa_outbound.console.identity import OrgOperatorDep
from wa_outbound.console.web import ConsoleRoute, Refused, first, form, page, redirect
from wa_outbound.db.schema import outbound_message
from wa_outbound.db.types import utcnow
from wa_outbound.dlq import replay
from wa_outbound.dlq import report as dlq_report
from wa_outbound.outbox import messages

router = APIRouter(route_class=ConsoleRoute)
m = outbound_message.c
PAGE_SIZE = 100
ACTIONS = ("replay", "discard")


async def _groups(conn: AsyncConnection, org_id: str) -> list[dict[str, Any]]:
    """Every error code in the DLQ now (the report covers the last 24 hours), with advice."""
    code = sa.func.coalesce(m.error_code, dlq_report.UNKNOWN_CODE)
    count = sa.func.count().label("n")
    rows = await conn.execute(
        sa.select(code.label("code"), sa.func.max(m.error_title).label("title"), count)
        .where(m.org_id == org_id, m.dead_lettered.is_(True))
        .group_by(code)
        .order_by(count.desc(), code)
    )
    return [
        {
            "code": r.code,
            "title": r.title,
            "count": int(r.n),
            "advice": dlq_report.recommendation(r.code, r.title),
        }
        for r in rows
    ]


def _done(request: Request) -> str | None:
    for verb in ("replayed", "discarded"):
        value = request.query_params.get(verb, "")
        if value.isdigit():  # only a number: the page never echoes text from a URL
            return f"{verb.capitalize()} {int(value)} message{'s' if int(value) != 1 else ''}."
    return None


@router.get("/dlq")
async def dead_letters(
    request: Request, operator: OrgOperatorDep, code: str = "", cursor: str | None = None
) -> Response:
    async with request.state.engine.connect() as conn:
        report = await dlq_report.report(conn, org_id=operator.org_id, now=utcnow())
        groups = await _groups(conn, operator.org_id)
        rows, next_cursor = await messages.list_messages(
            conn,
            org_id=operator.org_id,
            limit=PAGE_SIZE,
            cursor=cursor or None,
            dead_lettered=True,
            error_code=code or None,
        )
    return page(
        request,
        "dlq.html",
        operator=operator,
        nav="dlq",
        report=report,
        groups=groups,
        items=[messages.view(row) for row in rows],
        next_cursor=next_cursor,
        code=code,
        done=_done(request),
    )


def _scope(fields: dict[str, list[str]]) -> tuple[str, list[uuid.UUID] | None, str | None]:
    """(action, ids, error code) from a DLQ form: a button `replay:<id>` for one message,
    `replay` with the ticked `ids`, or `replay` with an `error_code` for a whole code."""
    action, _, one = first(fields, "action").partition(":")
    if action not in ACTIONS:
        raise Refused(400, "Unknown action.")
    raw = [one] if one else [i for i in fields.get("ids", []) if i]
    error_code = first(fields, "error_code") or None
    if not raw and error_code is None:
        raise Refused(400, "Tick at least one message, or choose an error code.")
    try:
        ids = [uuid.UUID(i) for i in raw] if raw else None
    except ValueError as exc:
        raise Refused(400, "Not a message id.") from exc
    return action, ids, error_code


def _condition(org_id: str, ids: list[uuid.UUID] | None, error_code: str | None) -> Any:
    condition = sa.and_(m.org_id == org_id, m.dead_lettered.is_(True))
    if ids is not None:
        condition = sa.and_(condition, m.id.in_(ids))
    if error_code is not None:
        condition = sa.and_(condition, m.error_code == error_code)
    return condition


@router.post("/dlq/confirm")
async def confirm(request: Request, operator: OrgOperatorDep) -> Response:
    fields = await form(request, csrf_token=operator.csrf_token)
    action, ids, error_code = _scope(fields)
    async with request.state.engine.connect() as conn:
        count = await conn.scalar(
            sa.select(sa.func.count()).where(_condition(operator.org_id, ids, error_code))
        )
    return page(
        request,
        "dlq_confirm.html",
        operator=operator,
        nav="dlq",
        action=action,
        ids=[str(i) for i in ids or []],
        error_code=error_code,
        count=int(count or 0),
        capped=int(count or 0) > replay.MAX_BULK_REPLAY,
        limit=replay.MAX_BULK_REPLAY,
    )


@router.post("/dlq/apply")
async def apply(request: Request, operator: OrgOperatorDep) -> Response:
    fields = await form(request, csrf_token=operator.csrf_token)
    action, ids, error_code = _scope(fields)
    async with request.state.engine.begin() as conn:
        if action == "replay":
            rows = await replay.replay(
                conn, org_id=operator.org_id, actor=operator.actor, ids=ids, error_code=error_code
            )
            done = len(rows)
        else:
            chosen = await conn.scalars(
                sa.select(m.id)
                .where(_condition(operator.org_id, ids, error_code))
                .limit(replay.MAX_BULK_REPLAY)
            )
            done = 0
            for message_id in list(chosen):
                await replay.discard(
                    conn, org_id=operator.org_id, message_id=message_id, actor=operator.actor
                )
                done += 1
    if action == "replay" and done:
        request.state.wake_dispatcher()
    verb = "replayed" if action == "replay" else "discarded"
    return redirect(request, f"/dlq?{verb}={done}")
