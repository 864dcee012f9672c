"""Template components travel to Meta exactly as given: queued over HTTP, sent by the running
dispatcher to the fake Graph API, compared with what Meta received. No key is added, none is
dropped, and `null` (which Meta refuses) is refused at the door."""

from __future__ import annotations

import uuid
from typing import Any

import pytest

from cloud_app import PHONE_OK, CloudApp, cloud_app, get_message
from helpers import create_org_with_key, eventually, grant
from wa_outbound.whatsapp.provider import OutgoingMessage, request_body

COMPONENTS: list[dict[str, Any]] = [
    {
        "type": "header",
        "parameters": [{"type": "image", "image": {"link": "https://example.com/p.jpg"}}],
    },
    {
        "type": "body",
        "parameters": [
            {"type": "text", "text": "42"},
            {
                "type": "currency",
                "currency": {"fallback_value": "$10.99", "code": "USD", "amount_1000": 10990},
            },
            {"type": "date_time", "date_time": {"fallback_value": "1 December 2026"}},
        ],
    },
    {"type": "footer"},
    {
        "type": "button",
        "sub_type": "quick_reply",
        "index": "0",
        "parameters": [{"type": "payload", "payload": "YES-42"}],
    },
    {
        "type": "button",
        "sub_type": "url",
        "index": 1,
        "parameters": [{"type": "text", "text": "order/42"}],
    },
]


async def sent_template(app: CloudApp, template: dict[str, Any]) -> Any:
    """What Meta received for one template message queued over HTTP."""
    _, auth = await create_org_with_key(app.client)
    await grant(app.client, auth, PHONE_OK)
    response = await app.client.post(
        "/v1/messages", json={"to": PHONE_OK, "template": template}, headers=auth
    )
    assert response.status_code == 202, response.text
    message_id = response.json()["id"]

    async def accepted() -> bool:
        return bool((await get_message(app, auth, message_id))["status"] == "ACCEPTED")

    await eventually(accepted)
    [request] = app.fake.received.requests_for(PHONE_OK)
    return request.body["template"]


async def test_components_reach_meta_exactly_as_posted(database_url: str) -> None:
    template = {"name": "order_update", "language": "en_US", "components": COMPONENTS}
    async with cloud_app(database_url) as app:
        sent = await sent_template(app, template)
    assert sent == {"name": "order_update", "language": {"code": "en_US"}, "components": COMPONENTS}


async def test_a_template_without_components_reaches_meta_without_them(
    database_url: str,
) -> None:
    async with cloud_app(database_url) as app:
        sent = await sent_template(app, {"name": "hello_world", "language": "en_US"})
    assert sent == {"name": "hello_world", "language": {"code": "en_US"}}


@pytest.mark.parametrize(
    ("component", "where"),
    [
        ({"type": "body", "sub_type": None}, "sub_type"),
        ({"type": "button", "index": None}, "index"),
        ({"type": "body", "parameters": [{"type": "text", "text": None}]}, "parameters.0.text"),
        ({"type": "header", "parameters": [{"type": "image", "image": {"link": None}}]}, "link"),
    ],
)
async def test_a_null_in_a_component_is_refused_with_its_place(
    client: Any, org: tuple[str, dict[str, str]], component: dict[str, Any], where: str
) -> None:
    _, auth = org
    await grant(client, auth, PHONE_OK)
    template = {"name": "order_update", "language": "en_US", "components": [component]}
    response = await client.post(
        "/v1/messages", json={"to": PHONE_OK, "template": template}, headers=auth
    )
    assert response.status_code == 422, response.text
    error = response.json()["error"]
    assert error["code"] == "validation_error"
    assert error["message"].startswith("template.components.0: ")
    assert f"{where} is null" in error["message"]


def test_a_message_queued_before_the_rule_has_its_nulls_left_out() -> None:
    legacy = {
        "name": "order_update",
        "language": "en_US",
        "components": [{"type": "body", "sub_type": None, "index": None, "parameters": []}],
    }
    message = OutgoingMessage(uuid.uuid4(), "org", "+33612345678", "template", legacy, 1)
    assert request_body(message)["template"]["components"] == [{"type": "body", "parameters": []}]
