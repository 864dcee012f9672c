"""Claims are fenced: an outcome that lost its claim changes nothing, stays visible, and the wamid
of that duplicate send stays linked to its message; a live claim keeps its lease."""

from __future__ import annotations

import asyncio

import pytest
import sqlalchemy as sa
from pydantic import ValidationError
from sqlalchemy.ext.asyncio import AsyncEngine
from test_dispatcher_cloud import TOKEN, cloud_settings

from dispatch_helpers import (
    claim_as,
    dispatcher_for,
    event_types,
    expire_leases,
    message,
    new_org,
    queue,
)
from fake_meta import FakeMeta, delay, running_fake_meta
from helpers import eventually, make_settings
from wa_outbound.config import Settings
from wa_outbound.db.schema import message_event, message_wamid, outbound_message
from wa_outbound.db.types import utcnow
from wa_outbound.dispatch import claims, outcomes
from wa_outbound.dispatch.outcomes import Outcome
from wa_outbound.receipts.statuses import StatusUpdate, apply_statuses
from wa_outbound.status import Status
from wa_outbound.whatsapp.cloud import CloudProvider

PHONE = "+33612345678"


async def _accept(engine: AsyncEngine, outcome: Outcome) -> outcomes.Written:
    async with engine.begin() as conn:
        return await outcomes.write_outcomes(conn, [outcome], now=utcnow(), actor="test")


async def test_an_outcome_that_lost_its_claim_changes_nothing_and_stays_linked(
    db_engine: AsyncEngine,
) -> None:
    org = await new_org(db_engine, PHONE)
    [message_id] = await queue(db_engine, org, PHONE)
    [late] = await claim_as(db_engine, "replica-a", now=utcnow())  # then replica A stalls
    await expire_leases(db_engine)
    async with db_engine.begin() as conn:
        assert await outcomes.reclaim_expired(conn, now=utcnow(), actor="test") == 1
    [current] = await claim_as(db_engine, "replica-b", now=utcnow())
    assert current.attempt == late.attempt + 1

    written = await _accept(db_engine, Outcome(current, Status.ACCEPTED, "accepted", "wamid.B"))
    assert written.accepted_wamids == ["wamid.B"]
    assert not written.stale_ids
    written = await _accept(db_engine, Outcome(late, Status.ACCEPTED, "accepted", "wamid.A"))
    assert written.stale_ids == {message_id}
    assert written.linked_wamids == ["wamid.A"]

    row = await message(db_engine, message_id)
    assert (row["status"], row["provider_message_id"]) == ("ACCEPTED", "wamid.B")
    assert (await event_types(db_engine, message_id))[-1] == "stale_outcome"
    async with db_engine.connect() as conn:
        details = await conn.scalar(
            sa.select(message_event.c.details).where(message_event.c.type == "stale_outcome")
        )
        linked = await conn.scalar(
            sa.select(message_wamid.c.message_id).where(
                message_wamid.c.provider_message_id == "wamid.A"
            )
        )
    assert details is not None
    assert details["provider_message_id"] == "wamid.A"
    assert details["attempt"] == late.attempt
    assert linked == message_id

    # The duplicate's statuses are recognised: applied by rank, never left pending.
    async with db_engine.begin() as conn:
        results = await apply_statuses(
            conn,
            [StatusUpdate("wamid.A", "delivered", None, None)],
            actor="webhook",
            now=utcnow(),
        )
    assert results == ["applied"]
    assert (await message(db_engine, message_id))["status"] == "DELIVERED"


async def test_a_failure_or_release_that_lost_its_claim_does_not_move_the_message(
    db_engine: AsyncEngine,
) -> None:
    org = await new_org(db_engine, PHONE)
    [message_id] = await queue(db_engine, org, PHONE)
    [late] = await claim_as(db_engine, "replica-a", now=utcnow())
    await expire_leases(db_engine)
    async with db_engine.begin() as conn:
        await outcomes.reclaim_expired(conn, now=utcnow(), actor="test")
    await claim_as(db_engine, "replica-b", now=utcnow())
    release = Outcome(
        late,
        Status(late.from_status),
        "released",
        next_attempt_at=utcnow(),
        give_back_attempt=True,
    )
    written = await _accept(db_engine, release)
    assert written.stale_ids == {message_id}
    assert written.linked_wamids == []
    row = await message(db_engine, message_id)
    assert (row["status"], row["claimed_by"], row["attempts"]) == ("SENDING", "replica-b", 2)


async def test_the_heartbeat_renews_the_leases_of_sends_in_flight(postgres_url: str) -> None:
    fake = FakeMeta(token=TOKEN)
    fake.script(PHONE, delay(0.9))
    async with running_fake_meta(fake) as base_url:
        settings = cloud_settings(postgres_url, base_url, lease_seconds=2.0)
        async with dispatcher_for(settings, CloudProvider(settings)) as dispatcher:
            org = await new_org(dispatcher.engine, PHONE)
            [message_id] = await queue(dispatcher.engine, org, PHONE)
            running = asyncio.create_task(dispatcher.run())
            try:
                await eventually(lambda: fake.received.total == 1)
                first = (await message(dispatcher.engine, message_id))["lease_until"]
                await asyncio.sleep(0.75)  # past one heartbeat (lease / 3), before the answer
                row = await message(dispatcher.engine, message_id)
            finally:
                await dispatcher.stop()
                await running
            final = await message(dispatcher.engine, message_id)
    assert row["status"] == "SENDING"
    assert row["lease_until"] > first, "the owner renewed the lease of its send in flight"
    assert final["status"] == "ACCEPTED"


async def test_renewing_leases_skips_claims_that_are_no_longer_mine(
    db_engine: AsyncEngine, settings: Settings
) -> None:
    org = await new_org(db_engine, PHONE, "+33612345679")
    ids = await queue(db_engine, org, PHONE, "+33612345679")
    mine = await claim_as(db_engine, "me", now=utcnow(), lease_s=5)
    async with db_engine.begin() as conn:  # the second claim moved on: reclaimed by another
        await conn.execute(
            outbound_message.update()
            .where(outbound_message.c.id == ids[1])
            .values(claimed_by="other")
        )
    before = {i: (await message(db_engine, i))["lease_until"] for i in ids}
    async with db_engine.begin() as conn:
        renewed = await claims.extend_leases(conn, mine, worker="me", lease_s=60)
    assert renewed == 1
    assert (await message(db_engine, ids[0]))["lease_until"] > before[ids[0]]
    assert (await message(db_engine, ids[1]))["lease_until"] == before[ids[1]]


async def test_a_lease_must_outlast_twice_the_send_timeout(database_url: str) -> None:
    with pytest.raises(ValidationError) as refused:
        make_settings(database_url, lease_seconds=15, send_timeout_seconds=10)
    assert "WA_LEASE_SECONDS (15)" in str(refused.value)
    assert "WA_SEND_TIMEOUT_SECONDS (10)" in str(refused.value)
    assert make_settings(database_url, lease_seconds=20, send_timeout_seconds=10)
