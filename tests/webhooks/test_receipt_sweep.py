"""The receipt sweep on SQLite and PostgreSQL: pending statuses applied late or dropped, and
stored webhook bodies processed again."""

from __future__ import annotations

import asyncio
import logging
import uuid
from datetime import timedelta
from typing import Any

import orjson
import pytest
import sqlalchemy as sa
from sqlalchemy.ext.asyncio import AsyncEngine

import meta_payloads as meta
from factories import accept, insert_message, message_row
from routing_helpers import shared_sender
from wa_outbound.db.schema import message_event, pending_status, webhook_event
from wa_outbound.db.types import utcnow
from wa_outbound.metrics import Metrics
from wa_outbound.receipts.statuses import StatusUpdate, apply_statuses
from wa_outbound.webhooks.sweep import ReceiptSweep

MAX_AGE_S = 3600.0


@pytest.fixture
def metrics() -> Metrics:
    return Metrics()


@pytest.fixture
def sweep(db_engine: AsyncEngine, metrics: Metrics) -> ReceiptSweep:
    return ReceiptSweep(
        db_engine, metrics=metrics, pending_max_age_s=MAX_AGE_S, interval_s=0.01, max_attempts=3
    )


async def keep_pending(
    db_engine: AsyncEngine, wamid: str, status: str, *, age_s: float = 0
) -> None:
    update = StatusUpdate(provider_message_id=wamid, status=status, at=None, error=None)
    async with db_engine.begin() as conn:
        received = utcnow() - timedelta(seconds=age_s)
        assert await apply_statuses(conn, [update], actor="webhook", now=received) == ["pending"]


async def pending_wamids(db_engine: AsyncEngine) -> list[str]:
    async with db_engine.connect() as conn:
        rows = await conn.execute(sa.select(pending_status.c.provider_message_id))
        return sorted(rows.scalars())


async def store_body(
    db_engine: AsyncEngine, body: Any, *, age_s: float = 60, attempts: int = 1, raw: bytes = b""
) -> int:
    async with db_engine.begin() as conn:
        result = await conn.execute(
            webhook_event.insert()
            .values(
                received_at=utcnow() - timedelta(seconds=age_s),
                body=raw or orjson.dumps(body),
                attempts=attempts,
                last_error="OperationalError: earlier failure",
            )
            .returning(webhook_event.c.id)
        )
        return int(result.scalar_one())


async def stored(db_engine: AsyncEngine, event_id: int) -> Any:
    async with db_engine.connect() as conn:
        query = sa.select(webhook_event).where(webhook_event.c.id == event_id)
        return (await conn.execute(query)).one()


async def test_a_pending_status_whose_wamid_became_known_is_applied(
    db_engine: AsyncEngine, org_id: str, sweep: ReceiptSweep
) -> None:
    async with db_engine.begin() as conn:
        message_id = await insert_message(conn, org_id=org_id, wamid=None, status="SENDING")
    await keep_pending(db_engine, "wamid.LATE", "delivered")
    await keep_pending(db_engine, "wamid.STRANGER", "sent")
    async with db_engine.begin() as conn:  # committed without the dispatcher's apply_pending
        await accept(conn, message_id, "wamid.LATE")

    result = await sweep.run_once()
    assert (result.applied, result.dropped) == (1, 0)
    async with db_engine.connect() as conn:
        assert (await message_row(conn, message_id))["status"] == "DELIVERED"
    assert await pending_wamids(db_engine) == ["wamid.STRANGER"]


async def test_two_sweeps_at_once_apply_each_pending_status_once(
    db_engine: AsyncEngine, org_id: str, metrics: Metrics
) -> None:
    wamids = [f"wamid.TWICE{i}" for i in range(30)]
    async with db_engine.begin() as conn:
        ids = [
            await insert_message(conn, org_id=org_id, wamid=None, status="SENDING") for _ in wamids
        ]
    for wamid in wamids:
        await keep_pending(db_engine, wamid, "delivered")
    async with db_engine.begin() as conn:
        for message_id, wamid in zip(ids, wamids, strict=True):
            await accept(conn, message_id, wamid)

    def replica() -> ReceiptSweep:
        return ReceiptSweep(db_engine, metrics=metrics, pending_max_age_s=MAX_AGE_S, batch_size=7)

    first, second = await asyncio.gather(replica().run_once(), replica().run_once())
    assert first.applied + second.applied == len(wamids)
    async with db_engine.connect() as conn:
        events = await conn.execute(sa.select(sa.func.count()).select_from(message_event))
        assert events.scalar_one() == len(wamids)
        for message_id in ids:
            assert (await message_row(conn, message_id))["status"] == "DELIVERED"


async def test_pending_statuses_older_than_the_maximum_age_are_dropped_and_counted(
    db_engine: AsyncEngine, sweep: ReceiptSweep, metrics: Metrics, caplog: pytest.LogCaptureFixture
) -> None:
    await keep_pending(db_engine, "wamid.OLD1", "sent", age_s=MAX_AGE_S + 60)
    await keep_pending(db_engine, "wamid.OLD2", "played", age_s=MAX_AGE_S + 60)
    await keep_pending(db_engine, "wamid.YOUNG", "sent", age_s=MAX_AGE_S - 60)

    with caplog.at_level(logging.WARNING, logger="wa_outbound.webhooks.sweep"):
        result = await sweep.run_once()
    assert result.dropped == 2
    assert await pending_wamids(db_engine) == ["wamid.YOUNG"]
    dropped = "outbound_webhook_pending_dropped_total"
    assert metrics.registry.get_sample_value(dropped, {"status": "sent"}) == 1
    assert metrics.registry.get_sample_value(dropped, {"status": "other"}) == 1
    [record] = [r for r in caplog.records if "dropped pending" in r.getMessage()]
    assert record.__dict__["count"] == 2


async def test_a_stored_body_whose_processing_failed_is_processed_again(
    db_engine: AsyncEngine, org_id: str, sweep: ReceiptSweep, metrics: Metrics
) -> None:
    await shared_sender(db_engine)
    wamid = f"wamid.{uuid.uuid4().hex}"
    async with db_engine.begin() as conn:
        message_id = await insert_message(conn, org_id=org_id, wamid=wamid)
    event_id = await store_body(db_engine, meta.envelope(statuses=[meta.status(wamid, "read")]))

    result = await sweep.run_once()
    assert (result.reprocessed, result.still_failing) == (1, 0)
    row = await stored(db_engine, event_id)
    assert row.processed_at is not None
    assert (row.attempts, row.last_error) == (2, None)
    async with db_engine.connect() as conn:
        assert (await message_row(conn, message_id))["status"] == "READ"
    labels = {"status": "read", "outcome": "applied"}
    assert metrics.registry.get_sample_value("outbound_webhook_statuses_total", labels) == 1
    assert (await sweep.run_once()).reprocessed == 0  # done once, not again


async def test_a_body_just_received_is_left_to_its_own_request(
    db_engine: AsyncEngine, sweep: ReceiptSweep
) -> None:
    event_id = await store_body(db_engine, meta.envelope(statuses=[]), age_s=0, attempts=0)
    assert (await sweep.run_once()).reprocessed == 0
    assert (await stored(db_engine, event_id)).processed_at is None


async def test_a_body_that_keeps_failing_is_retried_up_to_the_maximum_then_kept(
    db_engine: AsyncEngine, sweep: ReceiptSweep, metrics: Metrics
) -> None:
    event_id = await store_body(db_engine, None, raw=b"[1, 2]")
    assert (await sweep.run_once()).still_failing == 1
    assert (await sweep.run_once()).still_failing == 1
    assert (await sweep.run_once()).still_failing == 0  # three attempts: left for an operator
    row = await stored(db_engine, event_id)
    assert (row.attempts, row.processed_at) == (3, None)
    assert "not a JSON object" in row.last_error
    failures = "outbound_webhook_processing_failures_total"
    assert metrics.registry.get_sample_value(failures) == 2


async def test_the_sweep_loop_ends_when_stopped(sweep: ReceiptSweep) -> None:
    task = asyncio.create_task(sweep.run())
    await asyncio.sleep(0)
    await sweep.stop()
    await task
    assert task.done()
