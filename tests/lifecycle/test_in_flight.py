"""A message being sent when its contact is erased finishes: its outcome lands on the redacted
row. If the outcome sends it back to waiting, it is never claimed again: it fails `expired`."""

from __future__ import annotations

from sqlalchemy.ext.asyncio import AsyncEngine

from dispatch_helpers import claim_as, message, new_org, queue
from wa_outbound.db.types import utcnow
from wa_outbound.dispatch import expiry, outcomes
from wa_outbound.dispatch.outcomes import Outcome
from wa_outbound.lifecycle.erasure import erase_contact
from wa_outbound.status import Status

PHONE = "+33612345678"


async def erase(engine: AsyncEngine, org_id: str) -> None:
    async with engine.begin() as conn:
        erased = await erase_contact(
            conn, org_id=org_id, phone=PHONE, key=b"k" * 32, shared_numbers=(), actor="test"
        )
    assert erased.messages_redacted == 1
    assert erased.messages_cancelled == 0  # it was SENDING, not waiting


async def write(engine: AsyncEngine, outcome: Outcome) -> None:
    async with engine.begin() as conn:
        await outcomes.write_outcomes(conn, [outcome], now=utcnow(), actor="test")


async def test_a_send_in_flight_lands_its_outcome_on_the_redacted_row(
    db_engine: AsyncEngine,
) -> None:
    org_id = await new_org(db_engine, PHONE)
    [message_id] = await queue(db_engine, org_id, PHONE)
    [claimed] = await claim_as(db_engine, "replica-a", now=utcnow())

    await erase(db_engine, org_id)
    await write(db_engine, Outcome(claimed, Status.ACCEPTED, "accepted", "wamid.LATE"))

    row = await message(db_engine, message_id)
    assert row["status"] == Status.ACCEPTED
    assert row["provider_message_id"] == "wamid.LATE"
    assert row["to_phone"] is None
    assert row["redacted"] is True


async def test_a_send_in_flight_that_must_wait_again_expires_instead_of_being_sent(
    db_engine: AsyncEngine,
) -> None:
    org_id = await new_org(db_engine, PHONE)
    [message_id] = await queue(db_engine, org_id, PHONE)
    [claimed] = await claim_as(db_engine, "replica-a", now=utcnow())

    await erase(db_engine, org_id)
    back = Outcome(
        claimed, Status.RETRYING, "released", next_attempt_at=utcnow(), give_back_attempt=True
    )
    await write(db_engine, back)

    assert (await message(db_engine, message_id))["status"] == Status.RETRYING
    assert await claim_as(db_engine, "replica-b", now=utcnow()) == []
    async with db_engine.begin() as conn:
        assert await expiry.expire_due(conn, now=utcnow(), actor="test") == 1
    row = await message(db_engine, message_id)
    assert row["status"] == Status.FAILED
    assert row["error_code"] == "expired"
    assert row["dead_lettered"] is False
