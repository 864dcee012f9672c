"""The dispatcher's hot SQL: claiming a batch under a lease, and writing outcomes back.

Claiming is one statement. On PostgreSQL `FOR UPDATE SKIP LOCKED` lets any number of replicas
claim at once without waiting on each other or taking the same row; the lease (`lease_until`)
makes a claim whose process died claimable again. SQLite has one writer, so a plain
read-then-update inside its (IMMEDIATE) transaction is just as exclusive.
"""

from __future__ import annotations

import uuid
from dataclasses import dataclass
from datetime import datetime, timedelta
from typing import Any

import sqlalchemy as sa
from sqlalchemy.ext.asyncio import AsyncConnection

from wa_outbound.db.dialect import is_postgres
from wa_outbound.db.schema import consent, message_event, outbound_message
from wa_outbound.status import CLAIMABLE, Status

m = outbound_message.c

# The claim, its SENDING events and the consent re-check in one round trip.
_PG_CLAIM_SQL = sa.text(
    """
    WITH picked AS (
        SELECT id, status AS from_status
        FROM outbound_message
        WHERE status IN ('QUEUED', 'RETRYING') AND next_attempt_at <= :now
        ORDER BY next_attempt_at
        LIMIT :limit
        FOR UPDATE SKIP LOCKED
    ), claimed AS (
        UPDATE outbound_message AS o
        SET status = 'SENDING', attempts = o.attempts + 1, lease_until = :lease_until,
            claimed_by = :worker, updated_at = :now
        FROM picked
        WHERE o.id = picked.id
        RETURNING o.id, o.org_id, o.to_phone, o.kind, o.payload, o.attempts, o.max_attempts,
                  o.next_attempt_at, o.created_at, picked.from_status
    ), events AS (
        INSERT INTO message_event
            (message_id, org_id, at, type, from_status, to_status, actor, details)
        SELECT id, org_id, :now, 'claimed', from_status, 'SENDING', :actor,
               jsonb_build_object('attempt', attempts)
        FROM claimed
    )
    SELECT claimed.*, (c.status IS NOT DISTINCT FROM 'granted') AS consented
    FROM claimed
    LEFT JOIN consent AS c ON c.org_id = claimed.org_id AND c.phone = claimed.to_phone
    ORDER BY claimed.next_attempt_at
    """
)
# What a claim returns of each message (also spelled out in the RETURNING above).
_CLAIMED_COLUMNS = (
    m.id,
    m.org_id,
    m.to_phone,
    m.kind,
    m.payload,
    m.attempts,
    m.max_attempts,
    m.next_attempt_at,
    m.created_at,
)
_PG_CLAIM = _PG_CLAIM_SQL.bindparams(
    sa.bindparam("now", type_=m.next_attempt_at.type),
    sa.bindparam("lease_until", type_=m.lease_until.type),
).columns(
    *_CLAIMED_COLUMNS,
    sa.column("from_status", sa.String),
    sa.column("consented", sa.Boolean),
)


@dataclass(frozen=True, slots=True)
class Claimed:
    id: uuid.UUID
    org_id: str
    to: str
    kind: str
    payload: dict[str, Any]
    attempt: int
    max_attempts: int
    from_status: str
    consented: bool
    created_at: datetime


async def claim_batch(
    conn: AsyncConnection, *, limit: int, worker: str, lease_s: float, now: datetime
) -> list[Claimed]:
    lease_until = now + timedelta(seconds=lease_s)
    actor = f"dispatcher:{worker}"
    if is_postgres(conn):
        rows = (
            (
                await conn.execute(
                    _PG_CLAIM,
                    {
                        "now": now,
                        "limit": limit,
                        "lease_until": lease_until,
                        "worker": worker,
                        "actor": actor,
                    },
                )
            )
            .mappings()
            .all()
        )
        return [_claimed(row) for row in rows]
    return await _claim_sqlite(
        conn, limit=limit, worker=worker, lease_until=lease_until, now=now, actor=actor
    )


async def _claim_sqlite(
    conn: AsyncConnection,
    *,
    limit: int,
    worker: str,
    lease_until: datetime,
    now: datetime,
    actor: str,
) -> list[Claimed]:
    picked = (
        await conn.execute(
            sa.select(m.id, m.status)
            .where(m.status.in_(CLAIMABLE), m.next_attempt_at <= now)
            .order_by(m.next_attempt_at)
            .limit(limit)
        )
    ).all()
    if not picked:
        return []
    from_status = {row.id: row.status for row in picked}
    rows = (
        (
            await conn.execute(
                outbound_message.update()
                .where(m.id.in_(from_status))
                .values(
                    status=Status.SENDING,
                    attempts=m.attempts + 1,
                    lease_until=lease_until,
                    claimed_by=worker,
                    updated_at=now,
                )
                .returning(*_CLAIMED_COLUMNS)
            )
        )
        .mappings()
        .all()
    )
    granted = {
        (row.org_id, row.phone)
        for row in await conn.execute(
            sa.select(consent.c.org_id, consent.c.phone).where(
                consent.c.status == "granted",
                sa.tuple_(consent.c.org_id, consent.c.phone).in_(
                    [(r["org_id"], r["to_phone"]) for r in rows]
                ),
            )
        )
    }
    await conn.execute(
        message_event.insert(),
        [
            {
                "message_id": r["id"],
                "org_id": r["org_id"],
                "at": now,
                "type": "claimed",
                "from_status": from_status[r["id"]],
                "to_status": Status.SENDING,
                "actor": actor,
                "details": {"attempt": r["attempts"]},
            }
            for r in rows
        ],
    )
    claimed = [
        _claimed(
            {
                **r,
                "from_status": from_status[r["id"]],
                "consented": (r["org_id"], r["to_phone"]) in granted,
            }
        )
        for r in rows
    ]
    return sorted(claimed, key=lambda c: c.created_at)


def _claimed(row: Any) -> Claimed:
    return Claimed(
        id=row["id"],
        org_id=row["org_id"],
        to=row["to_phone"],
        kind=row["kind"],
        payload=row["payload"],
        attempt=row["attempts"],
        max_attempts=row["max_attempts"],
        from_status=row["from_status"],
        consented=bool(row["consented"]),
        created_at=row["created_at"],
    )
