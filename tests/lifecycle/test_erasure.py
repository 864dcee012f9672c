"""DELETE /v1/contacts/{phone}: after it, no column of any table holds the number (with or
without +) or a text sent to or received from it; the waiting messages are cancelled, the
others redacted; another organisation's data about the same number is untouched; errors use
the error body and never tell one organisation about another."""

from __future__ import annotations

import uuid
from collections.abc import AsyncIterator
from dataclasses import dataclass
from datetime import timedelta
from typing import Any

import httpx
import orjson
import pytest
import sqlalchemy as sa
from sqlalchemy.ext.asyncio import AsyncEngine

import meta_payloads as meta
from factories import accept, insert_sender
from helpers import ADMIN, TEMPLATE, app_client, create_org_with_key, grant, make_settings
from lifecycle_rows import add_endpoint
from wa_outbound.app import create_app
from wa_outbound.db.callback_schema import callback_delivery, callback_event, metadata
from wa_outbound.db.engine import create_engine
from wa_outbound.db.schema import outbound_message, pair_slot, waba_reach
from wa_outbound.db.types import utcnow
from wa_outbound.webhooks import intake

USER = "+33612345678"
OWN_NUMBER = "5550000777"
OWN_WABA = "waba-777"
SENT_PARAM = "Parcel for Jeanne at 12 rue Secrète"
SENT_TEXT = "Your doctor's appointment is at 9"
META_VALUE = "customer-jeanne-4471"
RECEIVED_TEXT = "Please call me back about my loan"
PROFILE = "Jeanne Dupont-Secret"
CAPTION = "Scan of Jeanne's passport"
LINK = "https://example.com/jeanne-passport.png"
BODY = "Jeanne, confirm the transfer of 5,000 EUR?"
BUTTON = "Yes, Jeanne"
INTERACTIVE = {
    "type": "button",
    "body": {"text": BODY},
    "action": {"buttons": [{"type": "reply", "reply": {"id": "confirm", "title": BUTTON}}]},
}
NEEDLES = (
    USER,
    USER[1:],
    SENT_PARAM,
    SENT_TEXT,
    META_VALUE,
    RECEIVED_TEXT,
    PROFILE,
    CAPTION,
    LINK,
    BODY,
    BUTTON,
)


@dataclass
class Service:
    client: httpx.AsyncClient
    engine: AsyncEngine


@pytest.fixture
async def service(database_url: str) -> AsyncIterator[Service]:
    settings = make_settings(database_url, retention_days=0)
    engine = create_engine(settings)
    try:
        async with app_client(create_app(settings)) as client:
            yield Service(client, engine)
    finally:
        await engine.dispose()


def template(text: str) -> dict[str, Any]:
    return TEMPLATE | {
        "components": [{"type": "body", "parameters": [{"type": "text", "text": text}]}]
    }


async def queue(service: Service, auth: dict[str, str], body: dict[str, Any]) -> uuid.UUID:
    response = await service.client.post("/v1/messages", json=body, headers=auth)
    assert response.status_code == 202, response.text
    return uuid.UUID(response.json()["id"])


async def webhook(service: Service, value: dict[str, Any]) -> None:
    body = meta.envelope(value_extra=value, phone_number_id=OWN_NUMBER)
    processed = await intake.receive(service.engine, orjson.dumps(body), body, now=utcnow())
    assert processed is not None


async def set_row(service: Service, message_id: uuid.UUID, **values: Any) -> None:
    async with service.engine.begin() as conn:
        await conn.execute(
            outbound_message.update().where(outbound_message.c.id == message_id).values(values)
        )


async def a_contacts_history(service: Service) -> tuple[str, dict[str, str], list[uuid.UUID]]:
    """An org with its own number, a webhook endpoint, and every kind of trace of USER: consent,
    an inbound message, queued template, text, media and interactive messages, one delivered,
    one being sent, one dead-lettered, a pending status, the limiter's rows. Returns (org,
    auth, message ids)."""
    org_id, auth = await create_org_with_key(service.client)
    async with service.engine.begin() as conn:
        sender_id = await insert_sender(conn, org_id, phone_number_id=OWN_NUMBER, waba_id=OWN_WABA)
        await add_endpoint(conn, org_id)
    await grant(service.client, auth, USER)
    await webhook(service, meta.inbound_text(USER, RECEIVED_TEXT, name=PROFILE))
    queued = await queue(
        service,
        auth,
        {"to": USER, "template": template(SENT_PARAM), "metadata": {"ref": META_VALUE}},
    )
    text = await queue(service, auth, {"to": USER, "text": {"body": SENT_TEXT}})
    media = await queue(
        service, auth, {"to": USER, "media": {"type": "image", "link": LINK, "caption": CAPTION}}
    )
    interactive = await queue(service, auth, {"to": USER, "interactive": INTERACTIVE})
    delivered = await queue(service, auth, {"to": USER, "template": template(SENT_PARAM)})
    async with service.engine.begin() as conn:
        await accept(conn, delivered, "wamid.DELIVERED1")
    await webhook(service, {"statuses": [meta.status("wamid.DELIVERED1", "delivered")]})
    await webhook(service, {"statuses": [meta.status("wamid.NOT.YET.KNOWN", "sent")]})
    sending = await queue(service, auth, {"to": USER, "template": template(SENT_PARAM)})
    await set_row(
        service,
        sending,
        status="SENDING",
        attempts=1,
        claimed_by="replica-1",
        lease_until=utcnow() + timedelta(seconds=60),
    )
    failed = await queue(service, auth, {"to": USER, "template": template(SENT_PARAM)})
    await set_row(
        service,
        failed,
        status="FAILED",
        dead_lettered=True,
        failed_at=utcnow(),
        error_code="131026",
        error_title="Message undeliverable",
        error_message=f"(#131026) Message undeliverable to {USER}",
        error_details=f"recipient {USER[1:]} cannot receive",
    )
    async with service.engine.begin() as conn:
        now = utcnow()
        await conn.execute(pair_slot.insert().values(sender_id=sender_id, phone=USER, next_at=now))
        await conn.execute(waba_reach.insert().values(waba_id=OWN_WABA, phone=USER, reached_at=now))
    return org_id, auth, [queued, text, delivered, sending, failed, media, interactive]


async def traces(engine: AsyncEngine, needles: tuple[str, ...]) -> list[str]:
    """Every (table, column, needle) where a needle appears, in every column of every table."""
    found: list[str] = []
    async with engine.connect() as conn:
        for table in metadata.sorted_tables:
            for row in (await conn.execute(sa.select(table))).mappings():
                for column, value in row.items():
                    if value is None:
                        continue
                    if isinstance(value, bytes | memoryview):
                        shown = bytes(value).decode("utf-8", "replace")
                    elif isinstance(value, dict | list):
                        shown = orjson.dumps(value).decode()
                    else:
                        shown = str(value)
                    found += [f"{table.name}.{column}: {n}" for n in needles if n in shown]
    return found


async def test_an_erased_contact_leaves_no_trace_in_any_table(service: Service) -> None:
    _org_id, auth, ids = await a_contacts_history(service)
    assert await traces(service.engine, NEEDLES)  # the scan finds them before

    response = await service.client.delete(f"/v1/contacts/{USER}", headers=auth)

    assert response.status_code == 200, response.text
    assert response.json() == {"messages_redacted": 7, "messages_cancelled": 4}
    assert await traces(service.engine, NEEDLES) == []
    queued, text, delivered, sending, failed, media, interactive = ids
    for message_id in ids:
        shown = (await service.client.get(f"/v1/messages/{message_id}", headers=auth)).json()
        assert shown["to"] is None
        assert shown["redacted"] is True
    statuses = {
        message_id: (await service.client.get(f"/v1/messages/{message_id}", headers=auth)).json()
        for message_id in ids
    }
    for cancelled in (queued, text, media, interactive):
        assert statuses[cancelled]["status"] == "CANCELLED"
    assert statuses[interactive]["interactive"]["type"] == "button"
    assert statuses[media]["media"]["type"] == "image"
    assert statuses[delivered]["status"] == "DELIVERED"
    # The one in flight finishes, but never goes back to waiting to be sent again.
    assert statuses[sending]["status"] == "SENDING"
    assert statuses[sending]["expires_at"] is not None
    assert statuses[failed]["template"]["name"] == "order_update"
    assert statuses[failed]["template"]["components"][0]["parameters"][0]["text"].startswith(
        "redacted:"
    )
    # The cancellations are on the timeline and reported (redacted); nothing older is pending.
    events = (await service.client.get(f"/v1/messages/{queued}/events", headers=auth)).json()
    assert events["items"][-1]["type"] == "cancelled"
    async with service.engine.connect() as conn:
        pending = (
            await conn.execute(
                sa.select(callback_event.c.type, callback_event.c.data)
                .join(callback_delivery, callback_delivery.c.event_seq == callback_event.c.seq)
                .where(
                    callback_delivery.c.status == "pending",
                    # The template registry's sync may add `template.updated` at any time.
                    callback_event.c.type.like("message.%"),
                )
            )
        ).all()
    assert sorted(row.type for row in pending) == ["message.cancelled"] * 4
    assert all(row.data["message"]["redacted"] for row in pending)
    assert all(row.data["message"]["to"] is None for row in pending)


async def test_the_same_number_gives_the_same_token_everywhere(service: Service) -> None:
    _org_id, auth, _ids = await a_contacts_history(service)
    assert (await service.client.delete(f"/v1/contacts/{USER}", headers=auth)).status_code == 200
    async with service.engine.connect() as conn:
        reach = await conn.scalar(sa.select(waba_reach.c.phone))
        slot = await conn.scalar(sa.select(pair_slot.c.phone))
    assert reach == slot
    assert reach is not None
    assert reach.startswith("redacted:")
    # The WABA's messaging limit still counts the recipient once.
    async with service.engine.connect() as conn:
        assert await conn.scalar(sa.select(sa.func.count()).select_from(waba_reach)) == 1


async def test_another_orgs_data_about_the_same_number_is_untouched(service: Service) -> None:
    other_id, other = await create_org_with_key(service.client, "Globex")
    await grant(service.client, other, USER)
    theirs = await queue(
        service, other, {"to": USER, "template": template(SENT_PARAM), "metadata": {"r": "x"}}
    )
    _org_id, auth, _ids = await a_contacts_history(service)

    assert (await service.client.delete(f"/v1/contacts/{USER}", headers=auth)).status_code == 200

    consent = await service.client.get(f"/v1/consents/{USER}", headers=other)
    assert consent.status_code == 200
    assert consent.json()["status"] == "granted"
    message = (await service.client.get(f"/v1/messages/{theirs}", headers=other)).json()
    assert message["to"] == USER
    assert message["redacted"] is False
    assert message["status"] == "QUEUED"
    assert message["template"] == template(SENT_PARAM)
    mine = await service.client.get(f"/v1/consents/{USER}", headers=auth)
    assert mine.status_code == 404
    assert other_id != _org_id


async def test_erasing_as_admin_names_the_org_and_never_tells_of_another(
    service: Service,
) -> None:
    org_id, auth = await create_org_with_key(service.client)
    await grant(service.client, auth, USER)
    answer = await service.client.delete(
        f"/v1/contacts/{USER}", headers=ADMIN | {"X-Org-Id": org_id}
    )
    assert answer.status_code == 200
    assert answer.json() == {"messages_redacted": 0, "messages_cancelled": 0}
    assert (await service.client.get(f"/v1/consents/{USER}", headers=auth)).status_code == 404

    unknown = await service.client.delete(
        f"/v1/contacts/{USER}", headers=ADMIN | {"X-Org-Id": "no-such-org"}
    )
    assert unknown.status_code == 404
    assert unknown.json()["error"]["code"] == "not_found"
    bad = await service.client.delete("/v1/contacts/12ab", headers=auth)
    assert bad.status_code == 422
    assert bad.json()["error"]["code"] == "validation_error"
    anonymous = await service.client.delete(f"/v1/contacts/{USER}")
    assert anonymous.status_code == 401
