"""Meta's webhook over HTTP, on SQLite and PostgreSQL: handshake, signature, limits, and what is
stored or answered when the database fails (statuses and inbound messages:
test_webhooks_api_statuses.py)."""

from __future__ import annotations

from collections.abc import AsyncIterator

import httpx
import orjson
import pytest
import sqlalchemy as sa
from sqlalchemy.ext.asyncio import AsyncEngine

import meta_payloads as meta
from helpers import app_client, make_settings
from wa_outbound.api.webhooks import MAX_BODY_BYTES
from wa_outbound.app import create_app
from wa_outbound.db.schema import pending_status, webhook_event
from webhook_api_helpers import (
    SECRET,
    URL,
    VERIFY_TOKEN,
    Org,
    accepted,
    count,
    get_message,
    post,
    settings,  # noqa: F401  (the fixture: these tests' app settings)
)

# --- handshake ---------------------------------------------------------------------------


async def test_handshake_echoes_the_challenge_for_the_right_token(
    client: httpx.AsyncClient,
) -> None:
    params = {
        "hub.mode": "subscribe",
        "hub.verify_token": VERIFY_TOKEN,
        "hub.challenge": "1158201444",
    }
    response = await client.get(URL, params=params)
    assert response.status_code == 200
    assert response.text == "1158201444"
    assert response.headers["content-type"].startswith("text/plain")


@pytest.mark.parametrize(
    ("mode", "token"), [("subscribe", "wrong"), ("subscribe", ""), ("unsubscribe", VERIFY_TOKEN)]
)
async def test_handshake_with_a_wrong_token_or_mode_is_forbidden(
    client: httpx.AsyncClient, mode: str, token: str
) -> None:
    params = {"hub.mode": mode, "hub.verify_token": token, "hub.challenge": "42"}
    response = await client.get(URL, params=params)
    assert response.status_code == 403
    assert response.json()["error"]["code"] == "forbidden"


async def test_handshake_is_forbidden_when_no_verify_token_is_configured(sqlite_url: str) -> None:
    async with app_client(create_app(make_settings(sqlite_url))) as client:
        params = {"hub.mode": "subscribe", "hub.verify_token": "", "hub.challenge": "42"}
        assert (await client.get(URL, params=params)).status_code == 403


async def test_the_webhook_is_described_in_the_openapi_schema(client: httpx.AsyncClient) -> None:
    schema = (await client.get("/openapi.json")).json()
    path = schema["paths"]["/webhooks/whatsapp"]
    assert {"get", "post"} <= set(path)
    headers = [p["name"] for p in path["post"]["parameters"] if p["in"] == "header"]
    assert headers == ["X-Hub-Signature-256"]
    assert "application/json" in path["post"]["requestBody"]["content"]


# --- signature, size, shape --------------------------------------------------------------


async def test_signed_body_is_accepted_and_stored_as_received(
    client: httpx.AsyncClient, db_engine: AsyncEngine
) -> None:
    raw = orjson.dumps(meta.envelope(statuses=[meta.status("wamid.NOBODY", "sent")]))
    response = await post(client, None, raw=raw)
    assert response.status_code == 200
    assert response.json() == {"status": "received"}
    async with db_engine.connect() as conn:
        [row] = (await conn.execute(sa.select(webhook_event))).all()
    assert row.body == raw
    assert row.processed_at is not None
    assert (row.attempts, row.last_error) == (1, None)


async def test_the_signature_is_checked_on_the_raw_bytes_not_on_reserialised_json(
    client: httpx.AsyncClient, db_engine: AsyncEngine
) -> None:
    # Meta escapes non-ASCII (\u00e9) and may format freely: the bytes are what is signed.
    raw = (
        b'{\n  "object": "whatsapp_business_account",\n'
        b'  "note": "caf\\u00e9 \xc3\xa9",\n  "entry": []\n}'
    )
    assert (await post(client, None, raw=raw)).status_code == 200
    reserialised = orjson.dumps(orjson.loads(raw))
    response = await client.post(
        URL, content=raw, headers={"X-Hub-Signature-256": meta.sign(reserialised, SECRET)}
    )
    assert response.status_code == 401
    async with db_engine.connect() as conn:
        assert (await conn.execute(sa.select(webhook_event.c.body))).scalars().all() == [raw]


async def test_unsigned_body_is_refused_and_nothing_is_stored_or_changed(
    client: httpx.AsyncClient, org: Org, db_engine: AsyncEngine
) -> None:
    org_id, auth = org
    message_id, wamid = await accepted(db_engine, org_id)
    body = orjson.dumps(meta.envelope(statuses=[meta.status(wamid, "delivered")]))
    response = await client.post(URL, content=body, headers={"Content-Type": "application/json"})
    assert response.status_code == 401
    assert response.json()["error"]["code"] == "unauthorized"
    assert await count(db_engine, webhook_event) == 0
    assert (await get_message(client, auth, message_id))["status"] == "ACCEPTED"


@pytest.mark.parametrize(
    "signature",
    [
        meta.sign(b"{}", "another-secret"),
        meta.sign(b'{"entry": []}', SECRET),  # valid, for another body
        meta.sign(b"{}", SECRET).removeprefix("sha256="),  # no algorithm prefix
        "sha256=",
        "sha256=zz",
        "sha256=é",
    ],
)
async def test_wrong_signature_is_refused(
    client: httpx.AsyncClient, db_engine: AsyncEngine, signature: str
) -> None:
    response = await client.post(
        URL, content=b"{}", headers={b"X-Hub-Signature-256": signature.encode()}
    )
    assert response.status_code == 401
    assert await count(db_engine, webhook_event) == 0


async def test_every_post_is_refused_without_an_app_secret(sqlite_url: str) -> None:
    async with app_client(create_app(make_settings(sqlite_url))) as client:
        response = await post(client, {}, secret="")
        assert response.status_code == 401
        assert "WA_APP_SECRET" in response.json()["error"]["message"]


@pytest.mark.parametrize(
    "raw", [b"", b"not json", b'{"entry": [', b"\xff\xfe", b"[]", b"42", b'"x"']
)
async def test_a_body_that_is_not_a_json_object_is_a_bad_request(
    client: httpx.AsyncClient, db_engine: AsyncEngine, raw: bytes
) -> None:
    response = await post(client, None, raw=raw)
    assert response.status_code == 400
    assert response.json()["error"]["code"] in ("invalid_json", "bad_request")
    assert await count(db_engine, webhook_event) == 0


async def test_a_body_of_exactly_three_megabytes_is_accepted(client: httpx.AsyncClient) -> None:
    base = orjson.dumps(meta.envelope(statuses=[]))
    raw = base[:-1] + b" " * (MAX_BODY_BYTES - len(base)) + b"}"
    assert len(raw) == MAX_BODY_BYTES
    assert (await post(client, None, raw=raw)).status_code == 200


async def test_a_larger_declared_body_is_refused_with_413(
    client: httpx.AsyncClient, db_engine: AsyncEngine
) -> None:
    raw = b"{" + b" " * MAX_BODY_BYTES + b"}"
    response = await post(client, None, raw=raw)
    assert response.status_code == 413
    assert response.json()["error"]["code"] == "payload_too_large"
    assert await count(db_engine, webhook_event) == 0


async def test_a_larger_streamed_body_without_length_is_refused_with_413(
    client: httpx.AsyncClient,
) -> None:
    raw = b"{" + b" " * MAX_BODY_BYTES + b"}"

    async def chunks() -> AsyncIterator[bytes]:
        for start in range(0, len(raw), 256 * 1024):
            yield raw[start : start + 256 * 1024]

    headers = {"X-Hub-Signature-256": meta.sign(raw, SECRET)}
    response = await client.post(URL, content=chunks(), headers=headers)
    assert "content-length" not in response.request.headers
    assert response.status_code == 413


# --- failures ----------------------------------------------------------------------------


async def test_a_database_that_cannot_store_the_body_answers_an_error_so_meta_retries(
    client: httpx.AsyncClient, org: Org, db_engine: AsyncEngine
) -> None:
    org_id, auth = org
    message_id, wamid = await accepted(db_engine, org_id)
    async with db_engine.begin() as conn:
        await conn.run_sync(webhook_event.drop)
    response = await post(client, meta.envelope(statuses=[meta.status(wamid, "read")]))
    assert response.status_code >= 500
    assert "error" in response.json()
    assert (await get_message(client, auth, message_id))["status"] == "ACCEPTED"


async def test_a_processing_failure_still_answers_200_and_keeps_the_body_for_retry(
    client: httpx.AsyncClient, db_engine: AsyncEngine
) -> None:
    async with db_engine.begin() as conn:
        await conn.run_sync(pending_status.drop)  # storing a pending status will fail
    response = await post(client, meta.envelope(statuses=[meta.status("wamid.X", "sent")]))
    assert response.status_code == 200
    async with db_engine.connect() as conn:
        [row] = (await conn.execute(sa.select(webhook_event))).all()
    assert row.processed_at is None
    assert row.attempts == 1
    assert row.last_error
