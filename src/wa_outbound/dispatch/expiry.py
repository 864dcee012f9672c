"""Messages whose `expires_at` passed while they waited: FAILED with the code `expired`, not
dead-lettered (Meta drops what it cannot deliver after 30 days, authentication templates after 10
minutes: an integrator sets an expiry so that a message late past its use is not sent at all).

The claim never takes an expired message; this sweep, run with the dispatcher's lease reclaim,
ends them, whatever holds them (a limit, a paused sender, a retry's backoff)."""

from __future__ import annotations

from datetime import datetime

import sqlalchemy as sa
from sqlalchemy.ext.asyncio import AsyncConnection

from wa_outbound.db.schema import outbound_message
from wa_outbound.events import message_event_row, record_message_events
from wa_outbound.status import CLAIMABLE, Status

m = outbound_message.c
BATCH = 1000


async def expire_due(conn: AsyncConnection, *, now: datetime, actor: str) -> int:
    """End up to `BATCH` waiting messages past their expiry; returns how many."""
    due = (
        sa.select(m.id)
        .where(m.status.in_(CLAIMABLE), m.expires_at.is_not(None), m.expires_at <= now)
        .limit(BATCH)
    )
    if conn.dialect.name == "postgresql":
        due = due.with_for_update(skip_locked=True)
    before = {
        row.id: row.status
        for row in await conn.execute(
            sa.select(m.id, m.status).where(m.id.in_(due.scalar_subquery()))
        )
    }
    if not before:
        return 0
    rows = (
        await conn.execute(
            outbound_message.update()
            .where(m.id.in_(list(before)), m.status.in_(CLAIMABLE))
            .values(
                status=Status.FAILED.value,
                error_code="expired",
                error_title="Expired",
                error_message="The message was not sent before its expires_at.",
                error_details=None,
                error_retryable=False,
                dead_lettered=False,
                waiting_reason=None,
                failed_at=now,
                updated_at=now,
            )
            .returning(m.id, m.org_id, m.expires_at)
        )
    ).all()
    if rows:
        await record_message_events(
            conn,
            [
                message_event_row(
                    message_id=r.id,
                    org_id=r.org_id,
                    at=now,
                    type="expired",
                    actor=actor,
                    from_status=before[r.id],
                    to_status=Status.FAILED,
                    details={"expires_at": r.expires_at.isoformat()},
                )
                for r in rows
            ],
        )
    return len(rows)
