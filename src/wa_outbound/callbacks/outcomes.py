"""Writing delivery outcomes back: a few statements per batch, never one per delivery.

Every write is fenced by the claim that produced it (its `claimed_by`, unique per claim, and its
attempt, still pending): an outcome whose lease expired and whose delivery was taken again, or
whose delivery the API reset meanwhile (an endpoint enabled again, a recover), changes nothing,
neither the delivery nor its endpoint. What the outcomes that hold say of their endpoints is
written with them: it works (last success), it fails (since when), it is gone or has failed for
too long (disabled).
"""

from __future__ import annotations

import uuid
from collections.abc import Sequence
from dataclasses import dataclass
from datetime import datetime, timedelta

import orjson
import sqlalchemy as sa
from sqlalchemy.ext.asyncio import AsyncConnection

from wa_outbound.callbacks.policy import Outcome
from wa_outbound.db import raw
from wa_outbound.db.callback_schema import callback_delivery, callback_endpoint
from wa_outbound.db.dialect import is_postgres

d = callback_delivery.c
e = callback_endpoint.c

# last_success_at is written at most this often per endpoint: a busy endpoint's row is not
# rewritten for every delivery (it only decides, in days, whether the endpoint is failing).
SUCCESS_RESOLUTION = timedelta(seconds=1)

# The whole batch in one statement (and one round trip, outside any transaction): the fenced
# deliveries, then the endpoints that worked, and those that failed, which it may disable (`gone`
# at once, `failing` after $3). An endpoint is in at most one of the two updates. The outcomes
# come as one JSON array ($2): the driver encodes a text several times faster than nine arrays.
_PG_WRITE = """
WITH o AS (
    SELECT * FROM json_to_recordset($2::json) AS o(
        id uuid, attempts integer, status text, next_at timestamptz, code integer, error text,
        claimed_by text, result text, given_back integer)
), applied AS (
    UPDATE callback_delivery AS c
    SET status = o.status, next_attempt_at = o.next_at, last_status_code = o.code,
        last_error = o.error, lease_until = NULL, claimed_by = NULL, updated_at = $1,
        delivered_at = CASE WHEN o.status = 'succeeded' THEN $1 ELSE c.delivered_at END,
        attempts = c.attempts - o.given_back
    FROM o
    WHERE c.id = o.id AND c.attempts = o.attempts AND c.claimed_by = o.claimed_by
      AND c.status = 'pending'
    RETURNING c.endpoint_id, o.result
), gone AS (
    SELECT DISTINCT endpoint_id AS id FROM applied WHERE result = 'gone'
), works AS (
    SELECT DISTINCT endpoint_id AS id FROM applied WHERE result = 'succeeded'
    EXCEPT SELECT id FROM gone
), fails AS (
    -- A claim given back at shutdown says nothing of its endpoint.
    (SELECT endpoint_id AS id FROM applied WHERE result NOT IN ('succeeded', 'released')
     EXCEPT SELECT id FROM works)
    UNION SELECT id FROM gone
), working AS (
    UPDATE callback_endpoint AS e SET last_success_at = $1, failing_since = NULL
    FROM works
    WHERE e.id = works.id
      AND (e.failing_since IS NOT NULL OR e.last_success_at IS NULL OR e.last_success_at < $4)
    RETURNING e.id
), failing AS (
    UPDATE callback_endpoint AS e
    SET failing_since = COALESCE(e.failing_since, $1),
        enabled = e.enabled AND NOT f.disable,
        disabled_reason = CASE WHEN e.enabled AND f.disable THEN f.reason
                               ELSE e.disabled_reason END,
        updated_at = CASE WHEN e.enabled AND f.disable THEN $1 ELSE e.updated_at END
    FROM (
        SELECT x.id,
               x.id IN (SELECT id FROM gone) OR COALESCE(x.failing_since <= $3, false)
                   AS disable,
               CASE WHEN x.id IN (SELECT id FROM gone) THEN 'gone' ELSE 'failing' END AS reason
        FROM callback_endpoint AS x
        WHERE x.id IN (SELECT id FROM fails)
    ) AS f
    WHERE e.id = f.id AND (e.failing_since IS NULL OR (e.enabled AND f.disable))
    RETURNING e.id, e.disabled_reason, (NOT e.enabled AND f.disable AND e.updated_at = $1)
        AS disabled_now
)
SELECT (SELECT count(*) FROM applied) AS applied,
       (SELECT count(*) FROM working) AS working,
       (SELECT json_agg(json_build_array(id, disabled_reason)) FROM failing
        WHERE disabled_now) AS disabled
"""

_b = sa.bindparam
_SQLITE_DELIVERY = (
    callback_delivery.update()
    .where(
        d.id == _b("b_id"),
        d.attempts == _b("b_attempt"),
        d.claimed_by == _b("b_worker"),
        d.status == "pending",
    )
    .values(
        status=_b("b_status"),
        next_attempt_at=_b("b_next", type_=d.next_attempt_at.type),
        last_status_code=_b("b_code"),
        last_error=_b("b_error"),
        lease_until=None,
        claimed_by=None,
        updated_at=_b("b_now", type_=d.updated_at.type),
        delivered_at=_b("b_delivered", type_=d.delivered_at.type),
        attempts=d.attempts - _b("b_given_back"),
    )
)


@dataclass(frozen=True, slots=True)
class Written:
    applied: int
    """Outcomes whose claim still held."""
    disabled: dict[uuid.UUID, str]
    """Endpoints this batch disabled, with the reason (gone, failing)."""


async def write_outcomes(
    conn: AsyncConnection,
    outcomes: Sequence[Outcome],
    *,
    now: datetime,
    disable_after_s: float,
) -> Written:
    """Apply the batch's outcomes whose claim still holds, and what they say of their
    endpoints."""
    if not outcomes:
        return Written(0, {})
    if is_postgres(conn):
        return await _write_pg(conn, outcomes, now=now, disable_after_s=disable_after_s)
    return await _write_sqlite(conn, outcomes, now=now, disable_after_s=disable_after_s)


async def _write_pg(
    conn: AsyncConnection, outcomes: Sequence[Outcome], *, now: datetime, disable_after_s: float
) -> Written:
    try:
        row = await (await raw.driver(conn)).fetchrow(
            _PG_WRITE,
            now,
            _as_json(outcomes),
            now - timedelta(seconds=disable_after_s),
            now - SUCCESS_RESOLUTION,
        )
    except raw.CONNECTION_LOST as exc:
        raise await raw.connection_lost(conn, exc) from exc
    disabled = {uuid.UUID(str(i)): str(r) for i, r in orjson.loads(row["disabled"] or "[]")}
    return Written(int(row["applied"]), disabled)


def _as_json(outcomes: Sequence[Outcome]) -> str:
    return orjson.dumps(
        [
            {
                "id": str(o.delivery.id),  # the driver's UUID, which orjson does not take
                "attempts": o.delivery.attempt,
                "status": o.status,
                "next_at": o.next_attempt_at,
                "code": o.status_code,
                "error": o.error,
                "claimed_by": o.delivery.worker,
                "result": o.result,
                "given_back": 0 if o.attempted else 1,
            }
            for o in outcomes
        ],
        option=orjson.OPT_UTC_Z,
    ).decode()


async def _write_sqlite(
    conn: AsyncConnection, outcomes: Sequence[Outcome], *, now: datetime, disable_after_s: float
) -> Written:
    """The same in a few statements (SQLite: one writer, this transaction holds it)."""
    tokens = [(o.delivery.id, o.delivery.worker, o.delivery.attempt) for o in outcomes]
    held = set(
        (
            await conn.execute(
                sa.select(d.id).where(
                    d.status == "pending", sa.tuple_(d.id, d.claimed_by, d.attempts).in_(tokens)
                )
            )
        ).scalars()
    )
    current = [o for o in outcomes if o.delivery.id in held]
    if not current:
        return Written(0, {})
    await conn.execute(
        _SQLITE_DELIVERY,
        [
            {
                "b_id": o.delivery.id,
                "b_attempt": o.delivery.attempt,
                "b_worker": o.delivery.worker,
                "b_status": o.status,
                "b_next": o.next_attempt_at,
                "b_code": o.status_code,
                "b_error": o.error,
                "b_now": now,
                "b_delivered": now if o.succeeded else None,
                "b_given_back": 0 if o.attempted else 1,
            }
            for o in current
        ],
    )
    gone = {o.delivery.endpoint_id for o in current if o.gone}
    working = {o.delivery.endpoint_id for o in current if o.succeeded} - gone
    # A claim given back at shutdown says nothing of its endpoint.
    failed = {o.delivery.endpoint_id for o in current if not o.succeeded and o.result != "released"}
    failing = (failed - working) | gone
    disabled: dict[uuid.UUID, str] = {}
    if working:
        await conn.execute(
            callback_endpoint.update()
            .where(
                e.id.in_(working),
                sa.or_(
                    e.failing_since.is_not(None),
                    e.last_success_at.is_(None),
                    e.last_success_at < now - SUCCESS_RESOLUTION,
                ),
            )
            .values(last_success_at=now, failing_since=None)
        )
    if failing:
        await conn.execute(
            callback_endpoint.update()
            .where(e.id.in_(failing), e.failing_since.is_(None))
            .values(failing_since=now)
        )
        rows = await conn.execute(
            callback_endpoint.update()
            .where(
                e.id.in_(failing - gone),
                e.enabled.is_(True),
                e.failing_since <= now - timedelta(seconds=disable_after_s),
            )
            .values(enabled=False, disabled_reason="failing", updated_at=now)
            .returning(e.id)
        )
        disabled |= dict.fromkeys(rows.scalars(), "failing")
    if gone:
        rows = await conn.execute(
            callback_endpoint.update()
            .where(e.id.in_(gone), e.enabled.is_(True))
            .values(enabled=False, disabled_reason="gone", updated_at=now)
            .returning(e.id)
        )
        disabled |= dict.fromkeys(rows.scalars(), "gone")
    return Written(len(current), disabled)
