"""The single-message fast path on PostgreSQL, where it differs from the general path: it talks
to asyncpg directly, so a lost connection is its own to notice."""

from __future__ import annotations

from collections.abc import AsyncIterator

import asyncpg
import httpx
import pytest

from helpers import app_client, create_org_with_key, grant, make_settings
from wa_outbound.app import create_app

PHONE = "+33612345678"
BODY = {"to": PHONE, "template": {"name": "order_update", "language": "en_US"}}


@pytest.fixture
async def pg_client(postgres_url: str) -> AsyncIterator[httpx.AsyncClient]:
    async with app_client(create_app(make_settings(postgres_url))) as client:
        yield client


async def _terminate_backends(postgres_url: str) -> None:
    dsn = postgres_url.replace("postgresql+asyncpg://", "postgresql://")
    conn = await asyncpg.connect(dsn)
    try:
        await conn.execute(
            "SELECT pg_terminate_backend(pid) FROM pg_stat_activity "
            "WHERE datname = current_database() AND pid <> pg_backend_pid()"
        )
    finally:
        await conn.close()


async def test_a_lost_connection_answers_503_and_the_next_request_reconnects(
    pg_client: httpx.AsyncClient, postgres_url: str
) -> None:
    _org_id, auth = await create_org_with_key(pg_client)
    await grant(pg_client, auth, PHONE)
    assert (await pg_client.post("/v1/messages", json=BODY, headers=auth)).status_code == 202

    await _terminate_backends(postgres_url)

    statuses = [(await pg_client.post("/v1/messages", json=BODY, headers=auth)).status_code]
    if statuses[0] == 503:  # the dead connection was used, and the pool is new now
        statuses.append((await pg_client.post("/v1/messages", json=BODY, headers=auth)).status_code)
    assert statuses[-1] == 202, statuses
    assert set(statuses) <= {202, 503}
