"""Meta's webhook over HTTP, on SQLite and PostgreSQL: statuses moving messages (batched,
duplicated, out of order, before their wamid is known) and inbound messages opening the service
window."""

from __future__ import annotations

import httpx
import pytest
import sqlalchemy as sa
from sqlalchemy.ext.asyncio import AsyncEngine

import meta_payloads as meta
from factories import PHONE, accept, insert_message
from helpers import create_org_with_key, grant
from wa_outbound.db.schema import pending_status, service_window, webhook_event
from wa_outbound.db.types import utcnow
from wa_outbound.receipts.pending import apply_pending
from webhook_api_helpers import (
    Org,
    accepted,
    count,
    get_message,
    post,
    settings,  # noqa: F401  (the fixture: these tests' app settings)
    timeline,
)

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
