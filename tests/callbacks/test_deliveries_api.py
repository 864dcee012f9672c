"""An endpoint's deliveries through the API, on SQLite and PostgreSQL: the newest-first pages
and their filter, a manual retry and the order that may block it, recovery of failed ones, and
what enabling and deleting the endpoint do to them."""

from __future__ import annotations

import uuid
from collections.abc import AsyncIterator
from datetime import UTC, datetime, timedelta
from typing import Any

import httpx
import pytest
import sqlalchemy as sa
from sqlalchemy.ext.asyncio import AsyncEngine

from callback_helpers import InsertedEvent, insert_event_with_deliveries
from factories import engine_for
from helpers import TEST_SECRET_KEY, make_settings
from wa_outbound.config import Settings
from wa_outbound.db.callback_schema import callback_delivery, callback_endpoint, callback_event
from wa_outbound.db.schema import audit_event

pytestmark = pytest.mark.asyncio

URL = "https://93.184.215.14/hooks/wa"
T0 = datetime(2026, 12, 1, 8, 0, tzinfo=UTC)
d = callback_delivery.c


@pytest.fixture
def settings(database_url: str) -> Settings:
    return make_settings(database_url, secret_keys=TEST_SECRET_KEY)


@pytest.fixture
async def engine(database_url: str) -> AsyncIterator[AsyncEngine]:
    async with engine_for(database_url) as created:
        yield created


@pytest.fixture
async def endpoint(client: httpx.AsyncClient, org: tuple[str, dict[str, str]]) -> str:
    response = await client.post("/v1/webhook-endpoints", json={"url": URL}, headers=org[1])
    assert response.status_code == 201, response.text
    endpoint_id: str = response.json()["id"]
    return endpoint_id


async def add(engine: AsyncEngine, org_id: str, endpoint_id: str, **kwargs: Any) -> InsertedEvent:
    async with engine.begin() as conn:
        return await insert_event_with_deliveries(
            conn, org_id=org_id, endpoint_ids=[uuid.UUID(endpoint_id)], **kwargs
        )


async def delivery_row(engine: AsyncEngine, delivery_id: uuid.UUID) -> dict[str, Any]:
    async with engine.connect() as conn:
        row = (await conn.execute(sa.select(callback_delivery).where(d.id == delivery_id))).one()
    return dict(row._mapping)


async def test_deliveries_are_listed_newest_first_page_by_page(
    client: httpx.AsyncClient, org: tuple[str, dict[str, str]], endpoint: str, engine: AsyncEngine
) -> None:
    org_id, auth = org
    message_id = uuid.uuid4()
    added = [
        await add(
            engine,
            org_id,
            endpoint,
            event_type="message.sent" if i % 2 else "message.delivered",
            message_id=message_id,
            at=T0 + timedelta(minutes=i),
            status="failed" if i % 2 else "succeeded",
        )
        for i in range(5)
    ]
    path = f"/v1/webhook-endpoints/{endpoint}/deliveries"
    first = (await client.get(path, params={"limit": 2}, headers=auth)).json()
    assert [item["id"] for item in first["items"]] == [
        str(added[4].deliveries[0]),
        str(added[3].deliveries[0]),
    ]
    item = first["items"][1]
    assert item["event_id"] == str(added[3].id)
    assert item["event_type"] == "message.sent"
    assert item["message_id"] == str(message_id)
    assert item["status"] == "failed"
    assert item["attempts"] == 0
    assert item["created_at"] == "2026-12-01T08:03:00Z"
    assert set(item) == {
        "id", "event_id", "event_type", "message_id", "status", "attempts",
        "last_status_code", "last_error", "next_attempt_at", "created_at", "delivered_at",
    }  # fmt: skip
    seen = [i["id"] for i in first["items"]]
    cursor = first["next_cursor"]
    while cursor:
        page = (await client.get(path, params={"limit": 2, "cursor": cursor}, headers=auth)).json()
        seen += [i["id"] for i in page["items"]]
        cursor = page["next_cursor"]
    assert seen == [str(a.deliveries[0]) for a in reversed(added)]

    failed = (await client.get(path, params={"status": "failed"}, headers=auth)).json()
    assert [i["id"] for i in failed["items"]] == [
        str(added[3].deliveries[0]),
        str(added[1].deliveries[0]),
    ]
    assert failed["next_cursor"] is None
    response = await client.get(path, params={"status": "lost"}, headers=auth)
    assert response.status_code == 422
    response = await client.get(path, params={"cursor": "nonsense"}, headers=auth)
    assert response.json()["error"]["code"] == "validation_error"


async def test_a_failed_delivery_is_retried_now(
    client: httpx.AsyncClient, org: tuple[str, dict[str, str]], endpoint: str, engine: AsyncEngine
) -> None:
    org_id, auth = org
    event = await add(
        engine, org_id, endpoint, at=T0, status="failed", attempts=8, last_status_code=500
    )
    before = datetime.now(UTC)
    path = f"/v1/webhook-endpoints/{endpoint}/deliveries/{event.deliveries[0]}/retry"
    response = await client.post(path, headers=auth)
    assert response.status_code == 202, response.text
    retried = response.json()
    assert retried["status"] == "pending"
    assert retried["id"] == str(event.deliveries[0])
    row = await delivery_row(engine, event.deliveries[0])
    assert row["status"] == "pending"
    assert before - timedelta(seconds=1) <= row["next_attempt_at"] <= datetime.now(UTC)
    async with engine.connect() as conn:
        audited = await conn.scalar(
            sa.select(sa.func.count())
            .select_from(audit_event)
            .where(
                audit_event.c.action == "webhook_delivery.retried",
                audit_event.c.subject == str(event.deliveries[0]),
            )
        )
    assert audited == 1
    assert (await client.post(
        f"/v1/webhook-endpoints/{endpoint}/deliveries/{uuid.uuid4()}/retry", headers=auth
    )).status_code == 404  # fmt: skip


async def test_a_retry_waits_for_an_earlier_event_of_the_same_message(
    client: httpx.AsyncClient, org: tuple[str, dict[str, str]], endpoint: str, engine: AsyncEngine
) -> None:
    org_id, auth = org
    message_id = uuid.uuid4()
    earlier = await add(engine, org_id, endpoint, message_id=message_id, at=T0)
    later = await add(engine, org_id, endpoint, message_id=message_id, at=T0, status="failed")
    other_message = await add(engine, org_id, endpoint, message_id=uuid.uuid4(), status="failed")
    base = f"/v1/webhook-endpoints/{endpoint}/deliveries"
    response = await client.post(f"{base}/{later.deliveries[0]}/retry", headers=auth)
    assert response.status_code == 409, response.text
    error = response.json()["error"]
    assert error["code"] == "delivery_blocked"
    assert error["details"] == {"pending_delivery_id": str(earlier.deliveries[0])}
    assert (await delivery_row(engine, later.deliveries[0]))["status"] == "failed"
    # Another message's delivery is not held by it.
    response = await client.post(f"{base}/{other_message.deliveries[0]}/retry", headers=auth)
    assert response.status_code == 202
    # Once the earlier one succeeded, the later one may go.
    async with engine.begin() as conn:
        await conn.execute(
            callback_delivery.update()
            .where(d.id == earlier.deliveries[0])
            .values(status="succeeded")
        )
    response = await client.post(f"{base}/{later.deliveries[0]}/retry", headers=auth)
    assert response.status_code == 202, response.text


async def test_recover_requeues_failed_deliveries_since_a_time(
    client: httpx.AsyncClient, org: tuple[str, dict[str, str]], endpoint: str, engine: AsyncEngine
) -> None:
    org_id, auth = org
    old = await add(engine, org_id, endpoint, at=T0, status="failed", attempts=8)
    recent = [
        await add(engine, org_id, endpoint, at=T0 + timedelta(hours=h), status="failed", attempts=8)
        for h in (1, 2)
    ]
    done = await add(engine, org_id, endpoint, at=T0 + timedelta(hours=3), status="succeeded")
    path = f"/v1/webhook-endpoints/{endpoint}/recover"
    response = await client.post(path, json={"since": "2026-12-01T10:00:00+01:00"}, headers=auth)
    assert response.status_code == 202, response.text
    assert response.json() == {"requeued": 2}
    for event in recent:
        row = await delivery_row(engine, event.deliveries[0])
        assert (row["status"], row["attempts"]) == ("pending", 0)
        assert row["next_attempt_at"] > T0 + timedelta(days=1)
    assert (await delivery_row(engine, old.deliveries[0]))["status"] == "failed"
    assert (await delivery_row(engine, done.deliveries[0]))["status"] == "succeeded"
    response = await client.post(path, json={"since": "2026-12-01T10:00:00"}, headers=auth)
    assert response.status_code == 422
    assert response.json()["error"]["details"]["errors"][0]["loc"] == ["body", "since"]


async def test_enabling_an_endpoint_sends_its_pending_deliveries_now(
    client: httpx.AsyncClient, org: tuple[str, dict[str, str]], endpoint: str, engine: AsyncEngine
) -> None:
    org_id, auth = org
    path = f"/v1/webhook-endpoints/{endpoint}"
    await client.patch(path, json={"enabled": False}, headers=auth)
    later = datetime.now(UTC) + timedelta(hours=5)
    waiting = await add(engine, org_id, endpoint, attempts=4, next_attempt_at=later)
    failed = await add(engine, org_id, endpoint, status="failed", attempts=8, next_attempt_at=later)
    async with engine.begin() as conn:
        await conn.execute(
            callback_endpoint.update()
            .where(callback_endpoint.c.id == uuid.UUID(endpoint))
            .values(disabled_reason="failing", failing_since=T0)
        )
    response = await client.patch(path, json={"enabled": True}, headers=auth)
    assert response.status_code == 200, response.text
    assert (response.json()["enabled"], response.json()["disabled_reason"]) == (True, None)
    row = await delivery_row(engine, waiting.deliveries[0])
    assert row["attempts"] == 0
    assert row["next_attempt_at"] <= datetime.now(UTC)
    untouched = await delivery_row(engine, failed.deliveries[0])
    assert (untouched["status"], untouched["attempts"]) == ("failed", 8)
    async with engine.connect() as conn:
        failing_since = await conn.scalar(
            sa.select(callback_endpoint.c.failing_since).where(
                callback_endpoint.c.id == uuid.UUID(endpoint)
            )
        )
    assert failing_since is None


async def test_deleting_an_endpoint_drops_its_deliveries_only(
    client: httpx.AsyncClient, org: tuple[str, dict[str, str]], endpoint: str, engine: AsyncEngine
) -> None:
    org_id, auth = org
    other = (await client.post("/v1/webhook-endpoints", json={"url": URL}, headers=auth)).json()
    async with engine.begin() as conn:
        event = await insert_event_with_deliveries(
            conn, org_id=org_id, endpoint_ids=[uuid.UUID(endpoint), uuid.UUID(other["id"])]
        )
    await add(engine, org_id, endpoint, status="failed")
    response = await client.delete(f"/v1/webhook-endpoints/{endpoint}", headers=auth)
    assert response.status_code == 204
    async with engine.connect() as conn:
        left = (await conn.execute(sa.select(d.id, d.endpoint_id))).all()
        events = await conn.scalar(sa.select(sa.func.count()).select_from(callback_event))
    assert left == [(event.deliveries[1], uuid.UUID(other["id"]))]
    assert events == 2  # events stay: other endpoints may still be sent them


@pytest.mark.parametrize("since", ["0001-01-01T00:00:00+01:00", "9999-12-31T23:59:59-01:00"])
async def test_recover_refuses_a_time_utc_cannot_hold(
    client: httpx.AsyncClient, org: tuple[str, dict[str, str]], endpoint: str, since: str
) -> None:
    response = await client.post(
        f"/v1/webhook-endpoints/{endpoint}/recover", json={"since": since}, headers=org[1]
    )
    assert response.status_code == 422, response.text
    assert response.json()["error"]["code"] == "validation_error"
