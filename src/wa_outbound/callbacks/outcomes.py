"""Writing delivery outcomes back: a few statements per batch, never one per delivery.

The deliveries' statement is fenced by each claim's token (owner and attempt, still pending): an
outcome whose lease expired and whose delivery another replica took again changes nothing. The
endpoints' statements are not fenced: what an answer says of an endpoint (it works, it fails,
it is gone) is true whichever claim got it.
"""

from __future__ import annotations

import uuid
from collections.abc import Sequence
from dataclasses import dataclass
from datetime import datetime, timedelta
from typing import Any

import sqlalchemy as sa
from sqlalchemy.ext.asyncio import AsyncConnection

from wa_outbound.callbacks.policy import Outcome
from wa_outbound.db.callback_schema import callback_delivery, callback_endpoint
from wa_outbound.db.dialect import is_postgres

d = callback_delivery.c
e = callback_endpoint.c

# last_success_at is written at most this often per endpoint: a busy endpoint's row is not
# rewritten for every delivery (it only decides, in days, whether the endpoint is failing).
SUCCESS_RESOLUTION = timedelta(seconds=1)

_PG_DELIVERIES = sa.text(
    """
    UPDATE callback_delivery AS c
    SET status = o.status, next_attempt_at = o.next_at, last_status_code = o.code,
        last_error = o.error, lease_until = NULL, claimed_by = NULL, updated_at = :now,
        delivered_at = CASE WHEN o.status = 'succeeded' THEN :now ELSE c.delivered_at END
    FROM unnest(CAST(:ids AS uuid[]), CAST(:attempts AS integer[]), CAST(:statuses AS text[]),
                CAST(:next_ats AS timestamptz[]), CAST(:codes AS integer[]),
                CAST(:errors AS text[])) AS o(id, attempts, status, next_at, code, error)
    WHERE c.id = o.id AND c.attempts = o.attempts AND c.claimed_by = :worker
      AND c.status = 'pending'
    """
).bindparams(sa.bindparam("now", type_=d.updated_at.type))

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
    """Apply a batch of outcomes (all of one worker) and what they say of their endpoints."""
    if not outcomes:
        return Written(0, {})
    applied = await _write_deliveries(conn, outcomes, now=now)
    working = sorted({o.delivery.endpoint_id for o in outcomes if o.succeeded})
    # A claim given back at shutdown says nothing of its endpoint.
    failed = {
        o.delivery.endpoint_id for o in outcomes if not o.succeeded and o.result != "released"
    }
    failing = sorted(failed - set(working))
    gone = sorted({o.delivery.endpoint_id for o in outcomes if o.gone})
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
                e.id.in_(failing),
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
    return Written(applied, disabled)


async def _write_deliveries(
    conn: AsyncConnection, outcomes: Sequence[Outcome], *, now: datetime
) -> int:
    worker = outcomes[0].delivery.worker
    if is_postgres(conn):
        params: dict[str, Any] = {
            "now": now,
            "worker": worker,
            "ids": [o.delivery.id for o in outcomes],
            "attempts": [o.delivery.attempt for o in outcomes],
            "statuses": [o.status for o in outcomes],
            "next_ats": [o.next_attempt_at for o in outcomes],
            "codes": [o.status_code for o in outcomes],
            "errors": [o.error for o in outcomes],
        }
        return int((await conn.execute(_PG_DELIVERIES, params)).rowcount)
    result = await conn.execute(
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
            }
            for o in outcomes
        ],
    )
    return int(result.rowcount)
