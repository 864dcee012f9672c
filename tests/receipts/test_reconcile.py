"""Statuses recognised by their `biz_opaque_callback_data` on SQLite and PostgreSQL: only a message
of the status's own number, not while it is being sent (the status waits, and the sweep applies
it once the message waits again), and statuses naming users by business-scoped id."""

from __future__ import annotations

import dataclasses
import uuid
from typing import Any

import sqlalchemy as sa
from sqlalchemy.ext.asyncio import AsyncEngine

import meta_payloads as meta
from factories import insert_message, insert_sender, message_row
from wa_outbound.db.schema import message_event, outbound_message, pending_status
from wa_outbound.db.types import utcnow
from wa_outbound.receipts.pending import apply_known_pending
from wa_outbound.receipts.statuses import PENDING, StatusUpdate, apply_statuses
from wa_outbound.webhooks.payload import parse


async def sender_and_message(
    db_engine: AsyncEngine, org_id: str, number: str, **columns: Any
) -> uuid.UUID:
    """A message from the sender of `number` whose send's answer was lost: no wamid yet."""
    async with db_engine.begin() as conn:
        sender_id = await insert_sender(conn, org_id, phone_number_id=number)
        values = {"status": "RETRYING", "waiting_reason": "send_unknown"} | columns
        return await insert_message(conn, org_id=org_id, sender_id=sender_id, **values)


def named(message_id: uuid.UUID, number: str, status: str = "sent") -> StatusUpdate:
    return StatusUpdate(
        provider_message_id=f"wamid.{uuid.uuid4().hex}",
        status=status,
        at=utcnow(),
        error=None,
        phone_number_id=number,
        callback_data=str(message_id),
    )


async def apply(db_engine: AsyncEngine, *updates: StatusUpdate) -> list[str]:
    async with db_engine.begin() as conn:
        return await apply_statuses(conn, list(updates), actor="webhook", now=utcnow())


async def row(db_engine: AsyncEngine, message_id: uuid.UUID) -> dict[str, Any]:
    async with db_engine.connect() as conn:
        return await message_row(conn, message_id)


async def test_a_status_of_another_number_never_reconciles_a_message(
    db_engine: AsyncEngine, org_id: str
) -> None:
    message_id = await sender_and_message(db_engine, org_id, "111000111")
    async with db_engine.begin() as conn:
        await insert_sender(conn, org_id, phone_number_id="222000222")

    assert await apply(db_engine, named(message_id, "222000222")) == [PENDING]

    waiting = await row(db_engine, message_id)
    assert (waiting["status"], waiting["provider_message_id"]) == ("RETRYING", None)


async def test_callback_data_that_names_no_message_leaves_the_status_pending(
    db_engine: AsyncEngine, org_id: str
) -> None:
    message_id = await sender_and_message(db_engine, org_id, "111000111")
    strangers = [named(message_id, "111000111"), named(uuid.uuid4(), "111000111")]
    strangers[0] = dataclasses.replace(strangers[0], callback_data="order-42")
    assert await apply(db_engine, *strangers) == [PENDING, PENDING]
    assert (await row(db_engine, message_id))["status"] == "RETRYING"


async def test_a_status_while_the_message_is_being_sent_waits_then_the_sweep_reconciles_it(
    db_engine: AsyncEngine, org_id: str
) -> None:
    message_id = await sender_and_message(
        db_engine, org_id, "111000111", status="SENDING", waiting_reason=None
    )
    update = named(message_id, "111000111", "delivered")
    assert await apply(db_engine, update) == [PENDING]
    async with db_engine.begin() as conn:
        assert await apply_known_pending(conn, now=utcnow(), limit=10) == 0  # still sending
        # The send's outcome is written: its answer was lost.
        await conn.execute(
            outbound_message.update()
            .where(outbound_message.c.id == message_id)
            .values(status="RETRYING", waiting_reason="send_unknown")
        )
    async with db_engine.begin() as conn:
        assert await apply_known_pending(conn, now=utcnow(), limit=10) == 1

    reconciled = await row(db_engine, message_id)
    assert (reconciled["status"], reconciled["provider_message_id"]) == (
        "DELIVERED",
        update.provider_message_id,
    )
    assert reconciled["waiting_reason"] is None
    async with db_engine.connect() as conn:
        assert await conn.scalar(sa.select(sa.func.count()).select_from(pending_status)) == 0
        types = (
            await conn.execute(
                sa.select(message_event.c.type)
                .where(message_event.c.message_id == message_id)
                .order_by(message_event.c.id)
            )
        ).scalars()
        assert list(types) == ["reconciled", "status.delivered"]


async def test_a_status_with_only_a_business_scoped_user_id_is_processed(
    db_engine: AsyncEngine, org_id: str
) -> None:
    wamid = f"wamid.{uuid.uuid4().hex}"
    async with db_engine.begin() as conn:
        message_id = await insert_message(conn, org_id=org_id, wamid=wamid)
    item = meta.status(wamid, "delivered", recipient_id=None)
    item["recipient_user_id"] = "US.13491208655302741918"
    [update] = parse(meta.envelope(statuses=[item])).statuses
    assert (update.recipient_id, update.recipient_user_id) == (None, "US.13491208655302741918")

    assert await apply(db_engine, dataclasses.replace(update, phone_number_id=None))
    assert (await row(db_engine, message_id))["status"] == "DELIVERED"
    async with db_engine.connect() as conn:
        details = (
            await conn.execute(
                sa.select(message_event.c.details).where(message_event.c.message_id == message_id)
            )
        ).scalar_one()
    assert details["recipient_user_id"] == "US.13491208655302741918"


def test_the_callback_data_is_read_from_a_status() -> None:
    message_id = str(uuid.uuid4())
    item = meta.status("wamid.X", "sent", callback_data=message_id)
    [update] = parse(meta.envelope(statuses=[item])).statuses
    assert update.callback_data == message_id
    assert str(update.named_id) == message_id


async def test_a_status_naming_a_cancelled_message_stays_pending_and_untaken(
    db_engine: AsyncEngine, org_id: str
) -> None:
    message_id = await sender_and_message(
        db_engine, org_id, "111000111", status="CANCELLED", waiting_reason=None
    )
    assert await apply(db_engine, named(message_id, "111000111")) == [PENDING]
    async with db_engine.connect() as conn:
        first = (await conn.execute(sa.select(pending_status.c.id))).scalar_one()
    async with db_engine.begin() as conn:
        assert await apply_known_pending(conn, now=utcnow(), limit=10) == 0
    async with db_engine.connect() as conn:
        # Still the same row: it was not taken and stored again (which would renew its age).
        assert (await conn.execute(sa.select(pending_status.c.id))).scalar_one() == first
    assert (await row(db_engine, message_id))["status"] == "CANCELLED"
