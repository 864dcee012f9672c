"""Deleting an endpoint while an event is being written for it (PostgreSQL): the delete waits
for that transaction, and its delivery goes with the endpoint; the event's writer never fails."""

from __future__ import annotations

import asyncio
import uuid
from collections.abc import AsyncIterator

import httpx
import pytest
import sqlalchemy as sa
from sqlalchemy.ext.asyncio import AsyncEngine

from factories import engine_for
from helpers import TEST_SECRET_KEY, app_client, create_org_with_key, make_settings
from wa_outbound.app import create_app
from wa_outbound.db.callback_schema import callback_delivery, callback_endpoint
from wa_outbound.db.types import utcnow
from wa_outbound.events.outgoing import Outgoing, write

pytestmark = pytest.mark.asyncio


@pytest.fixture
async def client(postgres_url: str) -> AsyncIterator[httpx.AsyncClient]:
    settings = make_settings(postgres_url, secret_keys=TEST_SECRET_KEY)
    async with app_client(create_app(settings)) as c:
        yield c


@pytest.fixture
async def engine(postgres_url: str) -> AsyncIterator[AsyncEngine]:
    async with engine_for(postgres_url) as created:
        yield created


async def waiting_on_a_lock(engine: AsyncEngine) -> bool:
    async with engine.connect() as conn:
        waiting = await conn.scalar(
            sa.text(
                "SELECT count(*) FROM pg_stat_activity"
                " WHERE datname = current_database() AND wait_event_type = 'Lock'"
            )
        )
    return bool(waiting)


async def test_a_delete_waits_for_an_event_being_written_and_drops_its_delivery(
    client: httpx.AsyncClient, engine: AsyncEngine
) -> None:
    org_id, auth = await create_org_with_key(client)
    created = await client.post(
        "/v1/webhook-endpoints", json={"url": "https://93.184.215.14/h"}, headers=auth
    )
    endpoint_id = created.json()["id"]
    async with engine.connect() as emitting:
        transaction = await emitting.begin()
        event = Outgoing(org_id=org_id, type="consent.changed", data={}, occurred_at=utcnow())
        assert await write(emitting, [event]) == 1
        deleting = asyncio.create_task(
            client.delete(f"/v1/webhook-endpoints/{endpoint_id}", headers=auth)
        )
        async with asyncio.timeout(20):
            while not await waiting_on_a_lock(engine):
                assert not deleting.done(), deleting
                await asyncio.sleep(0.02)
        await transaction.commit()
    assert (await deleting).status_code == 204
    async with engine.connect() as conn:
        left = await conn.scalar(sa.select(sa.func.count()).select_from(callback_delivery))
        endpoints = await conn.scalar(
            sa.select(sa.func.count())
            .select_from(callback_endpoint)
            .where(callback_endpoint.c.id == uuid.UUID(endpoint_id))
        )
    assert (left, endpoints) == (0, 0)
