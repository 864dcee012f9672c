"""Writing new outbox rows and their `queued` events.

On PostgreSQL in one statement: the rows travel as one array per column (asyncpg encodes them in
C) and PostgreSQL unnests them, with no per-row statement compilation or bind processing in
Python, which made up most of a batch enqueue's CPU through SQLAlchemy (see
docs/performance.md). On SQLite: an executemany and the events after it.
"""

from __future__ import annotations

import uuid
from datetime import datetime
from typing import Any

import orjson
from sqlalchemy.ext.asyncio import AsyncConnection

from wa_outbound.db import raw
from wa_outbound.db.dialect import insert, is_postgres
from wa_outbound.db.schema import outbound_message
from wa_outbound.events import message_event_row, record_message_events
from wa_outbound.status import Status

# ON CONFLICT skips a row whose idempotency key is taken (the caller resolves it as a replay);
# only the rows really inserted get their event, through the join on `inserted`.
_INSERT = """
WITH inserted AS (
    INSERT INTO outbound_message (
        id, org_id, channel, to_phone, kind, payload, message_metadata, idempotency_key,
        request_hash, status, attempts, max_attempts, next_attempt_at, dead_lettered,
        created_at, updated_at, sender_id, waiting_reason, expires_at)
    SELECT t.id, $2, $3, t.to_phone, t.kind, t.payload::jsonb, t.meta::jsonb, t.ikey, t.rhash,
           'QUEUED', 0, $4, t.next_at, false, $5, $5, t.sender_id, t.waiting, t.expires_at
    FROM unnest($1::uuid[], $6::text[], $7::text[], $8::text[], $9::text[], $10::text[],
                $11::text[], $12::timestamptz[], $15::uuid[], $16::text[], $17::timestamptz[])
         AS t(id, to_phone, kind, payload, meta, ikey, rhash, next_at, sender_id, waiting,
              expires_at)
    ON CONFLICT (org_id, idempotency_key) DO NOTHING
    RETURNING id
), event AS (
    INSERT INTO message_event (message_id, org_id, at, type, to_status, actor, details)
    SELECT i.id, $2, $5, 'queued', 'QUEUED', $13, d.details::jsonb
    FROM inserted i JOIN unnest($1::uuid[], $14::text[]) AS d(id, details) ON d.id = i.id
)
SELECT id FROM inserted
"""


def queued_details(row: dict[str, Any], now: datetime) -> dict[str, Any]:
    """The details of a message's `queued` event."""
    if row["next_attempt_at"] > now:
        return {"send_after": row["next_attempt_at"].isoformat()}
    return {}


async def insert_new(
    conn: AsyncConnection, org_id: str, rows: list[dict[str, Any]], *, now: datetime, actor: str
) -> set[uuid.UUID]:
    """Insert the rows that are not idempotent replays, each with its `queued` event; return
    the ids inserted."""
    details = [queued_details(row, now) for row in rows]
    if is_postgres(conn):  # one statement for the rows and their events
        return await _insert_postgres(conn, rows, details=details, now=now, actor=actor)
    inserted = await _insert_rows(conn, rows)
    events = [
        message_event_row(
            message_id=row["id"],
            org_id=org_id,
            at=now,
            type="queued",
            actor=actor,
            to_status=Status.QUEUED,
            details=detail,
        )
        for row, detail in zip(rows, details, strict=True)
        if row["id"] in inserted
    ]
    await record_message_events(conn, events)
    return inserted


async def _insert_postgres(
    conn: AsyncConnection,
    rows: list[dict[str, Any]],
    *,
    details: list[dict[str, Any]],
    now: datetime,
    actor: str,
) -> set[uuid.UUID]:
    """Insert `rows` (from `outbox.new_row`, one org, all created `now`) with their events;
    return the ids inserted. Runs in the caller's transaction, which must have begun (the
    caller has already read through `conn`)."""
    if not rows:
        return set()
    first = rows[0]
    try:
        records = await (await raw.driver(conn)).fetch(
            _INSERT,
            [r["id"] for r in rows],
            first["org_id"],
            first["channel"],
            first["max_attempts"],
            now,
            [r["to_phone"] for r in rows],
            [r["kind"] for r in rows],
            [orjson.dumps(r["payload"]).decode() for r in rows],
            [orjson.dumps(r["message_metadata"]).decode() for r in rows],
            [r["idempotency_key"] for r in rows],
            [r["request_hash"] for r in rows],
            [r["next_attempt_at"] for r in rows],
            actor,
            [orjson.dumps(d).decode() for d in details],
            [r["sender_id"] for r in rows],
            [r["waiting_reason"] for r in rows],
            [r["expires_at"] for r in rows],
        )
    except raw.CONNECTION_LOST as exc:
        raise await raw.connection_lost(conn, exc) from exc
    return {record["id"] for record in records}


async def _insert_rows(conn: AsyncConnection, rows: list[dict[str, Any]]) -> set[uuid.UUID]:
    if not rows:
        return set()
    # Executemany: SQLAlchemy compiles the statement once (cached) and sends the rows in
    # multi-row batches under the drivers' bind-parameter limits. `.values(rows)` would compile
    # a fresh 500-row statement per call: 65 % of a batch enqueue's CPU when measured.
    stmt = (
        insert(conn, outbound_message)
        .on_conflict_do_nothing(
            index_elements=[outbound_message.c.org_id, outbound_message.c.idempotency_key]
        )
        .returning(outbound_message.c.id)
    )
    return {row.id for row in await conn.execute(stmt, rows)}
