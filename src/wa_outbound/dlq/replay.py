"""Working the dead-letter queue: replay (back to QUEUED, attempts reset) and discard."""

from __future__ import annotations

import uuid
from typing import Any

import sqlalchemy as sa
from sqlalchemy.ext.asyncio import AsyncConnection

from wa_outbound.db.dialect import is_postgres
from wa_outbound.db.listener import notify
from wa_outbound.db.schema import outbound_message
from wa_outbound.db.types import utcnow
from wa_outbound.errors import NotFound
from wa_outbound.events import message_event_row, record_message_events
from wa_outbound.status import Status

m = outbound_message.c
MAX_BULK_REPLAY = 10_000


async def replay(
    conn: AsyncConnection,
    *,
    org_id: str,
    actor: str,
    ids: list[uuid.UUID] | None = None,
    error_code: str | None = None,
) -> list[dict[str, Any]]:
    """Move dead-lettered messages back to QUEUED with attempts reset. Their last error and
    wamid stay in the timeline (the replay event carries them)."""
    now = utcnow()
    condition = sa.and_(m.org_id == org_id, m.dead_lettered.is_(True))
    if ids is not None:
        condition = sa.and_(condition, m.id.in_(ids))
    if error_code is not None:
        condition = sa.and_(condition, m.error_code == error_code)
    chosen = sa.select(m.id).where(condition).limit(MAX_BULK_REPLAY)
    if is_postgres(conn):
        chosen = chosen.with_for_update(skip_locked=True)
    previous = {
        row.id: row
        for row in await conn.execute(
            sa.select(
                m.id,
                m.error_code,
                m.error_title,
                m.error_message,
                m.error_details,
                m.provider_message_id,
                m.attempts,
            ).where(m.id.in_(chosen))
        )
    }
    if not previous:
        return []
    rows = (
        (
            await conn.execute(
                outbound_message.update()
                .where(m.id.in_(list(previous)), m.dead_lettered.is_(True))
                .values(
                    status=Status.QUEUED,
                    attempts=0,
                    next_attempt_at=now,
                    dead_lettered=False,
                    provider_message_id=None,
                    error_code=None,
                    error_title=None,
                    error_message=None,
                    error_details=None,
                    error_retryable=None,
                    failed_at=None,
                    accepted_at=None,
                    sent_at=None,
                    delivered_at=None,
                    read_at=None,
                    lease_until=None,
                    claimed_by=None,
                    updated_at=now,
                )
                .returning(outbound_message)
            )
        )
        .mappings()
        .all()
    )
    await record_message_events(
        conn,
        [
            message_event_row(
                message_id=row["id"],
                org_id=org_id,
                at=now,
                type="replayed",
                actor=actor,
                from_status=Status.FAILED,
                to_status=Status.QUEUED,
                details={
                    "previous_error": {
                        "code": previous[row["id"]].error_code,
                        "title": previous[row["id"]].error_title,
                        "message": previous[row["id"]].error_message,
                        "details": previous[row["id"]].error_details,
                    },
                    "previous_attempts": previous[row["id"]].attempts,
                    "previous_provider_message_id": previous[row["id"]].provider_message_id,
                },
            )
            for row in rows
        ],
    )
    if rows:
        await notify(conn)
    return [dict(row) for row in rows]


async def replay_one(
    conn: AsyncConnection, *, org_id: str, message_id: uuid.UUID, actor: str
) -> dict[str, Any]:
    rows = await replay(conn, org_id=org_id, actor=actor, ids=[message_id])
    if not rows:
        raise NotFound("no such message in the dead-letter queue")
    return rows[0]


async def discard(conn: AsyncConnection, *, org_id: str, message_id: uuid.UUID, actor: str) -> None:
    """The message leaves the DLQ but is kept, FAILED, with its error."""
    now = utcnow()
    row = (
        await conn.execute(
            outbound_message.update()
            .where(m.id == message_id, m.org_id == org_id, m.dead_lettered.is_(True))
            .values(dead_lettered=False, updated_at=now)
            .returning(m.status)
        )
    ).first()
    if row is None:
        raise NotFound("no such message in the dead-letter queue")
    await record_message_events(
        conn,
        [
            message_event_row(
                message_id=message_id,
                org_id=org_id,
                at=now,
                type="dlq_discarded",
                actor=actor,
                from_status=row.status,
                to_status=row.status,
            )
        ],
    )
