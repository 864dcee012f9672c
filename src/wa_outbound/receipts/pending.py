"""Statuses that arrived before their wamid was known (a webhook beat our own commit of the send):
kept in `pending_status` with their business number, applied the moment the wamid is committed
on a message of that number, and dropped when too old."""

from __future__ import annotations

from datetime import datetime
from typing import Any

import sqlalchemy as sa
from sqlalchemy.ext.asyncio import AsyncConnection

from wa_outbound.db.dialect import any_of, is_postgres
from wa_outbound.db.schema import (
    SHARED_SENDER_ID,
    message_wamid,
    outbound_message,
    pending_status,
    sender,
)
from wa_outbound.receipts.reconcile import RECONCILABLE
from wa_outbound.receipts.statuses import StatusUpdate, apply_statuses
from wa_outbound.status import Status

_CHUNK = 1000
m = outbound_message.c
p = pending_status.c
s = sender.c
w = message_wamid.c


async def apply_pending(
    conn: AsyncConnection, provider_message_ids: list[str], *, now: datetime
) -> int:
    """Apply, and delete, the pending statuses of these wamids; return how many there were.

    The dispatcher calls this in the transaction that commits ACCEPTED and the wamid, so a
    status that beat the send's own commit is applied the moment the wamid becomes known.
    """
    applied = 0
    ordered = sorted(set(provider_message_ids))
    for start in range(0, len(ordered), _CHUNK):
        chunk = ordered[start : start + _CHUNK]
        applied += await _take_and_apply(
            conn, any_of(conn, p.provider_message_id, chunk), None, now
        )
    return applied


async def apply_known_pending(conn: AsyncConnection, *, now: datetime, limit: int) -> int:
    """The sweep's part: apply up to `limit` pending statuses whose wamid is now known."""
    return await _take_and_apply(conn, sa.true(), limit, now)


async def _take_and_apply(
    conn: AsyncConnection, where: sa.ColumnElement[bool], limit: int | None, now: datetime
) -> int:
    # DELETE ... RETURNING claims the rows, and the sub-select skips rows another transaction
    # (the dispatcher, another replica's sweep) is claiming: each pending status is applied
    # exactly once, and concurrent claimers never wait on, or deadlock with, each other.
    known = (
        sa.select(p.id)
        .where(
            where,
            sa.or_(
                sa.exists().where(m.provider_message_id == p.provider_message_id, _same_number()),
                sa.exists().where(
                    w.provider_message_id == p.provider_message_id,
                    m.id == w.message_id,
                    _same_number(),
                ),
                # Its callback data names a message it can now be attached to (reconcile.py):
                # one with another wamid, or one waiting or failed without any. Not one being
                # sent, nor a cancelled one: taken, such a status would only be pending again.
                sa.exists().where(
                    m.id == _named_id(conn),
                    m.status != Status.SENDING,
                    sa.or_(m.provider_message_id.is_not(None), m.status.in_(RECONCILABLE)),
                    _same_number(),
                ),
            ),
        )
        .order_by(p.id)
        .limit(limit)
        .with_for_update(skip_locked=True)
    )
    taken = await conn.execute(
        pending_status.delete()
        .where(p.id.in_(known.scalar_subquery()))
        .returning(p.id, p.provider_message_id, p.status_at, p.payload, p.phone_number_id)
    )
    rows = sorted(taken, key=lambda row: row.id)  # arrival order; RETURNING has none
    updates = [
        StatusUpdate(
            provider_message_id=row.provider_message_id,
            status=row.payload["status"],
            at=row.status_at,
            error=row.payload.get("error"),
            recipient_id=row.payload.get("recipient"),
            phone_number_id=row.phone_number_id,
            callback_data=row.payload.get("callback"),
            recipient_user_id=row.payload.get("recipient_user_id"),
        )
        for row in rows
    ]
    if updates:
        await apply_statuses(conn, updates, actor="webhook:pending", now=now)
    return len(updates)


def _named_id(conn: AsyncConnection) -> sa.ColumnElement[Any]:
    """The message id a pending status's callback data names, as the dialect stores ids (a
    UUID string there, statuses.pending_row keeps only valid ones)."""
    callback = p.payload["callback"].as_string()
    if is_postgres(conn):
        return sa.cast(callback, sa.Uuid())
    return sa.func.replace(callback, "-", "")  # SQLite: 32 hex digits, no dashes


def _same_number() -> sa.ColumnElement[bool]:
    """The message (`m`) was sent from the pending status's number; a status from before
    senders (no number) matches any."""
    return sa.or_(
        p.phone_number_id.is_(None),
        sa.exists().where(
            s.phone_number_id == p.phone_number_id,
            sa.or_(
                s.id == m.sender_id,
                sa.and_(m.sender_id.is_(None), s.id == SHARED_SENDER_ID),
            ),
        ),
    )


async def drop_expired_pending(
    conn: AsyncConnection, *, older_than: datetime, limit: int
) -> list[tuple[str, str]]:
    """Delete up to `limit` pending statuses received before `older_than`: (wamid, status)."""
    expired = (
        sa.select(p.id)
        .where(p.received_at < older_than)
        .order_by(p.id)
        .limit(limit)
        .with_for_update(skip_locked=True)
    ).scalar_subquery()
    rows = await conn.execute(
        pending_status.delete().where(p.id.in_(expired)).returning(p.provider_message_id, p.status)
    )
    return [(row.provider_message_id, row.status) for row in rows]
