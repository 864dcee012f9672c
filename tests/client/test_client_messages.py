"""Messages through the client, sync and async, against the running service: send, get, list
over several pages, events, cancel, batch."""

from __future__ import annotations

import time
import uuid
from datetime import UTC, datetime, timedelta

import pytest
from wa_outbound_client import AsyncClient, Client, Conflict, ValidationError
from wa_outbound_client.models import Template

from client.service import Service

TEMPLATE: Template = {
    "name": "order_update",
    "language": "en_US",
    "components": [{"type": "body", "parameters": [{"type": "text", "text": "42"}]}],
}
LATER = datetime.now(UTC) + timedelta(days=1)


def _phone() -> str:
    return f"+3361{uuid.uuid4().int % 10**7:07d}"


def test_send_get_list_over_pages_and_cancel(sync_client: Client) -> None:
    phone = _phone()
    sync_client.consents.grant(phone, source="client-test")
    sent = [
        sync_client.messages.send(
            phone, template=TEMPLATE, metadata={"n": str(n)}, send_after=LATER
        )
        for n in range(7)
    ]
    assert {m["status"] for m in sent} == {"QUEUED"}

    got = sync_client.messages.get(sent[0]["id"])
    assert got["id"] == sent[0]["id"]
    assert got["template"] == TEMPLATE
    assert got["metadata"] == {"n": "0"}

    # Three pages of 3, 3 and 1: every message once, newest first.
    listed = list(sync_client.messages.list(to=phone, page_size=3))
    assert [m["id"] for m in listed] == [m["id"] for m in reversed(sent)]
    first = sync_client.messages.list_page(to=phone, limit=3)
    assert len(first["items"]) == 3
    assert first["next_cursor"] is not None

    cancelled = sync_client.messages.cancel(sent[0]["id"])
    assert cancelled["status"] == "CANCELLED"
    assert [e["type"] for e in sync_client.messages.events(sent[0]["id"])] == [
        "queued",
        "cancelled",
    ]
    with pytest.raises(Conflict) as raised:
        sync_client.messages.cancel(sent[0]["id"])
    assert raised.value.code == "not_cancellable"
    assert raised.value.status == 409
    assert raised.value.details == {"status": "CANCELLED"}
    assert [m["id"] for m in sync_client.messages.list(status="CANCELLED", page_size=1)] == [
        sent[0]["id"]
    ]


async def test_async_send_get_list_over_pages_and_cancel(async_client: AsyncClient) -> None:
    phone = _phone()
    await async_client.consents.grant(phone)
    sent = [
        await async_client.messages.send(phone, template=TEMPLATE, send_after=LATER)
        for _ in range(5)
    ]
    got = await async_client.messages.get(sent[-1]["id"])
    assert got["status"] == "QUEUED"
    listed = [m["id"] async for m in async_client.messages.list(to=phone, page_size=2)]
    assert listed == [m["id"] for m in reversed(sent)]
    cancelled = await async_client.messages.cancel(sent[-1]["id"])
    assert cancelled["status"] == "CANCELLED"
    events = await async_client.messages.events(sent[-1]["id"])
    assert events[-1]["type"] == "cancelled"


def test_a_sent_message_reaches_read_in_the_sandbox(sync_client: Client, service: Service) -> None:
    phone = _phone()
    sync_client.consents.grant(phone)
    message = sync_client.messages.send(phone, template=TEMPLATE)
    for _ in range(100):
        if sync_client.messages.get(message["id"])["status"] == "READ":
            break
        time.sleep(0.1)
    final = sync_client.messages.get(message["id"])
    assert final["status"] == "READ"
    assert final["provider_message_id"] is not None


def test_batch_gives_every_item_a_key_and_reports_each(
    sync_client: Client, service: Service
) -> None:
    phone = _phone()
    sync_client.consents.grant(phone)
    results = sync_client.messages.batch(
        [
            {"to": phone, "template": TEMPLATE, "send_after": LATER.isoformat()},
            {"to": _phone(), "template": TEMPLATE},  # no consent
            {"to": phone, "template": TEMPLATE, "idempotency_key": "mine"},
        ]
    )
    assert [r["index"] for r in results] == [0, 1, 2]
    assert results[0]["message"] is not None
    assert results[1]["error"] is not None
    assert results[1]["error"]["code"] == "consent_required"
    assert results[2]["message"] is not None
    again = sync_client.messages.send(phone, template=TEMPLATE, idempotency_key="mine")
    assert again["id"] == results[2]["message"]["id"]


def test_session_messages_in_reply_once_the_user_wrote(
    sync_client: Client, service: Service
) -> None:
    phone = _phone()
    sync_client.consents.grant(phone)
    with pytest.raises(ValidationError) as raised:
        sync_client.messages.send(phone, text="hello")
    assert raised.value.code == "outside_service_window"

    wamid = f"wamid.CLIENT{uuid.uuid4().hex}"
    service.inbound(phone, wamid)
    text = sync_client.messages.send(phone, text="hello", reply_to=wamid)
    assert (text["kind"], text["text"], text["reply_to"]) == (
        "text",
        {"body": "hello", "preview_url": False},
        wamid,
    )
    media = sync_client.messages.send(
        phone, media={"type": "image", "link": "https://example.com/a.png", "caption": "A"}
    )
    assert media["kind"] == "media"
    assert media["media"] == {"type": "image", "link": "https://example.com/a.png", "caption": "A"}
    interactive = sync_client.messages.send(
        phone,
        interactive={
            "type": "button",
            "body": {"text": "Confirm?"},
            "action": {"buttons": [{"type": "reply", "reply": {"id": "yes", "title": "Yes"}}]},
        },
    )
    assert interactive["kind"] == "interactive"
    assert interactive["interactive"] is not None
    assert interactive["interactive"]["body"] == {"text": "Confirm?"}
