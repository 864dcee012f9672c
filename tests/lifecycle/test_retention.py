"""Retention deletes finished messages older than WA_RETENTION_DAYS with their events, wamids,
callback events and deliveries, old callback events with nothing pending, and old processed
webhook bodies, in batches; it keeps waiting messages, recent rows and unprocessed bodies. A
deleted message's Idempotency-Key can be used again. On PostgreSQL a batch skips the rows
another transaction holds, and one replica at a time runs the rounds."""

from __future__ import annotations

import asyncio
import uuid
from collections import Counter
from datetime import timedelta

import httpx
import pytest
import sqlalchemy as sa
from sqlalchemy.ext.asyncio import AsyncEngine

from factories import insert_org
from helpers import TEMPLATE, app_client, create_org_with_key, grant, make_settings
from lifecycle_rows import OLD, add_body, add_endpoint, add_event, add_message
from wa_outbound.app import create_app
from wa_outbound.db.callback_schema import callback_delivery, callback_event
from wa_outbound.db.engine import create_engine
from wa_outbound.db.schema import message_event, message_wamid, outbound_message, webhook_event
from wa_outbound.db.types import utcnow
from wa_outbound.lifecycle import retention
from wa_outbound.lifecycle.worker import RetentionWorker
from wa_outbound.metrics import Metrics

RECENT = timedelta(days=10)


def worker(
    engine: AsyncEngine, metrics: Metrics | None = None, /, **overrides: object
) -> RetentionWorker:
    url = engine.url.render_as_string(hide_password=False)
    values = {"retention_pause_seconds": 0, **overrides}
    return RetentionWorker(make_settings(url, **values), engine, metrics or Metrics())


async def one_round(engine: AsyncEngine, **overrides: object) -> Counter[str] | None:
    """A round of a worker that then steps down."""
    retainer = worker(engine, None, **overrides)
    try:
        return await retainer.run_once()
    finally:
        await retainer.release()


async def ids(engine: AsyncEngine, column: sa.Column[object]) -> set[object]:
    async with engine.connect() as conn:
        return set((await conn.execute(sa.select(column))).scalars())


async def test_old_finished_messages_go_with_their_rows_and_the_rest_stays(
    db_engine: AsyncEngine,
) -> None:
    async with db_engine.begin() as conn:
        org_id = await insert_org(conn)
        endpoint = await add_endpoint(conn, org_id)
        for status in ("DELIVERED", "READ", "FAILED", "CANCELLED", "ACCEPTED"):
            await add_message(conn, org_id, status=status, age=OLD, endpoint_id=endpoint)
        kept = [
            await add_message(conn, org_id, status=status, age=OLD, endpoint_id=endpoint)
            for status in ("QUEUED", "SENDING", "RETRYING")
        ]
        kept.append(await add_message(conn, org_id, status="DELIVERED", age=RECENT))
        old_done = await add_event(conn, org_id, endpoint, at=utcnow() - OLD)
        old_pending = await add_event(conn, org_id, endpoint, at=utcnow() - OLD, delivery="pending")
        recent_event = await add_event(conn, org_id, endpoint, at=utcnow() - RECENT)
        old_body = await add_body(conn, age=OLD, processed=True)
        unprocessed = await add_body(conn, age=OLD, processed=False)
        recent_body = await add_body(conn, age=RECENT, processed=True)

    metrics = Metrics()
    retainer = worker(db_engine, metrics, retention_batch_size=2)
    deleted = await retainer.run_once()
    await retainer.release()

    assert deleted is not None
    assert await ids(db_engine, outbound_message.c.id) == set(kept)
    assert await ids(db_engine, message_event.c.message_id) == set(kept)
    assert await ids(db_engine, message_wamid.c.message_id) == set(kept)
    events = await ids(db_engine, callback_event.c.seq)
    assert old_done not in events
    assert {old_pending, recent_event} <= events
    # Old events of kept messages go too once delivered: nothing reads them any more.
    assert await ids(db_engine, callback_event.c.message_id) == {None}
    assert await ids(db_engine, callback_delivery.c.event_seq) == events
    assert await ids(db_engine, webhook_event.c.id) == {unprocessed, recent_body}
    assert old_body not in await ids(db_engine, webhook_event.c.id)
    assert deleted["outbound_message"] == 5
    assert deleted["message_event"] == 5
    assert deleted["callback_event"] == 9  # five with their messages, four on their own
    assert deleted["webhook_event"] == 1
    sample = metrics.registry.get_sample_value
    assert sample("outbound_retention_deleted_total", {"table": "outbound_message"}) == 5
    assert sample("outbound_retention_deleted_total", {"table": "callback_delivery"}) == 9

    # Nothing left to do: a second round deletes nothing.
    again = await one_round(db_engine, retention_batch_size=2)
    assert again is not None
    assert sum(again.values()) == 0


async def test_zero_days_keeps_everything(db_engine: AsyncEngine) -> None:
    async with db_engine.begin() as conn:
        org_id = await insert_org(conn)
        message_id = await add_message(conn, org_id, status="DELIVERED", age=timedelta(days=5000))
    assert await one_round(db_engine, retention_days=0) is None
    assert await ids(db_engine, outbound_message.c.id) == {message_id}


async def test_a_deleted_messages_idempotency_key_can_be_used_again(database_url: str) -> None:
    # The app's own retention is off: this test's worker runs the round.
    async with app_client(create_app(make_settings(database_url, retention_days=0))) as client:
        await reuse_a_deleted_key(client, database_url)


async def reuse_a_deleted_key(client: httpx.AsyncClient, database_url: str) -> None:
    _org_id, auth = await create_org_with_key(client)
    await grant(client, auth, "+33612345678")
    body = {"to": "+33612345678", "template": TEMPLATE}
    headers = auth | {"Idempotency-Key": "order-42"}
    first = await client.post("/v1/messages", json=body, headers=headers)
    assert first.status_code == 202, first.text
    again = await client.post("/v1/messages", json=body, headers=headers)
    assert again.status_code == 200  # the same message, while it is kept

    engine = create_engine(make_settings(database_url))
    try:
        async with engine.begin() as conn:
            await conn.execute(
                outbound_message.update().values(status="DELIVERED", updated_at=utcnow() - OLD)
            )
        deleted = await one_round(engine)
        assert deleted is not None
        assert deleted["outbound_message"] == 1
    finally:
        await engine.dispose()

    reused = await client.post("/v1/messages", json=body, headers=headers)
    assert reused.status_code == 202, reused.text
    assert reused.json()["id"] != first.json()["id"]


async def test_a_batch_skips_the_rows_another_transaction_holds(pg_engine: AsyncEngine) -> None:
    async with pg_engine.begin() as conn:
        org_id = await insert_org(conn)
        held = await add_message(conn, org_id, status="DELIVERED", age=OLD + timedelta(days=1))
        others = [await add_message(conn, org_id, status="DELIVERED", age=OLD) for _ in range(4)]
    before = utcnow() - timedelta(days=90)
    async with pg_engine.connect() as holder:
        await holder.begin()
        # A webhook's status on the oldest message, in flight.
        await holder.execute(
            sa.select(outbound_message.c.id).where(outbound_message.c.id == held).with_for_update()
        )
        async with pg_engine.connect() as a, pg_engine.connect() as b:
            await a.begin()
            await b.begin()
            # Two batches at once, neither committed: each takes rows the other does not, and
            # neither waits (a wait would hit the timeout).
            first = await asyncio.wait_for(retention.delete_messages(a, before=before, limit=2), 5)
            second = await asyncio.wait_for(
                retention.delete_messages(b, before=before, limit=10), 5
            )
            assert first["outbound_message"] == 2
            assert second["outbound_message"] == 2
            await a.commit()
            await b.commit()
        await holder.rollback()
    assert await ids(pg_engine, outbound_message.c.id) == {held}
    assert held not in others


async def test_one_replica_at_a_time_runs_the_rounds(pg_engine: AsyncEngine) -> None:
    async with pg_engine.begin() as conn:
        org_id = await insert_org(conn)
        await add_message(conn, org_id, status="DELIVERED", age=OLD)
    url = pg_engine.url.render_as_string(hide_password=False)
    other_engine = create_engine(make_settings(url))
    try:
        leader, follower = worker(pg_engine), worker(other_engine)
        led = await leader.run_once()
        assert led is not None
        assert led["outbound_message"] == 1
        assert await follower.run_once() is None  # the leader's session holds the lock
        await leader.stop()
        await leader.release()
        assert await follower.run_once() is not None  # the lock is free: the follower leads
        await follower.release()
    finally:
        await other_engine.dispose()


@pytest.mark.parametrize("status", ["QUEUED", "SENDING", "RETRYING"])
async def test_a_waiting_message_is_never_deleted_however_old(
    db_engine: AsyncEngine, status: str
) -> None:
    async with db_engine.begin() as conn:
        org_id = await insert_org(conn)
        message_id = await add_message(conn, org_id, status=status, age=timedelta(days=3650))
    await one_round(db_engine)
    assert await ids(db_engine, outbound_message.c.id) == {message_id}
    assert uuid.UUID(str(message_id))


async def test_the_pause_after_a_batch_is_in_proportion_to_its_time(
    db_engine: AsyncEngine,
) -> None:
    retainer = worker(db_engine, None, retention_pause_ratio=3, retention_pause_seconds=0.05)
    assert retainer.pause_s(0.1) == pytest.approx(0.3)  # a quarter of the time deleting
    assert retainer.pause_s(0.001) == 0.05  # never less than WA_RETENTION_PAUSE_SECONDS
    assert worker(db_engine, None, retention_pause_ratio=0).pause_s(5) == 0
    with pytest.raises(ValueError, match="retention_pause_ratio"):
        worker(db_engine, None, retention_pause_ratio=-1)
