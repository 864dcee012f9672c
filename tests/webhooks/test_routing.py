"""Routing what Meta posts, on SQLite and PostgreSQL: each change to the business number it
names. A status changes only a message sent from its number; an inbound message opens the window
of the org owning the number (on the shared number: the org it replies to, else every org that
knows the user); a change for a number no sender has is stored and counted, never pending."""

from __future__ import annotations

import uuid
from datetime import timedelta
from typing import Any

import orjson
import sqlalchemy as sa
from sqlalchemy.ext.asyncio import AsyncEngine

import meta_payloads as meta
from dispatch_helpers import new_org
from factories import accept, insert_message, insert_sender, message_row
from routing_helpers import shared_sender
from wa_outbound.db.schema import (
    SHARED_SENDER_ID,
    pending_status,
    sender,
    service_window,
    webhook_event,
)
from wa_outbound.db.types import utcnow
from wa_outbound.metrics import Metrics
from wa_outbound.receipts.pending import apply_pending
from wa_outbound.webhooks import intake
from wa_outbound.webhooks.intake import Processed

X, Y = "5550000001", "5550000002"
USER = "+33612345678"


async def process(engine: AsyncEngine, body: dict[str, Any]) -> Processed:
    async with engine.begin() as conn:
        return await intake.process(conn, body, now=utcnow())


async def with_sender(engine: AsyncEngine, number: str, *phones: str) -> tuple[str, uuid.UUID]:
    """(org id, sender id): a new org, consenting `phones`, sending from `number`."""
    org_id = await new_org(engine, *phones)
    async with engine.begin() as conn:
        sender_id = await insert_sender(conn, org_id, phone_number_id=number)
    return org_id, sender_id


async def accepted_on(
    engine: AsyncEngine, org_id: str, sender_id: uuid.UUID | None, wamid: str
) -> uuid.UUID:
    async with engine.begin() as conn:
        return await insert_message(conn, org_id=org_id, wamid=wamid, sender_id=sender_id)


async def status_of(engine: AsyncEngine, message_id: uuid.UUID) -> str:
    async with engine.connect() as conn:
        return str((await message_row(conn, message_id))["status"])


def statuses_for(number: str, *statuses: dict[str, Any]) -> dict[str, Any]:
    return meta.envelope(statuses=list(statuses), phone_number_id=number)


async def windows(engine: AsyncEngine) -> set[tuple[str, uuid.UUID, str]]:
    w = service_window.c
    async with engine.connect() as conn:
        rows = await conn.execute(sa.select(w.org_id, w.sender_id, w.phone))
        return {(row.org_id, row.sender_id, row.phone) for row in rows}


async def count(engine: AsyncEngine, table: sa.Table) -> int:
    async with engine.connect() as conn:
        return int(await conn.scalar(sa.select(sa.func.count()).select_from(table)) or 0)


async def test_a_status_for_one_number_never_changes_a_message_of_another_with_the_same_wamid(
    db_engine: AsyncEngine,
) -> None:
    org_x, sender_x = await with_sender(db_engine, X)
    org_y, sender_y = await with_sender(db_engine, Y)
    on_x = await accepted_on(db_engine, org_x, sender_x, "wamid.SAME")
    on_y = await accepted_on(db_engine, org_y, sender_y, "wamid.SAME")

    processed = await process(db_engine, statuses_for(X, meta.status("wamid.SAME", "delivered")))
    assert processed.statuses == {("delivered", "applied"): 1}
    assert (await status_of(db_engine, on_x), await status_of(db_engine, on_y)) == (
        "DELIVERED",
        "ACCEPTED",
    )

    await process(db_engine, statuses_for(Y, meta.status("wamid.SAME", "read")))
    assert (await status_of(db_engine, on_x), await status_of(db_engine, on_y)) == (
        "DELIVERED",
        "READ",
    )


async def test_a_deleted_senders_late_statuses_still_apply(db_engine: AsyncEngine) -> None:
    org_id, sender_id = await with_sender(db_engine, X)
    message_id = await accepted_on(db_engine, org_id, sender_id, "wamid.LATE")
    async with db_engine.begin() as conn:
        await conn.execute(
            sender.update().where(sender.c.id == sender_id).values(deleted_at=utcnow())
        )
    processed = await process(db_engine, statuses_for(X, meta.status("wamid.LATE", "sent")))
    assert processed.unrouted == {}
    assert await status_of(db_engine, message_id) == "SENT"


async def test_the_shared_numbers_statuses_match_rows_from_before_senders(
    db_engine: AsyncEngine, org_id: str
) -> None:
    await shared_sender(db_engine)
    old = await accepted_on(db_engine, org_id, None, "wamid.OLD")  # sender_id null
    current = await accepted_on(db_engine, org_id, SHARED_SENDER_ID, "wamid.NEW")
    org_x, sender_x = await with_sender(db_engine, X)
    on_x = await accepted_on(db_engine, org_x, sender_x, "wamid.OLD")

    statuses = [meta.status("wamid.OLD", "delivered"), meta.status("wamid.NEW", "sent")]
    await process(db_engine, meta.envelope(statuses=statuses))
    assert await status_of(db_engine, old) == "DELIVERED"
    assert await status_of(db_engine, current) == "SENT"
    assert await status_of(db_engine, on_x) == "ACCEPTED"


async def test_a_change_for_a_number_no_sender_has_is_stored_counted_and_never_pending(
    db_engine: AsyncEngine,
) -> None:
    org_x, sender_x = await with_sender(db_engine, X)
    on_x = await accepted_on(db_engine, org_x, sender_x, "wamid.ANY")
    body = statuses_for("9990000009", meta.status("wamid.ANY", "read"))
    body["entry"].append(
        meta.envelope(value_extra=meta.inbound_text(USER, "hi"), phone_number_id="999")["entry"][0]
    )
    metrics = Metrics()

    processed = await intake.receive(db_engine, orjson.dumps(body), body, now=utcnow())
    assert processed is not None
    intake.count(metrics, processed)

    assert processed.unrouted == {"messages": 2}
    assert (
        metrics.registry.get_sample_value("outbound_webhook_unrouted_total", {"field": "messages"})
        == 2
    )
    assert await count(db_engine, webhook_event) == 1
    assert await count(db_engine, pending_status) == 0
    assert await windows(db_engine) == set()
    assert await status_of(db_engine, on_x) == "ACCEPTED"


async def test_a_pending_status_applies_only_to_a_message_of_its_number(
    db_engine: AsyncEngine,
) -> None:
    org_x, sender_x = await with_sender(db_engine, X)
    org_y, sender_y = await with_sender(db_engine, Y)
    processed = await process(db_engine, statuses_for(X, meta.status("wamid.EARLY", "delivered")))
    assert processed.statuses == {("delivered", "pending"): 1}
    async with db_engine.connect() as conn:
        number = await conn.scalar(sa.select(pending_status.c.phone_number_id))
    assert number == X

    on_y = await accepted_on(db_engine, org_y, sender_y, "wamid.EARLY")
    async with db_engine.begin() as conn:
        assert await apply_pending(conn, ["wamid.EARLY"], now=utcnow()) == 0
    assert await status_of(db_engine, on_y) == "ACCEPTED"
    assert await count(db_engine, pending_status) == 1

    async with db_engine.begin() as conn:
        on_x = await insert_message(conn, org_id=org_x, status="SENDING", sender_id=sender_x)
        await accept(conn, on_x, "wamid.EARLY")
        assert await apply_pending(conn, ["wamid.EARLY"], now=utcnow()) == 1
    assert await status_of(db_engine, on_x) == "DELIVERED"
    assert await status_of(db_engine, on_y) == "ACCEPTED"


async def test_an_inbound_message_opens_the_window_of_the_org_owning_the_number(
    db_engine: AsyncEngine,
) -> None:
    org_x, sender_x = await with_sender(db_engine, X, USER)
    await with_sender(db_engine, Y, USER)  # knows the user too, on another number
    await process(
        db_engine, meta.envelope(value_extra=meta.inbound_text(USER, "hi"), phone_number_id=X)
    )
    assert await windows(db_engine) == {(org_x, sender_x, USER)}


async def test_a_reply_on_the_shared_number_opens_the_window_of_the_org_it_answers(
    db_engine: AsyncEngine,
) -> None:
    await shared_sender(db_engine)
    org_a = await new_org(db_engine, USER)
    org_b = await new_org(db_engine, USER)
    await accepted_on(db_engine, org_b, SHARED_SENDER_ID, "wamid.TO_B")

    reply = meta.inbound_reply(USER, "yes", replied_wamid="wamid.TO_B")
    await process(db_engine, meta.envelope(value_extra=reply))
    assert await windows(db_engine) == {(org_b, SHARED_SENDER_ID, USER)}

    # A message that replies to none of ours opens the window of every org knowing the user.
    await process(db_engine, meta.envelope(value_extra=meta.inbound_text(USER, "hello")))
    assert await windows(db_engine) == {
        (org_a, SHARED_SENDER_ID, USER),
        (org_b, SHARED_SENDER_ID, USER),
    }


async def test_a_window_only_moves_forward(db_engine: AsyncEngine) -> None:
    await with_sender(db_engine, X, USER)
    value = meta.inbound_text(USER, "late")
    value["messages"][0]["timestamp"] = str(int((utcnow() - timedelta(hours=2)).timestamp()))
    await process(
        db_engine, meta.envelope(value_extra=meta.inbound_text(USER, "now"), phone_number_id=X)
    )
    await process(db_engine, meta.envelope(value_extra=value, phone_number_id=X))
    async with db_engine.connect() as conn:
        at = await conn.scalar(sa.select(service_window.c.last_inbound_at))
    assert at is not None
    assert utcnow() - at < timedelta(minutes=5)
