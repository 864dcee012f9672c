"""Meta's webhook over HTTP, on SQLite and PostgreSQL: handshake, signature, limits, statuses,
pending statuses, inbound messages, and what is stored."""

from __future__ import annotations

import uuid
from collections.abc import AsyncIterator
from typing import Any

import httpx
import orjson
import pytest
import sqlalchemy as sa
from sqlalchemy.ext.asyncio import AsyncEngine

import meta_payloads as meta
from factories import PHONE, accept, insert_message
from helpers import app_client, create_org_with_key, grant, make_settings
from wa_outbound.api.webhooks import MAX_BODY_BYTES
from wa_outbound.app import create_app
from wa_outbound.config import Settings
from wa_outbound.db.schema import pending_status, service_window, webhook_event
from wa_outbound.db.types import utcnow
from wa_outbound.receipts.pending import apply_pending

SECRET = "test-app-secret"
VERIFY_TOKEN = "test-verify-token"
URL = "/webhooks/whatsapp"
Org = tuple[str, dict[str, str]]


@pytest.fixture
def settings(database_url: str) -> Settings:
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


# --- statuses ----------------------------------------------------------------------------


@pytest.mark.parametrize(
    ("raw", "expected", "stamped"),
    [
        ("sent", "SENT", "sent_at"),
        ("delivered", "DELIVERED", "delivered_at"),
        ("read", "READ", "read_at"),
        ("failed", "FAILED", "failed_at"),
    ],
)
async def test_each_status_moves_the_message_and_joins_its_timeline(
    client: httpx.AsyncClient,
    org: Org,
    db_engine: AsyncEngine,
    raw: str,
    expected: str,
    stamped: str,
) -> None:
    org_id, auth = org
    message_id, wamid = await accepted(db_engine, org_id)
    errors = [meta.error(131026, "Message undeliverable", details="Unable to deliver")]
    item = meta.status(
        wamid, raw, timestamp=1_780_000_000, errors=errors if raw == "failed" else None
    )
    assert (await post(client, meta.envelope(statuses=[item]))).status_code == 200

    message = await get_message(client, auth, message_id)
    assert message["status"] == expected
    assert message[stamped].startswith("2026-05-28T")
    assert message["dead_lettered"] is (raw == "failed")
    if raw == "failed":
        assert message["error"]["code"] == "131026"
        assert message["error"]["title"] == "Message undeliverable"
        assert message["error"]["retryable"] is False
    [event] = await timeline(client, auth, message_id)
    assert (event["type"], event["from_status"], event["to_status"]) == (
        f"status.{raw}",
        "ACCEPTED",
        expected,
    )
    assert event["actor"] == "webhook"


@pytest.mark.parametrize("with_pricing", [True, False])
async def test_real_payload_shapes_with_and_without_pricing_and_recipient(
    client: httpx.AsyncClient, org: Org, db_engine: AsyncEngine, with_pricing: bool
) -> None:
    org_id, auth = org
    message_id, wamid = await accepted(db_engine, org_id)
    statuses = [
        meta.status(wamid, "sent", with_pricing=with_pricing),
        meta.status(wamid, "delivered", with_pricing=with_pricing, recipient_id=None),
    ]
    body = meta.envelope(statuses=statuses)
    body["entry"][0]["changes"][0]["value"]["statuses"][0]["biz_opaque_callback_data"] = "x"
    body["entry"][0]["unknown_field"] = {"ignored": True}
    assert (await post(client, body)).status_code == 200
    assert (await get_message(client, auth, message_id))["status"] == "DELIVERED"
    events = await timeline(client, auth, message_id)
    assert [e["details"].get("recipient_id") for e in events] == ["33612345678", None]


async def test_a_batched_payload_moves_several_messages_and_keeps_unknown_ones(
    client: httpx.AsyncClient, org: Org, db_engine: AsyncEngine
) -> None:
    org_id, auth = org
    messages = [await accepted(db_engine, org_id) for _ in range(3)]
    statuses = [meta.status(wamid, "sent") for _, wamid in messages]
    statuses += [meta.status(messages[0][1], "read"), meta.status("wamid.NOT_YET", "delivered")]
    statuses.append(meta.status(messages[1][1], "played"))
    assert (await post(client, meta.envelope(statuses=statuses))).status_code == 200
    found = [(await get_message(client, auth, mid))["status"] for mid, _ in messages]
    assert found == ["READ", "SENT", "SENT"]
    assert await count(db_engine, pending_status) == 1
    second = await timeline(client, auth, messages[1][0])
    assert [(e["type"], e["details"]["ignored"]) for e in second] == [
        ("status.sent", False),
        ("status.played", True),
    ]


async def test_failed_after_delivered_is_ignored_and_shown_in_the_timeline(
    client: httpx.AsyncClient, org: Org, db_engine: AsyncEngine
) -> None:
    org_id, auth = org
    message_id, wamid = await accepted(db_engine, org_id)
    await post(client, meta.envelope(statuses=[meta.status(wamid, "delivered")]))
    failed = meta.status(wamid, "failed", errors=[meta.error(131026, "Undeliverable")])
    assert (await post(client, meta.envelope(statuses=[failed]))).status_code == 200
    message = await get_message(client, auth, message_id)
    assert (message["status"], message["dead_lettered"], message["error"]) == (
        "DELIVERED",
        False,
        None,
    )
    last = (await timeline(client, auth, message_id))[-1]
    assert last["details"]["ignored"] is True
    assert last["details"]["reason"] == "already_delivered"


async def test_a_status_before_the_send_commits_is_applied_once_the_wamid_is_known(
    client: httpx.AsyncClient, org: Org, db_engine: AsyncEngine
) -> None:
    org_id, auth = org
    async with db_engine.begin() as conn:
        message_id = await insert_message(conn, org_id=org_id, wamid=None, status="SENDING")
    wamid = "wamid.RACE"
    body = meta.envelope(statuses=[meta.status(wamid, "sent"), meta.status(wamid, "delivered")])
    assert (await post(client, body)).status_code == 200
    assert (await get_message(client, auth, str(message_id)))["status"] == "SENDING"

    async with db_engine.begin() as conn:  # the dispatcher commits the send
        await accept(conn, message_id, wamid)
        await apply_pending(conn, [wamid], now=utcnow())
    assert (await get_message(client, auth, str(message_id)))["status"] == "DELIVERED"
    assert await count(db_engine, pending_status) == 0


async def test_a_duplicate_webhook_changes_nothing(
    client: httpx.AsyncClient, org: Org, db_engine: AsyncEngine
) -> None:
    org_id, auth = org
    message_id, wamid = await accepted(db_engine, org_id)
    body = meta.envelope(statuses=[meta.status(wamid, "delivered")])
    await post(client, body)
    before = await get_message(client, auth, message_id)
    assert (await post(client, body)).status_code == 200
    assert await get_message(client, auth, message_id) == before
    events = await timeline(client, auth, message_id)
    assert [e["details"]["ignored"] for e in events] == [False, True]


async def test_other_fields_and_value_errors_are_accepted_and_change_nothing(
    client: httpx.AsyncClient, db_engine: AsyncEngine
) -> None:
    template_update = meta.envelope(
        field="message_template_status_update",
        value_extra={"event": "APPROVED", "message_template_id": 1},
    )
    value_error = meta.envelope(value_extra={"errors": [meta.error(131000, "Something wrong")]})
    odd = {"object": "whatsapp_business_account", "entry": [{"changes": "not a list"}, 3]}
    for body in (template_update, value_error, odd, {}):
        assert (await post(client, body)).status_code == 200
    assert await count(db_engine, webhook_event) == 4
    assert await count(db_engine, pending_status) == 0


# --- inbound messages --------------------------------------------------------------------


async def test_an_inbound_message_opens_the_service_window_for_text(
    client: httpx.AsyncClient, org: Org, db_engine: AsyncEngine
) -> None:
    _, auth = org
    await grant(client, auth, PHONE)
    text = {"to": PHONE, "text": {"body": "hello"}}
    refused = await client.post("/v1/messages", json=text, headers=auth)
    assert refused.status_code == 422
    assert refused.json()["error"]["code"] == "outside_service_window"

    inbound = meta.envelope(value_extra=meta.inbound_text(PHONE, "hi there"))
    assert (await post(client, inbound)).status_code == 200
    assert (await client.post("/v1/messages", json=text, headers=auth)).status_code == 202


async def test_an_inbound_message_opens_windows_only_for_orgs_that_know_the_number(
    client: httpx.AsyncClient, org: Org, db_engine: AsyncEngine
) -> None:
    org_id, auth = org
    await grant(client, auth, PHONE)
    await create_org_with_key(client, "Stranger")
    inbound = meta.envelope(value_extra=meta.inbound_text(PHONE, "hi"))
    inbound["entry"][0]["changes"][0]["value"]["messages"].append({"from": "not a phone"})
    assert (await post(client, inbound)).status_code == 200
    async with db_engine.connect() as conn:
        rows = (await conn.execute(sa.select(service_window))).all()
    assert [(row.org_id, row.phone) for row in rows] == [(org_id, PHONE)]


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
