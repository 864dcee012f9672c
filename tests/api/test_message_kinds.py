"""`media` and `interactive` messages and `reply_to` on SQLite and PostgreSQL: Meta's limits at the
API (422 naming the path), the service window, the message object, and `reply_to` given as a
wamid or as our id of an inbound message."""

from __future__ import annotations

import hashlib
import uuid
from typing import Any

import httpx
import orjson
import pytest
from sqlalchemy.ext.asyncio import AsyncEngine

import meta_payloads as meta
from helpers import grant, make_settings
from wa_outbound.config import Settings
from wa_outbound.db.callback_schema import callback_event
from wa_outbound.db.types import utcnow
from wa_outbound.webhooks.received import inbound_id, received_event_id

SECRET = "test-app-secret"
PHONE = "+33612345678"
Org = tuple[str, dict[str, str]]

IMAGE = {"type": "image", "link": "https://example.com/a.png", "caption": "the receipt"}
BUTTONS = {
    "type": "button",
    "header": {"type": "text", "text": "Your order"},
    "body": {"text": "Change it or keep it?"},
    "footer": {"text": "Reply by tapping"},
    "action": {
        "buttons": [
            {"type": "reply", "reply": {"id": "change", "title": "Change"}},
            {"type": "reply", "reply": {"id": "keep", "title": "Keep"}},
        ]
    },
}


def rows(n: int, **row: Any) -> list[dict[str, Any]]:
    return [{"id": f"r{i}", "title": f"Row {i}", **row} for i in range(n)]


def listing(*sections: dict[str, Any], **extra: Any) -> dict[str, Any]:
    return {
        "type": "list",
        "body": {"text": "Pick one"},
        "action": {"button": "Options", "sections": list(sections)},
        **extra,
    }


def cta(url: str = "https://example.com/track", text: str = "Track") -> dict[str, Any]:
    return {
        "type": "cta_url",
        "body": {"text": "Where is my parcel?"},
        "action": {"name": "cta_url", "parameters": {"display_text": text, "url": url}},
    }


def buttons(*pairs: tuple[str, str]) -> dict[str, Any]:
    items = [{"type": "reply", "reply": {"id": i, "title": t}} for i, t in pairs]
    return {**BUTTONS, "action": {"buttons": items}}


@pytest.fixture
def settings(database_url: str) -> Settings:
    return make_settings(
        database_url,
        app_secret=SECRET,
        phone_number_id=meta.PHONE_NUMBER_ID,
        access_token="shared-token",
    )


async def open_window(client: httpx.AsyncClient, auth: dict[str, str]) -> None:
    """The recipient consents and writes to the shared number: its service window opens."""
    await grant(client, auth, PHONE)
    raw = orjson.dumps(meta.envelope(value_extra=meta.inbound_text(PHONE, "hi")))
    headers = {"Content-Type": "application/json", "X-Hub-Signature-256": meta.sign(raw, SECRET)}
    assert (await client.post("/webhooks/whatsapp", content=raw, headers=headers)).is_success


async def send(client: httpx.AsyncClient, auth: dict[str, str], **content: Any) -> httpx.Response:
    return await client.post("/v1/messages", json={"to": PHONE, **content}, headers=auth)


async def test_a_media_message_is_queued_and_shown_as_given(
    client: httpx.AsyncClient, org: Org
) -> None:
    _, auth = org
    await open_window(client, auth)
    response = await send(client, auth, media=IMAGE)
    assert response.status_code == 202, response.text
    message = response.json()
    assert (message["kind"], message["media"]) == ("media", IMAGE)
    assert (message["template"], message["text"], message["interactive"]) == (None, None, None)
    assert message["reply_to"] is None
    fetched = await client.get(f"/v1/messages/{message['id']}", headers=auth)
    assert fetched.json() == message


@pytest.mark.parametrize("content", [{"media": IMAGE}, {"interactive": BUTTONS}])
async def test_session_kinds_outside_the_service_window_are_refused(
    client: httpx.AsyncClient, org: Org, content: dict[str, Any]
) -> None:
    _, auth = org
    await grant(client, auth, PHONE)
    response = await send(client, auth, **content)
    assert (response.status_code, response.json()["error"]["code"]) == (
        422,
        "outside_service_window",
    )


@pytest.mark.parametrize(
    "interactive",
    [BUTTONS, listing({"rows": rows(10)}), cta(), listing({"title": "A", "rows": rows(2)})],
    ids=["buttons", "list of ten rows", "cta_url", "list with a section title"],
)
async def test_interactive_messages_within_meta_limits_are_queued_exactly_as_given(
    client: httpx.AsyncClient, org: Org, interactive: dict[str, Any]
) -> None:
    _, auth = org
    await open_window(client, auth)
    response = await send(client, auth, interactive=interactive)
    assert response.status_code == 202, response.text
    assert response.json()["interactive"] == interactive
    assert response.json()["kind"] == "interactive"


@pytest.mark.parametrize(
    ("content", "where"),
    [
        ({"interactive": buttons(*[(f"b{i}", f"B{i}") for i in range(4)])}, "action.buttons"),
        ({"interactive": buttons(("same", "One"), ("same", "Two"))}, "reply.id 'same'"),
        ({"interactive": buttons(("one", "Same"), ("two", "Same"))}, "reply.title 'Same'"),
        ({"interactive": buttons(("b", "x" * 21))}, "action.buttons.0.reply.title"),
        ({"interactive": buttons(("x" * 257, "B"))}, "action.buttons.0.reply.id"),
        ({"interactive": {**BUTTONS, "body": {"text": "x" * 1025}}}, "body.text"),
        ({"interactive": {**BUTTONS, "footer": {"text": "x" * 61}}}, "footer.text"),
        ({"interactive": {**BUTTONS, "header": {"type": "text", "text": "x" * 61}}}, "header"),
        ({"interactive": {**BUTTONS, "footer": None}}, "footer"),
        ({"interactive": {**BUTTONS, "extra": 1}}, "extra"),
        ({"interactive": listing({"rows": rows(6)}, {"rows": rows(5)})}, "action.sections"),
        ({"interactive": listing({"rows": rows(11)})}, "action.sections.0.rows"),
        ({"interactive": listing({"rows": rows(1, title="x" * 25)})}, "rows.0.title"),
        ({"interactive": listing({"rows": rows(1, description="x" * 73)})}, "rows.0.description"),
        ({"interactive": listing({"rows": rows(2)}, {"rows": rows(1)})}, "needs a title"),
        (
            {"interactive": listing({"rows": rows(2)}, header={"type": "image", "image": IMAGE})},
            "interactive",
        ),
        ({"interactive": {**listing({"rows": rows(1)}), "type": "button"}}, "action"),
        ({"interactive": cta(url="http://example.com/track")}, "parameters.url"),
        ({"interactive": cta(text="x" * 21)}, "parameters.display_text"),
        ({"media": {"type": "audio", "id": "123", "caption": "no"}}, "caption"),
        ({"media": {"type": "image", "link": "https://e.com/a", "id": "1"}}, "'link' or 'id'"),
        ({"media": {"type": "image"}}, "'link' or 'id'"),
        ({"media": {"type": "image", "id": "1", "filename": "a.png"}}, "filename"),
        ({"media": {"type": "video", "link": "ftp://example.com/v.mp4"}}, "media.link"),
        ({"media": {"type": "gif", "id": "1"}}, "media.type"),
        ({"media": IMAGE, "text": {"body": "and text"}}, "exactly one of"),
    ],
)
async def test_beyond_meta_limits_is_refused_naming_the_path(
    client: httpx.AsyncClient, org: Org, content: dict[str, Any], where: str
) -> None:
    _, auth = org
    await open_window(client, auth)
    response = await send(client, auth, **content)
    assert response.status_code == 422, response.text
    error = response.json()["error"]
    assert error["code"] == "validation_error"
    assert where in error["message"], error["message"]


async def test_a_batch_refuses_an_item_over_the_limits_and_queues_the_others(
    client: httpx.AsyncClient, org: Org
) -> None:
    _, auth = org
    await open_window(client, auth)
    too_many = buttons(*[(f"b{i}", f"B{i}") for i in range(4)])
    items = [{"to": PHONE, "media": IMAGE}, {"to": PHONE, "interactive": too_many}]
    response = await client.post("/v1/messages/batch", json={"messages": items}, headers=auth)
    first, second = response.json()["results"]
    assert first["message"]["media"] == IMAGE
    assert second["error"]["code"] == "validation_error"
    assert "interactive.action.buttons" in second["error"]["message"]


async def test_reply_to_a_wamid_is_kept_as_given(client: httpx.AsyncClient, org: Org) -> None:
    _, auth = org
    await open_window(client, auth)
    response = await send(client, auth, text={"body": "yes"}, reply_to="wamid.INBOUND")
    assert response.status_code == 202, response.text
    assert (response.json()["reply_to"], response.json()["text"]) == (
        "wamid.INBOUND",
        {"body": "yes", "preview_url": False},
    )


async def test_reply_to_our_id_of_an_inbound_message_becomes_its_wamid(
    client: httpx.AsyncClient, org: Org, db_engine: AsyncEngine
) -> None:
    org_id, auth = org
    await open_window(client, auth)
    # The message.received event the org was sent about an inbound message.
    ours = inbound_id(meta.PHONE_NUMBER_ID, "wamid.IN.1")
    event_id = received_event_id(ours, org_id)
    async with db_engine.begin() as conn:
        await conn.execute(
            callback_event.insert().values(
                id=event_id,
                org_id=org_id,
                type="message.received",
                occurred_at=utcnow(),
                data={"id": str(ours), "wamid": "wamid.IN.1"},
            )
        )
    for given in (ours, event_id):
        response = await send(client, auth, media=IMAGE, reply_to=str(given))
        assert response.status_code == 202, response.text
        assert response.json()["reply_to"] == "wamid.IN.1"
    batch = [{"to": PHONE, "media": IMAGE, "reply_to": str(ours)}]
    response = await client.post("/v1/messages/batch", json={"messages": batch}, headers=auth)
    assert response.json()["results"][0]["message"]["reply_to"] == "wamid.IN.1"


async def test_reply_to_an_unknown_id_is_refused_with_its_path(
    client: httpx.AsyncClient, org: Org
) -> None:
    _, auth = org
    await open_window(client, auth)
    response = await send(client, auth, media=IMAGE, reply_to=str(uuid.uuid4()))
    assert response.status_code == 422
    error = response.json()["error"]
    assert error["code"] == "validation_error"
    assert error["message"].startswith("reply_to:")
    batch = [
        {"to": PHONE, "media": IMAGE, "reply_to": str(uuid.uuid4())},
        {"to": PHONE, "media": IMAGE},
    ]
    results = (
        await client.post("/v1/messages/batch", json={"messages": batch}, headers=auth)
    ).json()["results"]
    assert results[0]["error"]["code"] == "validation_error"
    assert results[1]["message"]["kind"] == "media"


def test_a_body_from_before_the_new_kinds_hashes_as_it_did() -> None:
    # An Idempotency-Key used before media, interactive and reply_to existed still replays.
    from wa_outbound.api.messages import _new_message
    from wa_outbound.api.models import MessageCreate

    given = {"to": PHONE, "template": {"name": "order_update", "language": "en_US"}}
    before = {**given, "text": None, "metadata": {}, "send_after": None}
    before["template"] = {**given["template"], "components": []}  # type: ignore[dict-item]
    expected = hashlib.sha256(orjson.dumps(before, option=orjson.OPT_SORT_KEYS)).hexdigest()
    assert _new_message(MessageCreate.model_validate(given), None).request_hash == expected
