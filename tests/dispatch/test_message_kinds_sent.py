"""Session kinds end to end: queued over HTTP inside the service window, sent by the dispatcher,
and received by the fake Graph API exactly as given, with `reply_to` as Meta's `context`."""

from __future__ import annotations

from typing import Any

import meta_payloads as meta
from helpers import eventually
from served_service import PHONE, Service, post_webhook, read, service

BUTTONS = {
    "type": "button",
    "header": {"type": "image", "image": {"id": "1234"}},
    "body": {"text": "Change it or keep it?"},
    "action": {
        "buttons": [
            {"type": "reply", "reply": {"id": "change", "title": "Change"}},
            {"type": "reply", "reply": {"id": "keep", "title": "Keep"}},
        ]
    },
}


async def sent_body(svc: Service, content: dict[str, Any]) -> tuple[str, Any]:
    response = await svc.client.post(
        "/v1/messages", json={"to": PHONE, **content}, headers=svc.auth
    )
    assert response.status_code == 202, response.text
    message_id: str = response.json()["id"]

    async def accepted() -> bool:
        return bool((await read(svc, message_id))["status"] == "ACCEPTED")

    await eventually(accepted)
    [request] = [
        r
        for r in svc.fake.received.requests_for(PHONE.lstrip("+"))
        if r.body["biz_opaque_callback_data"] == message_id
    ]
    return message_id, request.body


async def test_interactive_and_media_replies_reach_meta_exactly_as_given(database_url: str) -> None:
    async with service(database_url) as svc:
        inbound = meta.inbound_text(PHONE, "Can I change my order?", wamid="wamid.IN.42")
        await post_webhook(svc, meta.envelope(value_extra=inbound))

        message_id, body = await sent_body(svc, {"interactive": BUTTONS, "reply_to": "wamid.IN.42"})
        assert body == {
            "messaging_product": "whatsapp",
            "recipient_type": "individual",
            "to": PHONE,
            "type": "interactive",
            "context": {"message_id": "wamid.IN.42"},
            "interactive": BUTTONS,
            "biz_opaque_callback_data": message_id,
        }

        media = {"type": "video", "link": "https://example.com/how-to.mp4", "caption": "How to"}
        message_id, body = await sent_body(svc, {"media": media})
        assert body == {
            "messaging_product": "whatsapp",
            "recipient_type": "individual",
            "to": PHONE,
            "type": "video",
            "video": {"link": "https://example.com/how-to.mp4", "caption": "How to"},
            "biz_opaque_callback_data": message_id,
        }
