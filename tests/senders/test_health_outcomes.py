"""A pause outcome keeps the fencing of every outcome write, on SQLite and PostgreSQL: a send
error of the sender pauses it even when the claim was lost meanwhile (a fact about the sender),
but only the current claim's outcome sends the message back to waiting."""

from __future__ import annotations

import sqlalchemy as sa
from sqlalchemy.ext.asyncio import AsyncEngine

from dispatch_helpers import claim_as, event_types, expire_leases, message, new_org, queue
from factories import insert_sender
from wa_outbound.db.schema import sender
from wa_outbound.db.types import utcnow
from wa_outbound.dispatch import outcomes
from wa_outbound.dispatch.claims import Claimed
from wa_outbound.dispatch.outcomes import Outcome
from wa_outbound.dispatch.policy import outcome_of
from wa_outbound.whatsapp.provider import SendResult
from wa_outbound.whatsapp.retry import ProviderError

PHONE = "+33612345678"
REVOKED = ProviderError(code="190", title="OAuthException", message="expired", http_status=401)


def refused(claim: Claimed) -> Outcome:
    return outcome_of(claim, SendResult(error=REVOKED), now=utcnow(), base_s=1, max_s=10)


async def write(engine: AsyncEngine, outcome: Outcome) -> outcomes.Written:
    async with engine.begin() as conn:
        return await outcomes.write_outcomes(conn, [outcome], now=utcnow(), actor="test")


async def test_a_lost_claims_token_error_pauses_the_sender_but_leaves_the_message_alone(
    db_engine: AsyncEngine,
) -> None:
    org = await new_org(db_engine, PHONE)
    async with db_engine.begin() as conn:
        sender_id = await insert_sender(conn, org)
    [message_id] = await queue(db_engine, org, PHONE)
    [late] = await claim_as(db_engine, "replica-a", now=utcnow())
    assert late.sender_id == sender_id
    await expire_leases(db_engine)
    async with db_engine.begin() as conn:
        await outcomes.reclaim_expired(conn, now=utcnow(), actor="test")
    [current] = await claim_as(db_engine, "replica-b", now=utcnow())

    written = await write(db_engine, refused(late))
    assert written.stale_ids == {message_id}
    row = await message(db_engine, message_id)
    assert (row["status"], row["claimed_by"], row["attempts"]) == ("SENDING", "replica-b", 2)
    async with db_engine.connect() as conn:
        reasons = await conn.scalar(
            sa.select(sender.c.paused_reasons).where(sender.c.id == sender_id)
        )
    assert reasons == ["token_invalid"]

    written = await write(db_engine, refused(current))
    assert not written.stale_ids
    row = await message(db_engine, message_id)
    assert (row["status"], row["attempts"], row["waiting_reason"], row["claimed_by"]) == (
        "RETRYING",
        1,
        "sender_paused",
        None,
    )
    assert not row["dead_lettered"]
    assert (await event_types(db_engine, message_id))[-2:] == ["stale_outcome", "sender_paused"]
