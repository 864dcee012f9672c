"""Applying stored webhook bodies: many in one transaction, each alone when that fails.

A body is applied in the transaction that marks it processed (`processed_at`), so a crash
before that commit leaves it unprocessed for the sweep, and one after it leaves nothing to do.
The rows are claimed with `FOR UPDATE SKIP LOCKED` where still unprocessed, so the applier of
the replica that stored them and any replica's sweep never apply one twice. A batch that fails
(one body the code cannot handle, a deadlock) rolls back whole; its bodies are then applied one
transaction each, and a body that fails alone keeps its error for the sweep's next attempt.
"""

from __future__ import annotations

from collections.abc import Sequence
from dataclasses import dataclass, field
from datetime import datetime
from typing import Any

import sqlalchemy as sa
from sqlalchemy.dialects import postgresql
from sqlalchemy.ext.asyncio import AsyncConnection, AsyncEngine

from wa_outbound.contacts.keywords import DEFAULT_KEYWORDS, Keywords
from wa_outbound.db.schema import webhook_event
from wa_outbound.webhooks import intake, payload
from wa_outbound.webhooks.intake import Processed

w = webhook_event.c


@dataclass(frozen=True, slots=True)
class StoredBody:
    """A committed `webhook_event` row: its decoded body, or the raw bytes to decode."""

    id: int
    body: dict[str, Any] | None = None
    raw: bytes | None = None


@dataclass
class Applied:
    """What applying some stored bodies did: one `Processed` per transaction that committed."""

    processed: list[Processed] = field(default_factory=list)
    bodies: int = 0  # bodies applied (by this call; another replica's are not counted)
    failed: int = 0  # bodies whose processing failed (kept, with the error, for the sweep)


async def apply_batch(
    engine: AsyncEngine,
    bodies: Sequence[StoredBody],
    *,
    now: datetime,
    keywords: Keywords = DEFAULT_KEYWORDS,
) -> Applied:
    """Apply these stored bodies (those still unprocessed and not held by another replica) in
    one transaction; if it fails, each alone."""
    outcome = Applied()
    decoded: list[tuple[int, payload.WebhookContent]] = []
    for item in bodies:
        try:
            body = item.body if item.body is not None else intake.load(item.raw or b"")
            decoded.append((item.id, payload.parse(body)))
        except Exception as exc:  # a stored body that is not a JSON object: it fails alone
            await _record_failure(engine, item.id, intake.failure(exc, item.id))
            outcome.failed += 1
    if not decoded:
        return outcome
    try:
        async with engine.begin() as conn:
            claimed = await _claim(conn, [event_id for event_id, _ in decoded], now)
            contents = [content for event_id, content in decoded if event_id in claimed]
            if contents:
                merged = payload.merge(contents)
                processed = await intake.process_content(conn, merged, now=now, keywords=keywords)
                outcome.processed.append(processed)
            outcome.bodies += len(contents)
        return outcome
    except Exception as exc:  # one at a time below; logged there if a body fails alone
        if len(decoded) == 1:
            await _record_failure(engine, decoded[0][0], intake.failure(exc, decoded[0][0]))
            outcome.failed += 1
            return outcome
    for event_id, _content in decoded:
        alone = await apply_one(engine, event_id, now=now, keywords=keywords)
        outcome.processed += alone.processed
        outcome.bodies += alone.bodies
        outcome.failed += alone.failed
    return outcome


async def apply_one(
    engine: AsyncEngine, event_id: int, *, now: datetime, keywords: Keywords = DEFAULT_KEYWORDS
) -> Applied:
    """Apply one stored body in a transaction of its own, reading it again from its row."""
    outcome = Applied()
    try:
        async with engine.begin() as conn:
            raw = (
                await conn.execute(
                    sa.select(w.body)
                    .where(w.id == event_id, w.processed_at.is_(None))
                    .with_for_update(skip_locked=True)
                )
            ).scalar_one_or_none()
            if raw is None:  # applied meanwhile, or held by another replica
                return outcome
            processed = await intake.process(conn, intake.load(raw), now=now, keywords=keywords)
            await _record_attempt(conn, event_id, processed_at=now, last_error=None)
        outcome.processed.append(processed)
        outcome.bodies = 1
    except Exception as exc:  # recorded on the row; retried by the sweep until max_attempts
        await _record_failure(engine, event_id, intake.failure(exc, event_id))
        outcome.failed = 1
    return outcome


async def reprocess(
    engine: AsyncEngine,
    *,
    received_before: datetime,
    max_attempts: int,
    limit: int,
    now: datetime,
    keywords: Keywords = DEFAULT_KEYWORDS,
) -> Applied:
    """Apply the stored bodies still unprocessed (a failed processing, or a replica that stopped
    between storing and applying), oldest first, at most `limit`."""
    async with engine.connect() as conn:
        rows = await conn.execute(
            sa.select(w.id, w.body)
            .where(
                w.processed_at.is_(None),
                w.received_at < received_before,
                w.attempts < max_attempts,
            )
            .order_by(w.id)
            .limit(limit)
        )
        todo = [StoredBody(row.id, raw=row.body) for row in rows]
    if not todo:
        return Applied()
    return await apply_batch(engine, todo, now=now, keywords=keywords)


async def _claim(conn: AsyncConnection, ids: list[int], now: datetime) -> set[int]:
    """Mark these rows processed, where still unprocessed and not locked by another
    transaction; the ids marked. The mark commits only with the effects."""
    if conn.dialect.name == "postgresql":  # one statement text whatever the number of ids
        wanted = w.id == sa.any_(sa.literal(ids, type_=postgresql.ARRAY(sa.BigInteger())))
    else:
        wanted = w.id.in_(ids)
    held = sa.select(w.id).where(wanted, w.processed_at.is_(None)).with_for_update(skip_locked=True)
    result = await conn.execute(
        webhook_event.update()
        .where(w.id.in_(held.scalar_subquery()))
        .values(processed_at=now, attempts=w.attempts + 1, last_error=None)
        .returning(w.id)
    )
    return set(result.scalars())


async def _record_failure(engine: AsyncEngine, event_id: int, error: str) -> None:
    async with engine.begin() as conn:
        await _record_attempt(conn, event_id, processed_at=None, last_error=error)


async def _record_attempt(
    conn: AsyncConnection, event_id: int, *, processed_at: datetime | None, last_error: str | None
) -> None:
    await conn.execute(
        webhook_event.update()
        .where(w.id == event_id, w.processed_at.is_(None))
        .values(attempts=w.attempts + 1, processed_at=processed_at, last_error=last_error)
    )
