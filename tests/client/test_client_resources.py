"""Consents, quota, the dead-letter queue, senders and webhook endpoints through the client,
against the running service."""

from __future__ import annotations

import time
import uuid
from datetime import UTC, datetime, timedelta

import pytest
from wa_outbound_client import UNSET, AsyncClient, Client, Conflict, NotFound

from client.service import Service
from client.test_client_messages import TEMPLATE
from helpers import ADMIN_TOKEN


def test_consents_grant_get_revoke(sync_client: Client) -> None:
    granted = sync_client.consents.grant("0033 6 12 00 00 10", source="form")
    assert granted["phone"] == "+33612000010"
    assert granted["status"] == "granted"
    assert sync_client.consents.get("+33612000010")["source"] == "form"
    revoked = sync_client.consents.revoke("+33612000010")
    assert revoked["status"] == "revoked"
    assert revoked["granted_at"] == granted["granted_at"]
    with pytest.raises(NotFound):
        sync_client.consents.get("+33612000011")


def test_quota_read_by_the_org_and_set_by_the_admin(service: Service, sync_client: Client) -> None:
    quota = sync_client.quota.get()
    with Client(service.base_url, ADMIN_TOKEN, org_id=quota["org_id"]) as admin:
        changed = admin.quota.set(limit=1234, messages_per_second=5)
    assert changed["limit"] == 1234
    assert changed["messages_per_second"] == 5
    assert changed["window_seconds"] == quota["window_seconds"]
    assert sync_client.quota.get()["limit"] == 1234


def test_dead_letters_listed_reported_replayed_and_discarded(sync_client: Client) -> None:
    # The sandbox fails numbers ending in 0000 with Meta's 131026 after `sent`.
    phones = [f"+3361{n}0000" for n in range(3)]
    for phone in phones:
        sync_client.consents.grant(phone)
    ids = [sync_client.messages.send(p, template=TEMPLATE)["id"] for p in phones]
    deadline = time.monotonic() + 20
    while len(list(sync_client.dlq.list())) < 3 and time.monotonic() < deadline:
        time.sleep(0.2)
    dead = list(sync_client.dlq.list(error_code="131026", page_size=2))
    assert sorted(m["id"] for m in dead) == sorted(ids)
    assert all(m["dead_lettered"] and m["status"] == "FAILED" for m in dead)

    report = sync_client.dlq.report()
    assert report["total_failed"] == 3
    assert report["top_error_codes"][0]["code"] == "131026"
    assert report["recommendations"][0].startswith("131026")

    replayed = sync_client.dlq.replay(ids[0])
    assert replayed["status"] == "QUEUED"
    assert replayed["attempts"] == 0
    sync_client.dlq.discard(ids[1])
    assert sync_client.messages.get(ids[1])["dead_lettered"] is False
    with pytest.raises(NotFound):
        sync_client.dlq.discard(ids[1])
    assert sync_client.dlq.replay_many(ids=[ids[1], ids[2]]) == 1
    with pytest.raises(ValueError, match="ids"):
        sync_client.dlq.replay_many()


async def test_senders_create_list_update_delete(async_client: AsyncClient) -> None:
    number = str(uuid.uuid4().int % 10**15)
    created = await async_client.senders.create(
        phone_number_id=number, waba_id="1022", access_token="EAAG-sandbox-token", name="Support"
    )
    assert created["default"] is True
    assert created["token_last4"] == "oken"
    assert [s["id"] for s in await async_client.senders.list()] == [created["id"]]
    paused = await async_client.senders.update(created["id"], paused=True)
    assert paused["status"] == "paused"
    assert paused["paused_reasons"] == ["manual"]
    assert paused["name"] == "Support"  # left out: unchanged
    renamed = await async_client.senders.update(created["id"], name=None, paused=False)
    assert renamed["name"] is None
    assert renamed["status"] == "active"
    with pytest.raises(Conflict) as raised:
        await async_client.senders.create(
            phone_number_id=number, waba_id="1022", access_token="EAAG-other"
        )
    assert raised.value.code == "sender_exists"
    await async_client.senders.delete(created["id"])
    with pytest.raises(NotFound):
        await async_client.senders.get(created["id"])


def test_webhook_endpoints_crud_rotation_deliveries_and_recover(sync_client: Client) -> None:
    created = sync_client.webhook_endpoints.create(
        "http://127.0.0.1:9/hooks", events=["message.delivered"], description="orders"
    )
    assert created["secret"].startswith("whsec_")
    assert created["events"] == ["message.delivered"]
    endpoint_id = created["id"]
    assert [e["id"] for e in sync_client.webhook_endpoints.list()] == [endpoint_id]
    assert "secret" not in sync_client.webhook_endpoints.get(endpoint_id)

    updated = sync_client.webhook_endpoints.update(
        endpoint_id, events=None, description=UNSET, enabled=False
    )
    assert updated["events"] is None
    assert updated["description"] == "orders"
    assert updated["enabled"] is False
    assert updated["disabled_reason"] == "manual"

    rotated = sync_client.webhook_endpoints.rotate_secret(endpoint_id)
    assert rotated.startswith("whsec_")
    assert rotated != created["secret"]

    # Each status change of a message makes a delivery, pending while the endpoint is disabled.
    sync_client.consents.grant("+33612000020")
    message = sync_client.messages.send("+33612000020", template=TEMPLATE)
    deadline = time.monotonic() + 20
    while sync_client.messages.get(message["id"])["status"] != "READ":
        assert time.monotonic() < deadline
        time.sleep(0.1)
    deliveries = list(sync_client.webhook_endpoints.deliveries(endpoint_id, page_size=3))
    assert sorted(d["event_type"] for d in deliveries) == [
        "consent.changed",
        "message.accepted",
        "message.delivered",
        "message.read",
        "message.sent",
    ]
    pending = list(sync_client.webhook_endpoints.deliveries(endpoint_id, status="pending"))
    assert [d["id"] for d in pending] == [d["id"] for d in deliveries]
    since = datetime.now(UTC) - timedelta(hours=1)
    assert sync_client.webhook_endpoints.recover(endpoint_id, since=since) == 0
    retried = sync_client.webhook_endpoints.retry_delivery(endpoint_id, pending[-1]["id"])
    assert retried["status"] == "pending"

    sync_client.webhook_endpoints.delete(endpoint_id)
    with pytest.raises(NotFound):
        sync_client.webhook_endpoints.get(endpoint_id)


def test_erasing_a_contact_redacts_its_messages(sync_client: Client) -> None:
    phone = "+33612000040"
    sync_client.consents.grant(phone)
    waiting = sync_client.messages.send(
        phone, template=TEMPLATE, send_after=datetime.now(UTC) + timedelta(days=1)
    )
    erased = sync_client.contacts.erase(phone)
    assert erased == {"messages_redacted": 1, "messages_cancelled": 1}
    message = sync_client.messages.get(waiting["id"])
    assert message["to"] is None
    assert message["redacted"] is True
    assert message["status"] == "CANCELLED"
    with pytest.raises(NotFound):
        sync_client.consents.get(phone)
    # Again: nothing more to erase.
    assert sync_client.contacts.erase(phone) == {"messages_redacted": 0, "messages_cancelled": 0}
