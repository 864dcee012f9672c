"""Status application on SQLite and PostgreSQL: ranks, failures, pending statuses, the timeline."""

from __future__ import annotations

import asyncio
import itertools
import uuid
from datetime import UTC, datetime, timedelta
from typing import Any

import sqlalchemy as sa
from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st
from sqlalchemy.ext.asyncio import AsyncEngine

from factories import accept, insert_message, message_row
from wa_outbound.db.schema import message_event, pending_status
from wa_outbound.db.schema import outbound_message as om
from wa_outbound.db.types import utcnow
from wa_outbound.receipts.pending import apply_pending
from wa_outbound.receipts.statuses import StatusUpdate, apply_statuses

T0 = datetime(2026, 11, 30, 9, 0, tzinfo=UTC)
ERROR = {"code": "131026", "title": "Message undeliverable", "message": "m", "details": "d"}
# The order the statuses end in, whatever order they arrive in.
ORDER = {"sent": 2.0, "failed": 2.5, "delivered": 3.0, "read": 4.0}
FINAL = {"sent": "SENT", "failed": "FAILED", "delivered": "DELIVERED", "read": "READ"}


async def new_message(db_engine: AsyncEngine, org_id: str, status: str = "ACCEPTED") -> str:
    wamid = f"wamid.{uuid.uuid4().hex}"
    async with db_engine.begin() as conn:
        await insert_message(conn, org_id=org_id, wamid=wamid, status=status)
    return wamid


def update(wamid: str, status: str, minute: int = 0, **extra: Any) -> StatusUpdate:
    error = ERROR if status == "failed" else None
    values: dict[str, Any] = {"at": T0 + timedelta(minutes=minute), "error": error}
    values.update(extra)
    return StatusUpdate(provider_message_id=wamid, status=status, **values)


async def apply(db_engine: AsyncEngine, *updates: StatusUpdate) -> list[str]:
    async with db_engine.begin() as conn:
        return await apply_statuses(conn, list(updates), actor="webhook", now=utcnow())


async def message(db_engine: AsyncEngine, wamid: str) -> dict[str, Any]:
    async with db_engine.connect() as conn:
        found = await conn.execute(sa.select(om.c.id).where(om.c.provider_message_id == wamid))
        return await message_row(conn, found.scalar_one())


async def events(db_engine: AsyncEngine, wamid: str) -> list[dict[str, Any]]:
    row = await message(db_engine, wamid)
    e = message_event.c
    async with db_engine.connect() as conn:
        rows = await conn.execute(
            sa.select(e.type, e.from_status, e.to_status, e.actor, e.details)
            .where(e.message_id == row["id"])
            .order_by(e.id)
        )
        return [dict(r._mapping) for r in rows]


async def test_sent_delivered_and_read_each_raise_the_status_and_stamp_meta_time(
    db_engine: AsyncEngine, org_id: str
) -> None:
    wamid = await new_message(db_engine, org_id)
    for minute, (raw, expected, column) in enumerate(
        [
            ("sent", "SENT", "sent_at"),
            ("delivered", "DELIVERED", "delivered_at"),
            ("read", "READ", "read_at"),
        ],
        start=1,
    ):
        assert await apply(db_engine, update(wamid, raw, minute)) == ["applied"]
        row = await message(db_engine, wamid)
        assert row["status"] == expected
        assert row[column] == T0 + timedelta(minutes=minute)
    timeline = await events(db_engine, wamid)
    assert [(e["type"], e["from_status"], e["to_status"]) for e in timeline] == [
        ("status.sent", "ACCEPTED", "SENT"),
        ("status.delivered", "SENT", "DELIVERED"),
        ("status.read", "DELIVERED", "READ"),
    ]
    assert all(e["actor"] == "webhook" and e["details"]["ignored"] is False for e in timeline)
    assert timeline[0]["details"]["status_at"] == (T0 + timedelta(minutes=1)).isoformat()


async def test_read_without_delivered_sets_delivered_at_too(
    db_engine: AsyncEngine, org_id: str
) -> None:
    wamid = await new_message(db_engine, org_id)
    assert await apply(db_engine, update(wamid, "read", 5)) == ["applied"]
    row = await message(db_engine, wamid)
    assert row["status"] == "READ"
    assert row["read_at"] == row["delivered_at"] == row["sent_at"] == T0 + timedelta(minutes=5)


async def test_failed_dead_letters_the_message_with_the_error(
    db_engine: AsyncEngine, org_id: str
) -> None:
    wamid = await new_message(db_engine, org_id)
    await apply(db_engine, update(wamid, "sent", 1))
    assert await apply(db_engine, update(wamid, "failed", 2)) == ["applied"]
    row = await message(db_engine, wamid)
    assert row["status"] == "FAILED"
    assert row["dead_lettered"] is True
    assert row["failed_at"] == T0 + timedelta(minutes=2)
    assert (row["error_code"], row["error_title"], row["error_message"], row["error_details"]) == (
        "131026",
        "Message undeliverable",
        "m",
        "d",
    )
    assert row["error_retryable"] is False
    last = (await events(db_engine, wamid))[-1]
    assert (last["type"], last["from_status"], last["to_status"]) == (
        "status.failed",
        "SENT",
        "FAILED",
    )
    assert last["details"]["error"] == ERROR


async def test_failed_after_delivered_is_ignored_but_recorded(
    db_engine: AsyncEngine, org_id: str
) -> None:
    wamid = await new_message(db_engine, org_id)
    await apply(db_engine, update(wamid, "delivered", 1))
    assert await apply(db_engine, update(wamid, "failed", 2)) == ["ignored"]
    row = await message(db_engine, wamid)
    assert (row["status"], row["dead_lettered"], row["error_code"]) == ("DELIVERED", False, None)
    last = (await events(db_engine, wamid))[-1]
    assert (last["from_status"], last["to_status"]) == ("DELIVERED", "DELIVERED")
    assert last["details"]["ignored"] is True
    assert last["details"]["reason"] == "already_delivered"


async def test_a_duplicate_changes_nothing_and_is_recorded_as_ignored(
    db_engine: AsyncEngine, org_id: str
) -> None:
    wamid = await new_message(db_engine, org_id)
    await apply(db_engine, update(wamid, "delivered", 1))
    before = await message(db_engine, wamid)
    assert await apply(db_engine, update(wamid, "delivered", 9)) == ["ignored"]
    after = await message(db_engine, wamid)
    assert after["delivered_at"] == before["delivered_at"]
    assert after["updated_at"] == before["updated_at"]
    assert (await events(db_engine, wamid))[-1]["details"]["reason"] == "duplicate"


async def test_a_late_lower_status_never_moves_the_message_back(
    db_engine: AsyncEngine, org_id: str
) -> None:
    wamid = await new_message(db_engine, org_id)
    assert await apply(db_engine, update(wamid, "read", 3), update(wamid, "sent", 1)) == [
        "applied",
        "ignored",
    ]
    assert (await message(db_engine, wamid))["status"] == "READ"
    assert (await events(db_engine, wamid))[-1]["details"]["reason"] == "out_of_order"


async def test_an_unknown_status_value_is_recorded_and_ignored(
    db_engine: AsyncEngine, org_id: str
) -> None:
    wamid = await new_message(db_engine, org_id)
    assert await apply(db_engine, update(wamid, "played", 1)) == ["ignored"]
    assert (await message(db_engine, wamid))["status"] == "ACCEPTED"
    [event] = await events(db_engine, wamid)
    assert event["type"] == "status.played"
    assert event["details"]["reason"] == "unsupported_status"


async def test_statuses_of_a_message_not_awaiting_any_are_ignored(
    db_engine: AsyncEngine, org_id: str
) -> None:
    wamid = await new_message(db_engine, org_id, status="QUEUED")
    assert await apply(db_engine, update(wamid, "delivered", 1)) == ["ignored"]
    assert (await message(db_engine, wamid))["status"] == "QUEUED"
    assert (await events(db_engine, wamid))[-1]["details"]["reason"] == "not_awaiting_status"


async def test_delivered_after_failed_takes_the_message_out_of_the_dead_letter_queue(
    db_engine: AsyncEngine, org_id: str
) -> None:
    wamid = await new_message(db_engine, org_id)
    await apply(db_engine, update(wamid, "failed", 1))
    assert await apply(db_engine, update(wamid, "delivered", 2)) == ["applied"]
    row = await message(db_engine, wamid)
    assert (row["status"], row["dead_lettered"], row["error_code"], row["failed_at"]) == (
        "DELIVERED",
        False,
        None,
        None,
    )
    assert [e["type"] for e in await events(db_engine, wamid)] == [
        "status.failed",
        "status.delivered",
    ]


async def test_status_of_an_unknown_wamid_waits_and_is_applied_when_the_wamid_is_committed(
    db_engine: AsyncEngine, org_id: str
) -> None:
    async with db_engine.begin() as conn:
        message_id = await insert_message(conn, org_id=org_id, wamid=None, status="SENDING")
    wamid = "wamid.EARLY"
    early = update(wamid, "delivered", 1, recipient_id="33612345678")
    assert await apply(db_engine, early, update(wamid, "sent", 0)) == ["pending", "pending"]

    # The dispatcher's transaction: ACCEPTED with the wamid, then the pending statuses.
    async with db_engine.begin() as conn:
        await accept(conn, message_id, wamid)
        assert await apply_pending(conn, [wamid, "wamid.OTHER"], now=utcnow()) == 2

    row = await message(db_engine, wamid)
    assert (row["status"], row["delivered_at"]) == ("DELIVERED", T0 + timedelta(minutes=1))
    timeline = await events(db_engine, wamid)
    assert [(e["type"], e["actor"], e["details"]["ignored"]) for e in timeline] == [
        ("status.delivered", "webhook:pending", False),
        ("status.sent", "webhook:pending", True),
    ]
    assert timeline[0]["details"]["recipient_id"] == "33612345678"
    async with db_engine.connect() as conn:
        assert (
            await conn.execute(sa.select(sa.func.count()).select_from(pending_status))
        ).scalar() == 0


async def test_apply_pending_leaves_statuses_of_other_wamids_waiting(
    db_engine: AsyncEngine, org_id: str
) -> None:
    wamid = await new_message(db_engine, org_id)
    await apply(db_engine, update("wamid.STRANGER", "sent"))
    async with db_engine.begin() as conn:
        assert await apply_pending(conn, [wamid], now=utcnow()) == 0
        assert await apply_pending(conn, [], now=utcnow()) == 0
        left = (await conn.execute(sa.select(pending_status.c.provider_message_id))).scalars()
        assert list(left) == ["wamid.STRANGER"]


async def test_a_thousand_statuses_for_many_messages_apply_in_one_call(
    db_engine: AsyncEngine, org_id: str
) -> None:
    wamids = [f"wamid.BULK{i:04d}" for i in range(500)]
    async with db_engine.begin() as conn:
        for wamid in wamids:
            await insert_message(conn, org_id=org_id, wamid=wamid)
    batch = [update(w, "sent", 1) for w in wamids] + [update(w, "delivered", 2) for w in wamids]
    outcomes = await apply(db_engine, *batch)
    assert outcomes == ["applied"] * 1000
    assert (await message(db_engine, wamids[-1]))["status"] == "DELIVERED"
    async with db_engine.connect() as conn:
        count = sa.select(sa.func.count()).select_from(message_event)
        assert (await conn.execute(count)).scalar() == 1000


async def test_concurrent_identical_payloads_apply_each_status_once(
    db_engine: AsyncEngine, org_id: str
) -> None:
    wamids = [await new_message(db_engine, org_id) for _ in range(20)]
    payload = [update(w, s, i) for i, s in enumerate(["sent", "delivered"]) for w in wamids]
    first, second = await asyncio.gather(apply(db_engine, *payload), apply(db_engine, *payload))
    assert sorted(first + second) == ["applied"] * 40 + ["ignored"] * 40
    for wamid in wamids:
        assert (await message(db_engine, wamid))["status"] == "DELIVERED"
        assert len(await events(db_engine, wamid)) == 4


def expect_final(row: dict[str, Any], sequence: list[str]) -> None:
    top = max(sequence, key=ORDER.__getitem__)
    assert row["status"] == FINAL[top]
    assert row["dead_lettered"] is (top == "failed")
    assert (row["error_code"] is not None) is (top == "failed")
    assert (row["delivered_at"] is not None) is (ORDER[top] >= 3)
    assert (row["read_at"] is not None) is (top == "read")


async def test_every_order_of_the_four_statuses_with_duplicates_ends_at_the_highest(
    db_engine: AsyncEngine, org_id: str
) -> None:
    for order in itertools.permutations(["sent", "delivered", "read", "failed"]):
        for sequence in (list(order) * 2, [s for s in order for _ in range(2)]):
            wamid = await new_message(db_engine, org_id)
            for minute, raw in enumerate(sequence):
                await apply(db_engine, update(wamid, raw, minute))
            expect_final(await message(db_engine, wamid), sequence)
            assert len(await events(db_engine, wamid)) == len(sequence)


@settings(
    max_examples=40,
    deadline=None,
    suppress_health_check=[HealthCheck.function_scoped_fixture],
)
@given(
    sequence=st.lists(st.sampled_from(list(ORDER)), min_size=1, max_size=10),
    batch=st.integers(min_value=1, max_value=10),
)
async def test_any_sequence_of_statuses_in_any_batching_ends_at_the_highest(
    db_engine: AsyncEngine, org_id: str, sequence: list[str], batch: int
) -> None:
    wamid = await new_message(db_engine, org_id)
    outcomes: list[str] = []
    for start in range(0, len(sequence), batch):
        chunk = sequence[start : start + batch]
        outcomes += await apply(
            db_engine, *(update(wamid, s, start + i) for i, s in enumerate(chunk))
        )
    expect_final(await message(db_engine, wamid), sequence)
    # Exactly the statuses that raised the running maximum were applied.
    raised, best = [], 1.0
    for raw in sequence:
        raised.append("applied" if ORDER[raw] > best else "ignored")
        best = max(best, ORDER[raw])
    assert outcomes == raised
    assert len(await events(db_engine, wamid)) == len(sequence)
