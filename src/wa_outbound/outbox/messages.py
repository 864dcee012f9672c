"""Reading and cancelling messages, and the message's public shape."""

from __future__ import annotations

import uuid
from typing import Any

import sqlalchemy as sa
from sqlalchemy.ext.asyncio import AsyncConnection

from wa_outbound.db.pagination import newest_first
from wa_outbound.db.schema import message_event, outbound_message
from wa_outbound.db.types import utcnow
from wa_outbound.errors import NotCancellable, NotFound
from wa_outbound.events import message_event_row, record_message_events
from wa_outbound.events.message_view import view as view
from wa_outbound.status import CANCELLABLE, Status

m = outbound_message.c
SEND_UNKNOWN = "send_unknown"  # dispatch.policy: waiting for a status naming its lost send


async def get_message(
    conn: AsyncConnection, *, org_id: str, message_id: uuid.UUID
) -> dict[str, Any]:
    row = (
        await conn.execute(
            sa.select(outbound_message).where(m.id == message_id, m.org_id == org_id)
        )
    ).first()
    if row is None:
        raise NotFound("message not found")
    return dict(row._mapping)


async def list_messages(
    conn: AsyncConnection,
    *,
    org_id: str,
    limit: int,
    cursor: str | None = None,
    status: str | None = None,
    to: str | None = None,
    dead_lettered: bool | None = None,
    error_code: str | None = None,
    sender_id: uuid.UUID | None = None,
) -> tuple[list[dict[str, Any]], str | None]:
    """Newest first, keyset-paginated on (created_at, id)."""
    query = sa.select(outbound_message).where(m.org_id == org_id)
    if sender_id is not None:
        query = query.where(m.sender_id == sender_id)
    if status is not None:
        query = query.where(m.status == status)
    if to is not None:
        query = query.where(m.to_phone == to)
    if dead_lettered is not None:
        query = query.where(m.dead_lettered.is_(dead_lettered))
    if error_code is not None:
        query = query.where(m.error_code == error_code)
    return await newest_first(conn, query, at=m.created_at, row_id=m.id, limit=limit, cursor=cursor)


async def list_events(
    conn: AsyncConnection, *, org_id: str, message_id: uuid.UUID
) -> list[dict[str, Any]]:
    await get_message(conn, org_id=org_id, message_id=message_id)
    e = message_event.c
    rows = await conn.execute(
        sa.select(e.at, e.type, e.from_status, e.to_status, e.actor, e.details)
        .where(e.message_id == message_id, e.org_id == org_id)
        .order_by(e.id)
    )
    return [dict(row._mapping) for row in rows]


async def cancel_message(
    conn: AsyncConnection, *, org_id: str, message_id: uuid.UUID, actor: str
) -> dict[str, Any]:
    current = await get_message(conn, org_id=org_id, message_id=message_id)
    now = utcnow()
    # Conditional on the status just read: a dispatcher that claimed it meanwhile wins. A
    # message whose last send's outcome is unknown may be with Meta already: not cancellable.
    row = (
        await conn.execute(
            outbound_message.update()
            .where(
                m.id == message_id,
                m.status == current["status"],
                m.status.in_(CANCELLABLE),
                sa.or_(m.waiting_reason.is_(None), m.waiting_reason != SEND_UNKNOWN),
            )
            .values(status=Status.CANCELLED, updated_at=now, lease_until=None)
            .returning(outbound_message)
        )
    ).first()
    if row is None:
        latest = await get_message(conn, org_id=org_id, message_id=message_id)
        if latest["waiting_reason"] == SEND_UNKNOWN and latest["status"] in CANCELLABLE:
            raise NotCancellable(
                "Its last send's outcome is unknown: Meta may have the message. It waits for "
                "Meta's status before it is sent again (waiting_reason send_unknown).",
                status=latest["status"],
                waiting_reason=SEND_UNKNOWN,
            )
        raise NotCancellable(status=latest["status"])
    await record_message_events(
        conn,
        [
            message_event_row(
                message_id=message_id,
                org_id=org_id,
                at=now,
                type="cancelled",
                actor=actor,
                from_status=current["status"],
                to_status=Status.CANCELLED,
            )
        ],
    )
    return dict(row._mapping)
