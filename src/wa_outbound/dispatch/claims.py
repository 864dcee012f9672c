"""The dispatcher's hot SQL: claiming a batch under a lease, and keeping the lease alive.

A claim is two statements in one transaction. The first locks the due rows at the head of the
queue (`FOR UPDATE SKIP LOCKED`: any number of replicas look at once without waiting on each
other or taking the same row), with what the limits need to know of each (its sender's
throughput and WABA's messaging limit, whether its recipient's service window is open); it
skips paused senders and the senders and orgs this replica holds. The rate limiter is then
asked about them while they are locked, and the second statement claims only the rows it
granted. What waits briefly (throughput) is unlocked untouched; what waits longer gets its
`next_attempt_at` and `waiting_reason` written once (`hold`), so no round looks at it before
then. SQLite has one writer, so a plain read inside its (IMMEDIATE) transaction is just as
exclusive.

A claim's token is its owner (`claimed_by`) and `attempts`: every later write of the claim is
guarded by both (see outcomes.py). Leases are computed by the database's clock, never by a
replica's, so a replica whose clock runs behind cannot keep a dead claim alive.
"""

from __future__ import annotations

import uuid
from dataclasses import dataclass
from datetime import datetime, timedelta
from typing import Any

import sqlalchemy as sa
from sqlalchemy.ext.asyncio import AsyncConnection

from wa_outbound.db.dialect import is_postgres
from wa_outbound.db.schema import SHARED_SENDER_ID, consent, message_event, outbound_message
from wa_outbound.db.types import utcnow
from wa_outbound.dispatch.due import Due, Wait, hold, lock_due
from wa_outbound.status import CLAIMABLE, Status

__all__ = ["Claimed", "Due", "Wait", "claim", "extend_leases", "hold", "lease_clock", "lock_due"]

m = outbound_message.c


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
    worker: str = ""
    """With `attempt`, the claim's fencing token."""
    sender_id: uuid.UUID = SHARED_SENDER_ID


# The claim of rows this transaction locked, their `claimed` events and the consent re-check, in
# one round trip. The lease comes from the database's clock.
_PG_CLAIM_SQL = sa.text(
    """
    WITH picked AS (
        SELECT id, status AS from_status FROM outbound_message
        WHERE id = ANY(CAST(:ids AS uuid[])) AND status IN ('QUEUED', 'RETRYING')
    ), claimed AS (
        UPDATE outbound_message AS o
        SET status = 'SENDING', attempts = o.attempts + 1, waiting_reason = NULL,
            lease_until = clock_timestamp() + make_interval(secs => :lease_s),
            claimed_by = :worker, updated_at = :now
        FROM picked
        WHERE o.id = picked.id
        RETURNING o.id, o.org_id, o.to_phone, o.kind, o.payload, o.attempts, o.max_attempts,
                  o.next_attempt_at, o.created_at, o.sender_id, picked.from_status
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
    m.sender_id,
)
_PG_CLAIM = _PG_CLAIM_SQL.bindparams(sa.bindparam("now", type_=m.next_attempt_at.type)).columns(
    *_CLAIMED_COLUMNS,
    sa.column("from_status", sa.String),
    sa.column("consented", sa.Boolean),
)


async def claim(
    conn: AsyncConnection, ids: list[uuid.UUID], *, worker: str, lease_s: float, now: datetime
) -> list[Claimed]:
    """Claim rows locked by `lock_due` in this transaction: SENDING under a lease, one more
    attempt, a `claimed` event each, and whether the recipient still consents."""
    if not ids:
        return []
    actor = f"dispatcher:{worker}"
    if is_postgres(conn):
        params = {"ids": ids, "now": now, "lease_s": lease_s, "worker": worker, "actor": actor}
        rows = (await conn.execute(_PG_CLAIM, params)).mappings().all()
        return [_claimed(row, worker) for row in rows]
    return await _claim_sqlite(conn, ids, worker=worker, lease_s=lease_s, now=now, actor=actor)


async def _claim_sqlite(
    conn: AsyncConnection,
    ids: list[uuid.UUID],
    *,
    worker: str,
    lease_s: float,
    now: datetime,
    actor: str,
) -> list[Claimed]:
    from_status = {
        row.id: row.status
        for row in await conn.execute(sa.select(m.id, m.status).where(m.id.in_(ids)))
    }
    rows = (
        (
            await conn.execute(
                outbound_message.update()
                .where(m.id.in_(ids), m.status.in_(CLAIMABLE))
                .values(
                    status=Status.SENDING,
                    attempts=m.attempts + 1,
                    # One process: its clock is the database's.
                    lease_until=utcnow() + timedelta(seconds=lease_s),
                    claimed_by=worker,
                    updated_at=now,
                    waiting_reason=None,
                )
                .returning(*_CLAIMED_COLUMNS)
            )
        )
        .mappings()
        .all()
    )
    if not rows:
        return []
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
            },
            worker,
        )
        for r in rows
    ]
    position = {message_id: i for i, message_id in enumerate(ids)}  # queue order
    return sorted(claimed, key=lambda c: position[c.id])


def _claimed(row: Any, worker: str) -> Claimed:
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
        worker=worker,
        sender_id=row["sender_id"] or SHARED_SENDER_ID,
    )


async def extend_leases(
    conn: AsyncConnection, claims: list[Claimed], *, worker: str, lease_s: float
) -> int:
    """The owner's heartbeat: push the lease of each claim it still holds (same owner, same
    attempt, still SENDING) one lease ahead of the database's clock; returns how many it held."""
    if not claims:
        return 0
    still_mine = sa.and_(
        m.status == Status.SENDING,
        m.claimed_by == worker,
        sa.tuple_(m.id, m.attempts).in_([(c.id, c.attempt) for c in claims]),
    )
    if is_postgres(conn):
        lease_until: Any = sa.func.clock_timestamp() + sa.func.make_interval(
            0, 0, 0, 0, 0, 0, lease_s
        )
    else:
        lease_until = utcnow() + timedelta(seconds=lease_s)
    result = await conn.execute(
        outbound_message.update().where(still_mine).values(lease_until=lease_until)
    )
    return int(result.rowcount)


def lease_clock(conn: AsyncConnection) -> Any:
    """The clock that leases are compared with: the database's (SQLite: the one process's)."""
    return sa.func.clock_timestamp() if is_postgres(conn) else utcnow()
