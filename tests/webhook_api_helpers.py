"""What the tests of Meta's webhook over HTTP share (tests/api/test_webhooks_api*.py): the
app's settings (a fixture, which each test module imports), a signed post, and reads of what a
webhook changed."""

from __future__ import annotations

import uuid
from typing import Any

import httpx
import orjson
import pytest
import sqlalchemy as sa
from sqlalchemy.ext.asyncio import AsyncEngine

import meta_payloads as meta
from factories import insert_message
from helpers import make_settings
from wa_outbound.config import Settings

SECRET = "test-app-secret"
VERIFY_TOKEN = "test-verify-token"
URL = "/webhooks/whatsapp"
Org = tuple[str, dict[str, str]]


@pytest.fixture
def settings(database_url: str) -> Settings:
    """The tests' app settings (the `client` fixture's), imported by the test modules."""
    # The shared sender on the envelope's number: its statuses route to the shared sender.
    return make_settings(
        database_url,
        app_secret=SECRET,
        webhook_verify_token=VERIFY_TOKEN,
        phone_number_id=meta.PHONE_NUMBER_ID,
        access_token="shared-token",
    )


async def post(
    client: httpx.AsyncClient, body: Any, *, secret: str = SECRET, raw: bytes | None = None
) -> httpx.Response:
    content = raw if raw is not None else orjson.dumps(body)
    headers = {
        "Content-Type": "application/json",
        "X-Hub-Signature-256": meta.sign(content, secret),
    }
    return await client.post(URL, content=content, headers=headers)


async def accepted(db_engine: AsyncEngine, org_id: str, **columns: Any) -> tuple[str, str]:
    """(message id, wamid) of a message Meta accepted."""
    wamid = f"wamid.{uuid.uuid4().hex}"
    async with db_engine.begin() as conn:
        message_id = await insert_message(conn, org_id=org_id, wamid=wamid, **columns)
    return str(message_id), wamid


async def count(db_engine: AsyncEngine, table: sa.Table) -> int:
    async with db_engine.connect() as conn:
        return int((await conn.execute(sa.select(sa.func.count()).select_from(table))).scalar_one())


async def get_message(client: httpx.AsyncClient, auth: dict[str, str], message_id: str) -> Any:
    response = await client.get(f"/v1/messages/{message_id}", headers=auth)
    assert response.status_code == 200, response.text
    return response.json()


async def timeline(client: httpx.AsyncClient, auth: dict[str, str], message_id: str) -> Any:
    response = await client.get(f"/v1/messages/{message_id}/events", headers=auth)
    return response.json()["items"]
