"""An endpoint's deliveries as the API shows and steers them: the page, a manual retry, the
recovery of failed ones, and what enabling or deleting the endpoint does to them. The worker's
claim and outcome writes are not here. Functions take the caller's connection; the caller owns
the transaction."""

from __future__ import annotations

import uuid
from datetime import datetime
from typing import Any

import sqlalchemy as sa
from sqlalchemy.ext.asyncio import AsyncConnection

from wa_outbound.db.callback_schema import callback_delivery, callback_event
from wa_outbound.db.pagination import newest_first
from wa_outbound.errors import DeliveryBlocked, NotFound
from wa_outbound.events import record_audit

d = callback_delivery.c
ev = callback_event.c
STATUSES = ("pending", "succeeded", "failed")

_VIEW = sa.select(
    d.id,
    ev.id.label("event_id"),
    ev.type.label("event_type"),
    d.message_id,
    d.status,
    d.attempts,
    d.last_status_code,
    d.last_error,
    d.next_attempt_at,
    d.created_at,
    d.delivered_at,
).select_from(callback_delivery.join(callback_event, ev.seq == d.event_seq))


async def page(
    conn: AsyncConnection,
    endpoint_id: uuid.UUID,
    *,
    status: str | None,
    limit: int,
    cursor: str | None,
) -> tuple[list[dict[str, Any]], str | None]:
    """One page of the endpoint's deliveries, newest first, and the next page's cursor."""
    query = _VIEW.where(d.endpoint_id == endpoint_id)
    if status is not None:
        query = query.where(d.status == status)
    rows, next_cursor = await newest_first(
        conn, query, at=d.created_at, row_id=d.id, limit=limit, cursor=cursor
    )
    return [view(row) for row in rows], next_cursor


async def get(
    conn: AsyncConnection, endpoint_id: uuid.UUID, delivery_id: uuid.UUID
) -> dict[str, Any]:
    """One delivery of the endpoint (the caller has checked the endpoint is the org's), or 404."""
    row = (
        await conn.execute(_VIEW.where(d.id == delivery_id, d.endpoint_id == endpoint_id))
    ).first()
    if row is None:
        raise NotFound("delivery not found")
    return view(dict(row._mapping))


async def retry(
    conn: AsyncConnection,
    endpoint_id: uuid.UUID,
    delivery_id: uuid.UUID,
    *,
    org_id: str,
    now: datetime,
    actor: str,
) -> dict[str, Any]:
    """Make one delivery pending and due now, whatever its status. Its attempts are kept: a
    failed delivery gets one more attempt. DeliveryBlocked while an earlier event of the same
    message is pending for the endpoint: that one goes first."""
    row = (
        await conn.execute(
            sa.select(d.message_id, d.event_seq)
            .where(d.id == delivery_id, d.endpoint_id == endpoint_id)
            .with_for_update()
        )
    ).first()
    if row is None:
        raise NotFound("delivery not found")
    if row.message_id is not None:
        earlier = await conn.scalar(
            sa.select(d.id)
            .where(
                d.endpoint_id == endpoint_id,
                d.message_id == row.message_id,
                d.event_seq < row.event_seq,
                d.status == "pending",
            )
            .limit(1)
        )
        if earlier is not None:
            raise DeliveryBlocked(pending_delivery_id=str(earlier))
    await conn.execute(
        callback_delivery.update()
        .where(d.id == delivery_id)
        .values(status="pending", next_attempt_at=now, updated_at=now)
    )
    await record_audit(
        conn,
        org_id=org_id,
        at=now,
        action="webhook_delivery.retried",
        actor=actor,
        subject=str(delivery_id),
        details={"endpoint_id": str(endpoint_id)},
    )
    return await get(conn, endpoint_id, delivery_id)


async def recover(
    conn: AsyncConnection,
    endpoint_id: uuid.UUID,
    *,
    org_id: str,
    since: datetime,
    now: datetime,
    actor: str,
) -> int:
    """Requeue the endpoint's deliveries that failed and were created at or after `since`: due
    now, on fresh schedules. The worker sends each message's events in sequence order."""
    result = await conn.execute(
        callback_delivery.update()
        .where(d.endpoint_id == endpoint_id, d.status == "failed", d.created_at >= since)
        .values(status="pending", attempts=0, next_attempt_at=now, updated_at=now)
    )
    requeued = int(result.rowcount or 0)
    await record_audit(
        conn,
        org_id=org_id,
        at=now,
        action="webhook_endpoint.recovered",
        actor=actor,
        subject=str(endpoint_id),
        details={"since": since.isoformat(), "requeued": requeued},
    )
    return requeued


async def make_pending_due(conn: AsyncConnection, endpoint_id: uuid.UUID, *, now: datetime) -> int:
    """The endpoint's pending deliveries due now, on fresh schedules (it was enabled again)."""
    result = await conn.execute(
        callback_delivery.update()
        .where(d.endpoint_id == endpoint_id, d.status == "pending")
        .values(attempts=0, next_attempt_at=now, updated_at=now)
    )
    return int(result.rowcount or 0)


async def delete_of_endpoint(conn: AsyncConnection, endpoint_id: uuid.UUID) -> int:
    result = await conn.execute(callback_delivery.delete().where(d.endpoint_id == endpoint_id))
    return int(result.rowcount or 0)


def view(row: dict[str, Any]) -> dict[str, Any]:
    """The delivery object of the API."""
    message_id = row["message_id"]
    return {
        "id": str(row["id"]),
        "event_id": str(row["event_id"]),
        "event_type": row["event_type"],
        "message_id": None if message_id is None else str(message_id),
        "status": row["status"],
        "attempts": row["attempts"],
        "last_status_code": row["last_status_code"],
        "last_error": row["last_error"],
        "next_attempt_at": row["next_attempt_at"],
        "created_at": row["created_at"],
        "delivered_at": row["delivered_at"],
    }
