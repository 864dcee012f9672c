"""The delivery worker's hot SQL: claiming due deliveries under a lease, and keeping it alive.

A claim is one statement on PostgreSQL, sent on the asyncpg connection itself (db/raw.py: no
SQLAlchemy execution layer on the hot path). It locks the due deliveries at the head of the queue
with `FOR UPDATE SKIP LOCKED` (replicas look at once without waiting on each other or taking the
same row), takes only deliveries of enabled endpoints whose lease is free or expired, and of the
pending deliveries of one message to one endpoint only the lowest `event_seq`: a later event is
not attempted while an earlier one is pending, and a delivery being attempted stays `pending`
under its lease, so its successors wait for its outcome. The claimed rows get an owner, a lease
and one more attempt, and come back with their event and endpoint; an endpoint's URL and
secrets come once per claim, on the first of its rows (fewer columns to decode per row), and
that claim's deliveries to it share one `Endpoint`.

There is no separate reclaim: a claim whose process died keeps its `pending` status, and once its
lease runs out (by the database's clock) the next claim of any replica takes it again. The claim
moves `next_attempt_at` to the lease's end as well, so the deliveries in flight leave the head of
the due index and later claims do not scan past them (the outcome writes the real one). Its
token is `claimed_by` (unique per claim) and `attempts`; every outcome is guarded by both
(outcomes.py).

SQLite has one writer: a plain read, then an update guarded by the same conditions.
"""

from __future__ import annotations

import uuid
from collections.abc import Sequence
from datetime import datetime, timedelta
from typing import Any, NamedTuple

import sqlalchemy as sa
from sqlalchemy.ext.asyncio import AsyncConnection

from wa_outbound.db import raw
from wa_outbound.db.callback_schema import callback_delivery, callback_endpoint, callback_event
from wa_outbound.db.dialect import is_postgres
from wa_outbound.db.types import utcnow

d = callback_delivery.c
e = callback_endpoint.c
ev = callback_event.c


class Endpoint(NamedTuple):
    """An endpoint as a claim read it, shared by that claim's deliveries to it."""

    id: uuid.UUID
    url: str
    secret: str
    """Stored (encrypted) as in the endpoint's row."""
    previous_secret: str | None
    previous_secret_until: datetime | None


class Claimed(NamedTuple):
    """A delivery claimed for its `attempt`-th attempt, with what it sends. `worker` is the
    claim's own token (`claimed_by`): the worker's id and the number of the claim, so that a
    claim is never mistaken for an earlier one of the same worker, even when the API has reset
    the delivery's attempts meanwhile (enabling an endpoint, recover). A named tuple: immutable,
    and several times cheaper to make than a frozen dataclass (one per delivery)."""

    id: uuid.UUID
    endpoint_id: uuid.UUID
    event_seq: int
    message_id: uuid.UUID | None
    attempt: int
    worker: str
    event_id: uuid.UUID
    event_type: str
    occurred_at: datetime
    data: str
    """The event's data as JSON text, as stored: sent without being decoded."""
    endpoint: Endpoint

    @property
    def url(self) -> str:
        return self.endpoint.url


_PG_CLAIM = """
    WITH due AS (
        SELECT dl.id
        FROM callback_delivery AS dl
        JOIN callback_endpoint AS ep ON ep.id = dl.endpoint_id
        WHERE dl.status = 'pending'
          AND dl.next_attempt_at <= $1
          AND ep.enabled
          AND (dl.lease_until IS NULL OR dl.lease_until < clock_timestamp())
          AND dl.endpoint_id <> ALL($5::uuid[])
          AND (dl.message_id IS NULL OR NOT EXISTS (
              SELECT 1 FROM callback_delivery AS earlier
              WHERE earlier.endpoint_id = dl.endpoint_id
                AND earlier.message_id = dl.message_id
                AND earlier.status = 'pending'
                AND earlier.event_seq < dl.event_seq))
        ORDER BY dl.next_attempt_at
        LIMIT $2
        FOR UPDATE OF dl SKIP LOCKED
    ), claimed AS (
        -- By primary key whatever the planner thinks of the table's size (a join with `due`
        -- may become a scan of the whole table).
        UPDATE callback_delivery AS c
        SET attempts = c.attempts + 1, claimed_by = $3, updated_at = $1,
            lease_until = clock_timestamp() + make_interval(secs => $4::double precision),
            next_attempt_at = clock_timestamp() + make_interval(secs => $4::double precision)
        WHERE c.id = ANY(ARRAY(SELECT id FROM due))
        RETURNING c.id, c.endpoint_id, c.event_seq, c.message_id, c.attempts, c.next_attempt_at
    )
    SELECT claimed.id, claimed.endpoint_id, claimed.event_seq, claimed.message_id,
           claimed.attempts, ev.id AS event_id, ev.type AS event_type, ev.occurred_at,
           ev.data::text AS data,
           -- The endpoint's columns on one row of its own per claim only (NULL on the others).
           CASE WHEN row_number() OVER w = 1 THEN ep.url END AS url,
           CASE WHEN row_number() OVER w = 1 THEN ep.secret END AS secret,
           CASE WHEN row_number() OVER w = 1 THEN ep.previous_secret END AS previous_secret,
           CASE WHEN row_number() OVER w = 1 THEN ep.previous_secret_until END
               AS previous_secret_until
    FROM claimed
    JOIN callback_event AS ev ON ev.seq = claimed.event_seq
    JOIN callback_endpoint AS ep ON ep.id = claimed.endpoint_id
    WINDOW w AS (PARTITION BY claimed.endpoint_id)
    ORDER BY claimed.next_attempt_at, claimed.event_seq
    """


async def claim(
    conn: AsyncConnection,
    *,
    worker: str,
    limit: int,
    lease_s: float,
    now: datetime,
    skip_endpoints: Sequence[uuid.UUID] = (),
) -> list[Claimed]:
    """Claim up to `limit` due deliveries, oldest first, leaving out `skip_endpoints` (those
    whose host already has every connection this replica may open busy)."""
    if is_postgres(conn):
        try:
            rows = await (await raw.driver(conn)).fetch(
                _PG_CLAIM, now, limit, worker, lease_s, list(skip_endpoints)
            )
        except raw.CONNECTION_LOST as exc:
            raise await raw.connection_lost(conn, exc) from exc
        return _claimed_pg(rows, worker)
    return await _claim_sqlite(
        conn, worker=worker, limit=limit, lease_s=lease_s, now=now, skip=skip_endpoints
    )


def _claimable(now: datetime, lease_clock: datetime) -> list[sa.ColumnElement[bool]]:
    earlier = callback_delivery.alias("earlier")
    return [
        d.status == "pending",
        d.next_attempt_at <= now,
        sa.or_(d.lease_until.is_(None), d.lease_until < lease_clock),
        sa.or_(
            d.message_id.is_(None),
            ~sa.exists().where(
                earlier.c.endpoint_id == d.endpoint_id,
                earlier.c.message_id == d.message_id,
                earlier.c.status == "pending",
                earlier.c.event_seq < d.event_seq,
            ),
        ),
    ]


async def _claim_sqlite(
    conn: AsyncConnection,
    *,
    worker: str,
    limit: int,
    lease_s: float,
    now: datetime,
    skip: Sequence[uuid.UUID],
) -> list[Claimed]:
    clock = utcnow()  # one process: its clock is the database's
    query = (
        sa.select(d.id)
        .join(callback_endpoint, e.id == d.endpoint_id)
        .where(*_claimable(now, clock), e.enabled.is_(True))
        .order_by(d.next_attempt_at)
        .limit(limit)
    )
    if skip:
        query = query.where(d.endpoint_id.not_in(list(skip)))
    ids = list((await conn.execute(query)).scalars())
    if not ids:
        return []
    claimed_ids = list(
        (
            await conn.execute(
                callback_delivery.update()
                .where(d.id.in_(ids), *_claimable(now, clock))
                .values(
                    attempts=d.attempts + 1,
                    claimed_by=worker,
                    lease_until=clock + timedelta(seconds=lease_s),
                    next_attempt_at=clock + timedelta(seconds=lease_s),
                    updated_at=now,
                )
                .returning(d.id)
            )
        ).scalars()
    )
    if not claimed_ids:
        return []
    rows = (
        (
            await conn.execute(
                sa.select(
                    d.id,
                    d.endpoint_id,
                    d.event_seq,
                    d.message_id,
                    d.attempts,
                    ev.id.label("event_id"),
                    ev.type.label("event_type"),
                    ev.occurred_at,
                    sa.type_coerce(ev.data, sa.Text).label("data"),
                    e.url,
                    e.secret,
                    e.previous_secret,
                    e.previous_secret_until,
                )
                .join(callback_event, ev.seq == d.event_seq)
                .join(callback_endpoint, e.id == d.endpoint_id)
                .where(d.id.in_(claimed_ids))
                .order_by(d.next_attempt_at, d.event_seq)
            )
        )
        .mappings()
        .all()
    )
    endpoints = {row["endpoint_id"]: _endpoint(row) for row in rows}
    return [
        Claimed(
            row["id"],
            row["endpoint_id"],
            row["event_seq"],
            row["message_id"],
            row["attempts"],
            worker,
            row["event_id"],
            row["event_type"],
            row["occurred_at"],
            row["data"],
            endpoints[row["endpoint_id"]],
        )
        for row in rows
    ]


def _endpoint(row: Any) -> Endpoint:
    return Endpoint(
        row["endpoint_id"],
        row["url"],
        row["secret"],
        row["previous_secret"],
        row["previous_secret_until"],
    )


def _claimed_pg(rows: Sequence[Any], worker: str) -> list[Claimed]:
    """The claim's rows (in _PG_CLAIM's column order), each endpoint made once, from its row
    that carries its columns."""
    endpoints = {row[1]: _endpoint(row) for row in rows if row[9] is not None}
    return [
        Claimed(
            row[0],
            row[1],
            row[2],
            row[3],
            row[4],
            worker,
            row[5],
            row[6],
            row[7],
            row[8],
            endpoints[row[1]],
        )
        for row in rows
    ]


async def extend_leases(conn: AsyncConnection, claims: Sequence[Claimed], *, lease_s: float) -> int:
    """The owner's heartbeat: push the lease of each delivery it still holds (same claim, same
    attempt, still pending) one lease ahead of the database's clock; returns how many."""
    if not claims:
        return 0
    lease_until: Any
    if is_postgres(conn):
        lease_until = sa.func.clock_timestamp() + sa.func.make_interval(0, 0, 0, 0, 0, 0, lease_s)
    else:
        lease_until = utcnow() + timedelta(seconds=lease_s)
    result = await conn.execute(
        callback_delivery.update()
        .where(
            d.status == "pending",
            sa.tuple_(d.id, d.claimed_by, d.attempts).in_(
                [(c.id, c.worker, c.attempt) for c in claims]
            ),
        )
        .values(lease_until=lease_until, next_attempt_at=lease_until)
    )
    return int(result.rowcount)
