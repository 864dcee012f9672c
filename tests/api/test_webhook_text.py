"""Meta's webhook holding text the databases cannot store, on SQLite and PostgreSQL: a NUL is
read as U+FFFD, so the statuses still apply, and the body is kept byte for byte; an unpaired
surrogate is not valid JSON text (400), as for any body that is not JSON."""

from __future__ import annotations

import uuid
from datetime import timedelta

import httpx
import orjson
import pytest
import sqlalchemy as sa
from sqlalchemy.ext.asyncio import AsyncEngine

import meta_payloads as meta
from factories import insert_message
from helpers import make_settings
from routing_helpers import shared_sender
from wa_outbound.config import Settings
from wa_outbound.db.schema import outbound_message, pending_status, webhook_event
from wa_outbound.db.types import utcnow
from wa_outbound.webhooks import stored

SECRET = "test-app-secret"
URL = "/webhooks/whatsapp"


@pytest.fixture
def settings(database_url: str) -> Settings:
    # The shared sender on the envelope's number: its statuses route to the shared sender.
    return make_settings(
        database_url,
        app_secret=SECRET,
        phone_number_id=meta.PHONE_NUMBER_ID,
        access_token="shared-token",
    )


async def post(client: httpx.AsyncClient, raw: bytes) -> httpx.Response:
    headers = {"Content-Type": "application/json", "X-Hub-Signature-256": meta.sign(raw, SECRET)}
    return await client.post(URL, content=raw, headers=headers)


async def accepted(db_engine: AsyncEngine, org_id: str) -> tuple[uuid.UUID, str]:
    wamid = f"wamid.{uuid.uuid4().hex}"
    async with db_engine.begin() as conn:
        return await insert_message(conn, org_id=org_id, wamid=wamid), wamid


def failed_with_nul(wamid: str) -> bytes:
    undeliverable = meta.error(131026, "Undeliverable\x00", details="no\x00where")
    status = meta.status(wamid, "failed", errors=[undeliverable], recipient_id="336\x00")
    status["\x00extra"] = {"k\x00": ["v\x00"]}
    raw = orjson.dumps(meta.envelope(statuses=[status]))
    assert b"\\u0000" in raw
    return raw


async def test_a_nul_in_a_status_is_read_as_a_replacement_and_the_status_applies(
    client: httpx.AsyncClient, db_engine: AsyncEngine, org_id: str
) -> None:
    message_id, wamid = await accepted(db_engine, org_id)
    raw = failed_with_nul(wamid)
    assert (await post(client, raw)).status_code == 200
    async with db_engine.connect() as conn:
        message = (
            await conn.execute(
                sa.select(outbound_message).where(outbound_message.c.id == message_id)
            )
        ).one()
        [event] = (await conn.execute(sa.select(webhook_event))).all()
    assert (message.status, message.dead_lettered) == ("FAILED", True)
    assert (message.error_title, message.error_details) == ("Undeliverable\ufffd", "no\ufffdwhere")
    assert event.body == raw  # kept as Meta sent it
    assert (event.processed_at is not None, event.last_error) == (True, None)


async def test_a_nul_in_an_unknown_wamid_is_kept_as_a_pending_status(
    client: httpx.AsyncClient, db_engine: AsyncEngine
) -> None:
    raw = orjson.dumps(meta.envelope(statuses=[meta.status("wamid.\x00", "sent")]))
    assert (await post(client, raw)).status_code == 200
    async with db_engine.connect() as conn:
        [pending] = (await conn.execute(sa.select(pending_status))).all()
    assert pending.provider_message_id == "wamid.\ufffd"


async def test_a_stored_body_with_a_nul_is_processed_by_the_sweep(
    db_engine: AsyncEngine, org_id: str
) -> None:
    await shared_sender(db_engine)
    message_id, wamid = await accepted(db_engine, org_id)
    received_at = utcnow() - timedelta(minutes=1)
    async with db_engine.begin() as conn:  # as if processing had failed when it arrived
        await conn.execute(
            webhook_event.insert().values(
                received_at=received_at, body=failed_with_nul(wamid), attempts=1
            )
        )
    applied = await stored.reprocess(
        db_engine, received_before=utcnow(), max_attempts=10, limit=10, now=utcnow()
    )
    assert (applied.bodies, applied.failed) == (1, 0)
    async with db_engine.connect() as conn:
        status = await conn.scalar(
            sa.select(outbound_message.c.status).where(outbound_message.c.id == message_id)
        )
    assert status == "FAILED"


async def test_an_unpaired_surrogate_is_not_json_text_and_nothing_is_stored(
    client: httpx.AsyncClient, db_engine: AsyncEngine
) -> None:
    raw = b'{"entry": [{"changes": [{"field": "messages", "value": {"x": "\\ud800"}}]}]}'
    response = await post(client, raw)
    assert response.status_code == 400
    assert response.json()["error"]["code"] == "invalid_json"
    async with db_engine.connect() as conn:
        assert await conn.scalar(sa.select(sa.func.count()).select_from(webhook_event)) == 0
