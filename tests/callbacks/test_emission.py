"""Callback events are written in the transaction of the change they report, on SQLite and
PostgreSQL: a message's status changes in order with growing sequences, inbound messages as
`message.received` (once, however often Meta repeats the body), consent changes; one delivery
per subscribed endpoint of the organisation, none for other organisations, none at all for an
organisation without endpoints; a rolled-back change emits nothing."""

from __future__ import annotations

import uuid
from typing import Any

import orjson
import pytest
import sqlalchemy as sa
from sqlalchemy.ext.asyncio import AsyncEngine

import meta_payloads as meta
from dispatch_helpers import message, new_org, queue
from factories import accept, insert_sender
from fake_meta import FakeMeta, running_fake_meta
from helpers import make_settings
from routing_helpers import shared_sender
from wa_outbound.contacts import consents
from wa_outbound.db.callback_schema import callback_delivery, callback_endpoint, callback_event
from wa_outbound.db.types import utcnow
from wa_outbound.dispatch.dispatcher import Dispatcher
from wa_outbound.events import outgoing
from wa_outbound.metrics import Metrics
from wa_outbound.outbox import messages
from wa_outbound.senders import health, service
from wa_outbound.webhooks import intake
from wa_outbound.whatsapp.cloud import CloudProvider

USER = "+33612345678"
OWN_NUMBER = "5550000123"


async def add_endpoint(
    engine: AsyncEngine, org_id: str, events: list[str] | None = None
) -> uuid.UUID:
    endpoint_id = uuid.uuid4()
    now = utcnow()
    async with engine.begin() as conn:
        await conn.execute(
            callback_endpoint.insert().values(
                id=endpoint_id,
                org_id=org_id,
                url="https://example.com/hook",
                events=events,
                enabled=True,
                secret="plain:whsec_c2VjcmV0",
                created_at=now,
                updated_at=now,
            )
        )
    return endpoint_id


async def events_of(engine: AsyncEngine, org_id: str) -> list[dict[str, Any]]:
    e = callback_event.c
    async with engine.connect() as conn:
        rows = await conn.execute(
            sa.select(callback_event).where(e.org_id == org_id).order_by(e.seq)
        )
        return [dict(row._mapping) for row in rows]


async def deliveries_to(engine: AsyncEngine, endpoint_id: uuid.UUID) -> list[dict[str, Any]]:
    d = callback_delivery.c
    async with engine.connect() as conn:
        rows = await conn.execute(
            sa.select(callback_delivery).where(d.endpoint_id == endpoint_id).order_by(d.event_seq)
        )
        return [dict(row._mapping) for row in rows]


async def process(engine: AsyncEngine, body: dict[str, Any]) -> None:
    async with engine.begin() as conn:
        await intake.process(conn, body, now=utcnow())


@pytest.fixture
async def shared(db_engine: AsyncEngine) -> AsyncEngine:
    await shared_sender(db_engine)
    return db_engine


async def send_through_meta(database_url: str, engine: AsyncEngine) -> None:
    """One round of the dispatcher, with the Cloud API client, against the fake Graph API."""
    fake = FakeMeta(token="meta-token")
    async with running_fake_meta(fake) as base_url:
        settings = make_settings(
            database_url,
            provider="cloud",
            graph_api_base_url=base_url,
            access_token="meta-token",
            phone_number_id=meta.PHONE_NUMBER_ID,
            app_secret="app-secret",
            send_timeout_seconds=1.0,
        )
        provider = CloudProvider(settings)
        try:
            dispatcher = Dispatcher(
                settings=settings, engine=engine, provider=provider, metrics=Metrics()
            )
            assert await dispatcher.run_once() == 1
        finally:
            await provider.close()


async def test_a_message_s_changes_are_events_in_order_to_each_subscribed_endpoint(
    shared: AsyncEngine, database_url: str
) -> None:
    engine = shared
    org_id = await new_org(engine, USER)
    every = await add_endpoint(engine, org_id)
    delivered_only = await add_endpoint(engine, org_id, ["message.delivered"])
    other_org = await new_org(engine, USER)
    elsewhere = await add_endpoint(engine, other_org)
    [message_id] = await queue(engine, org_id, USER)
    await send_through_meta(database_url, engine)
    wamid = (await message(engine, message_id))["provider_message_id"]
    await process(engine, meta.envelope(statuses=[meta.status(wamid, "sent")]))
    # Two steps in one body: two events, in the body's order.
    await process(
        engine,
        meta.envelope(statuses=[meta.status(wamid, "delivered"), meta.status(wamid, "read")]),
    )
    # A repeated status changes nothing and reports nothing.
    await process(engine, meta.envelope(statuses=[meta.status(wamid, "read")]))

    events = await events_of(engine, org_id)
    assert [e["type"] for e in events] == [
        "message.accepted",
        "message.sent",
        "message.delivered",
        "message.read",
    ]
    assert [e["data"]["message"]["status"] for e in events] == [
        "ACCEPTED",
        "SENT",
        "DELIVERED",
        "READ",
    ]
    assert all(e["message_id"] == message_id for e in events)
    assert all(e["data"]["message"]["id"] == str(message_id) for e in events)
    seqs = [e["seq"] for e in events]
    assert seqs == sorted(set(seqs))
    assert [d["event_seq"] for d in await deliveries_to(engine, every)] == seqs
    [only] = await deliveries_to(engine, delivered_only)
    assert only["event_seq"] == seqs[2]
    assert (only["status"], only["attempts"], only["message_id"]) == ("pending", 0, message_id)
    assert await deliveries_to(engine, elsewhere) == []
    assert await events_of(engine, other_org) == []

    # The body carries the sequence in `data`; the message object is the API's.
    first = events[0]
    body = orjson.loads(
        outgoing.body(
            event_id=first["id"],
            seq=first["seq"],
            type=first["type"],
            occurred_at=first["occurred_at"],
            data=orjson.dumps(first["data"]).decode(),  # as a claim reads it: JSON text
            message_id=first["message_id"],
        )
    )
    assert body["id"] == str(first["id"])
    assert body["type"] == "message.accepted"
    assert body["timestamp"].endswith("Z")
    assert body["data"]["sequence"] == first["seq"]
    assert set(body["data"]["message"]) >= {"id", "to", "status", "provider_message_id"}
    assert body["data"]["message"]["provider_message_id"] == wamid


async def test_an_org_without_endpoints_gets_no_event(shared: AsyncEngine) -> None:
    org_id = await new_org(shared, USER)
    [message_id] = await queue(shared, org_id, USER)
    async with shared.begin() as conn:
        await accept(conn, message_id, "wamid.NONE")
    await process(shared, meta.envelope(statuses=[meta.status("wamid.NONE", "delivered")]))
    assert await events_of(shared, org_id) == []


async def test_a_rolled_back_change_emits_nothing_and_a_committed_one_does(
    db_engine: AsyncEngine,
) -> None:
    org_id = await new_org(db_engine, USER)
    endpoint = await add_endpoint(db_engine, org_id)
    [message_id] = await queue(db_engine, org_id, USER)

    class Abort(Exception):
        pass

    async def cancel_then_fail() -> None:
        async with db_engine.begin() as conn:
            await messages.cancel_message(conn, org_id=org_id, message_id=message_id, actor="t")
            assert len(await _count(conn)) == 1  # written, in this transaction only
            raise Abort

    with pytest.raises(Abort):
        await cancel_then_fail()
    assert await events_of(db_engine, org_id) == []
    async with db_engine.begin() as conn:
        await messages.cancel_message(conn, org_id=org_id, message_id=message_id, actor="t")
    [event] = await events_of(db_engine, org_id)
    assert event["type"] == "message.cancelled"
    assert event["data"]["message"]["status"] == "CANCELLED"
    assert len(await deliveries_to(db_engine, endpoint)) == 1


async def _count(conn: Any) -> list[Any]:
    return list(await conn.execute(sa.select(callback_event.c.seq)))


async def test_inbound_messages_are_reported_once_to_the_number_s_org(
    shared: AsyncEngine,
) -> None:
    engine = shared
    org_id = await new_org(engine, USER)
    async with engine.begin() as conn:
        sender_id = await insert_sender(conn, org_id, phone_number_id=OWN_NUMBER)
    endpoint = await add_endpoint(engine, org_id, ["message.received"])
    [ours] = await queue(engine, org_id, USER, sender=str(sender_id))
    async with engine.begin() as conn:
        await accept(conn, ours, "wamid.OURS")
    text = meta.inbound_reply(USER, "Yes please", replied_wamid="wamid.OURS")
    button = {
        "contacts": [{"wa_id": USER.lstrip("+")}],
        "messages": [
            {
                "from": USER.lstrip("+"),
                "id": "wamid.BUTTON",
                "timestamp": "1764690000",
                "type": "button",
                "button": {"payload": "STOP_PROMOS", "text": "Stop promotions"},
            },
            {
                "from_user_id": "US.13491208655302741918",
                "id": "wamid.IMAGE",
                "timestamp": "1764690001",
                "type": "image",
                "image": {"id": "1479537139650973", "mime_type": "image/jpeg", "caption": "Hi"},
            },
        ],
    }
    for value in (text, button, text):  # Meta repeats a body: reported once
        await process(engine, meta.envelope(value_extra=value, phone_number_id=OWN_NUMBER))

    events = await events_of(engine, org_id)
    assert [e["type"] for e in events] == ["message.received"] * 3
    by_wamid = {e["data"]["wamid"]: e["data"] for e in events}
    reply = by_wamid[text["messages"][0]["id"]]
    assert reply["from"] == USER
    assert reply["type"] == "text"
    assert reply["text"] == "Yes please"
    assert reply["sender_id"] == str(sender_id)
    assert reply["context_message_id"] == str(ours)
    assert reply["received_at"].endswith("Z")
    assert uuid.UUID(reply["id"])
    pressed = by_wamid["wamid.BUTTON"]
    assert (pressed["type"], pressed["payload"], pressed["text"]) == (
        "button",
        "STOP_PROMOS",
        "Stop promotions",
    )
    assert "context_message_id" not in pressed
    image = by_wamid["wamid.IMAGE"]
    assert (image["from"], image["from_user_id"]) == (None, "US.13491208655302741918")
    assert (image["type"], image["media_id"], image["text"]) == ("image", "1479537139650973", "Hi")
    assert all(e["message_id"] is None for e in events)
    assert len(await deliveries_to(engine, endpoint)) == 3


async def test_the_shared_number_reports_only_replies_to_the_org_replied_to(
    shared: AsyncEngine,
) -> None:
    engine = shared
    org_id = await new_org(engine, USER)
    other = await new_org(engine, USER)
    await add_endpoint(engine, org_id)
    await add_endpoint(engine, other)
    [ours] = await queue(engine, org_id, USER)
    async with engine.begin() as conn:
        await accept(conn, ours, "wamid.SHARED")
    await process(engine, meta.envelope(value_extra=meta.inbound_text(USER, "hello")))
    await process(
        engine,
        meta.envelope(value_extra=meta.inbound_reply(USER, "ok", replied_wamid="wamid.SHARED")),
    )
    received = [e for e in await events_of(engine, org_id) if e["type"] == "message.received"]
    [reply] = received
    assert reply["data"]["context_message_id"] == str(ours)
    assert reply["data"]["sender_id"] is None
    assert [e for e in await events_of(engine, other) if e["type"] == "message.received"] == []


async def test_a_consent_change_is_reported(db_engine: AsyncEngine) -> None:
    org_id = await new_org(db_engine)
    endpoint = await add_endpoint(db_engine, org_id, ["consent.changed"])
    async with db_engine.begin() as conn:
        await consents.set_consent(
            conn, org_id=org_id, phone=USER, status="revoked", source="crm", actor="t"
        )
    [event] = await events_of(db_engine, org_id)
    assert event["type"] == "consent.changed"
    assert event["message_id"] is None
    assert event["data"]["phone"] == USER
    assert event["data"]["status"] == "revoked"
    assert event["data"]["source"] == "crm"
    assert len(await deliveries_to(db_engine, endpoint)) == 1


async def test_sender_changes_are_reported_once_each(db_engine: AsyncEngine) -> None:
    org_id = await new_org(db_engine)
    endpoint = await add_endpoint(db_engine, org_id, ["sender.updated"])
    async with db_engine.begin() as conn:
        sender_id = await insert_sender(conn, org_id, phone_number_id=OWN_NUMBER)
    async with db_engine.begin() as conn:  # as a revoked token does
        await health.add_reason(
            conn, "token_invalid", now=utcnow(), actor="t", sender_ids=[sender_id]
        )
    async with db_engine.begin() as conn:  # a PATCH that pauses and renames: one event
        await service.update(
            conn,
            org_id,
            sender_id,
            {"paused": True, "name": "Support"},
            encrypt=lambda token: f"plain:{token}",
            info=None,
            now=utcnow(),
            actor="t",
        )
    events = await events_of(db_engine, org_id)
    assert [e["type"] for e in events] == ["sender.updated", "sender.updated"]
    first, second = (e["data"] for e in events)
    assert (first["id"], first["status"], first["paused_reasons"]) == (
        str(sender_id),
        "paused",
        ["token_invalid"],
    )
    assert (second["name"], sorted(second["paused_reasons"])) == (
        "Support",
        ["manual", "token_invalid"],
    )
    assert "access_token" not in second
    assert len(await deliveries_to(db_engine, endpoint)) == 2
