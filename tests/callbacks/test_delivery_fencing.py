"""Outcomes are fenced by their claim, on SQLite and PostgreSQL: an outcome that comes back
after its delivery was reset by the API and claimed again (same worker, same attempt number)
changes neither the delivery nor its endpoint; an expired lease is claimed again."""

from __future__ import annotations

from datetime import timedelta

import sqlalchemy as sa
from sqlalchemy.ext.asyncio import AsyncEngine

from callback_helpers import deliveries, endpoint_row, insert_endpoint, insert_event
from wa_outbound.callbacks import claims, outcomes
from wa_outbound.callbacks.policy import Answer, outcome_of
from wa_outbound.db.callback_schema import callback_delivery
from wa_outbound.db.types import utcnow

SCHEDULE = [5.0, 300.0]


async def test_a_stale_outcome_changes_nothing_after_the_api_reset_its_delivery(
    db_engine: AsyncEngine, org_id: str
) -> None:
    async with db_engine.begin() as conn:
        endpoint = await insert_endpoint(conn, org_id, "https://hooks.example.com/")
        await insert_event(conn, org_id, [endpoint.id])
    async with db_engine.begin() as conn:
        [first] = await claims.claim(conn, worker="w/1", limit=10, lease_s=30, now=utcnow())
    # The API enables the endpoint again meanwhile: its pending deliveries start afresh.
    async with db_engine.begin() as conn:
        await conn.execute(
            callback_delivery.update().values(
                attempts=0, next_attempt_at=utcnow() - timedelta(seconds=1)
            )
        )
        await conn.execute(callback_delivery.update().values(lease_until=None))
    async with db_engine.begin() as conn:
        [second] = await claims.claim(conn, worker="w/2", limit=10, lease_s=30, now=utcnow())
    assert (first.attempt, second.attempt) == (1, 1)
    stale = outcome_of(first, Answer(status_code=410), schedule=SCHEDULE, now=utcnow())
    async with db_engine.begin() as conn:
        written = await outcomes.write_outcomes(conn, [stale], now=utcnow(), disable_after_s=60)
    assert (written.applied, written.disabled) == (0, {})
    async with db_engine.connect() as conn:
        [row] = await deliveries(conn, endpoint.id)
        ep = await endpoint_row(conn, endpoint.id)
    assert (row.claimed_by, row.last_status_code) == ("w/2", None)
    assert ep.enabled
    current = outcome_of(second, Answer(status_code=200), schedule=SCHEDULE, now=utcnow())
    async with db_engine.begin() as conn:
        written = await outcomes.write_outcomes(conn, [current], now=utcnow(), disable_after_s=60)
    assert written.applied == 1
    async with db_engine.connect() as conn:
        [row] = await deliveries(conn, endpoint.id)
    assert (row.status, row.claimed_by) == ("succeeded", None)


async def test_a_lease_that_expired_is_claimed_again_and_the_first_claims_outcome_is_fenced(
    db_engine: AsyncEngine, org_id: str
) -> None:
    async with db_engine.begin() as conn:
        endpoint = await insert_endpoint(conn, org_id, "https://hooks.example.com/")
        await insert_event(conn, org_id, [endpoint.id])
    async with db_engine.begin() as conn:
        [dead] = await claims.claim(conn, worker="a/1", limit=10, lease_s=30, now=utcnow())
    async with db_engine.begin() as conn:
        # Held: nothing to claim.
        assert await claims.claim(conn, worker="b/1", limit=10, lease_s=30, now=utcnow()) == []
        # Its process died: the lease runs out.
        past = utcnow() - timedelta(seconds=1)
        await conn.execute(
            callback_delivery.update().values(lease_until=past, next_attempt_at=past)
        )
    async with db_engine.begin() as conn:
        [again] = await claims.claim(conn, worker="b/1", limit=10, lease_s=30, now=utcnow())
    assert again.attempt == 2
    late = outcome_of(dead, Answer(status_code=200), schedule=SCHEDULE, now=utcnow())
    async with db_engine.begin() as conn:
        written = await outcomes.write_outcomes(conn, [late], now=utcnow(), disable_after_s=60)
    assert written.applied == 0
    async with db_engine.connect() as conn:
        status = await conn.scalar(sa.select(callback_delivery.c.status))
    assert status == "pending"
