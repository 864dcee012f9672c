"""The Cloud API send body of each message kind, as the fake Graph API received it over loopback:
every field checked, nothing added, nothing dropped, no `null`."""

from __future__ import annotations

import uuid
from collections.abc import AsyncIterator
from typing import Any

import pytest

from fake_meta import FakeMeta, running_fake_meta
from helpers import make_settings
from wa_outbound.status import REPLY_TO
from wa_outbound.whatsapp.cloud import CloudProvider
from wa_outbound.whatsapp.provider import OutgoingMessage

TOKEN = "meta-token"
NUMBER = "106540352242922"
PHONE = "+33612345678"
LIST = {
    "type": "list",
    "header": {"type": "text", "text": "Menu"},
    "body": {"text": "Pick one"},
    "footer": {"text": "Thanks"},
    "action": {
        "button": "Options",
        "sections": [
            {"title": "Mains", "rows": [{"id": "m1", "title": "Soup", "description": "Hot"}]},
            {"title": "Desserts", "rows": [{"id": "d1", "title": "Cake"}]},
        ],
    },
}
CTA = {
    "type": "cta_url",
    "header": {"type": "image", "image": {"link": "https://example.com/banner.png"}},
    "body": {"text": "Where is my parcel?"},
    "action": {
        "name": "cta_url",
        "parameters": {"display_text": "Track", "url": "https://example.com/t?id=42"},
    },
}


@pytest.fixture
async def sent() -> AsyncIterator[Any]:
    """Sends one message through the Cloud API client; returns the body the fake received."""
    fake = FakeMeta(token=TOKEN)
    async with running_fake_meta(fake) as base_url:
        settings = make_settings(
            "sqlite+aiosqlite:///:memory:",
            provider="cloud",
            graph_api_base_url=base_url,
            access_token=TOKEN,
            phone_number_id=NUMBER,
            app_secret="s",
        )
        provider = CloudProvider(settings)

        async def send(message_id: uuid.UUID, kind: str, payload: dict[str, Any]) -> Any:
            outgoing = OutgoingMessage(message_id, "org", PHONE, kind, payload, attempt=1)
            result = await provider.send(outgoing)
            assert result.wamid is not None, result.error
            [request] = [r for r in fake.received.requests if r.wamid == result.wamid]
            assert request.phone_number_id == NUMBER
            return request.body

        try:
            yield send
        finally:
            await provider.close()


def envelope(message_id: uuid.UUID, kind: str, **rest: Any) -> dict[str, Any]:
    return {
        "messaging_product": "whatsapp",
        "recipient_type": "individual",
        "to": PHONE,
        "type": kind,
        **rest,
        "biz_opaque_callback_data": str(message_id),
    }


@pytest.mark.parametrize(
    ("media", "part"),
    [
        (
            {"type": "image", "link": "https://example.com/a.png", "caption": "Receipt"},
            {"link": "https://example.com/a.png", "caption": "Receipt"},
        ),
        (
            {"type": "document", "id": "1013859600285441", "filename": "invoice.pdf"},
            {"id": "1013859600285441", "filename": "invoice.pdf"},
        ),
        ({"type": "sticker", "id": "798882015472548"}, {"id": "798882015472548"}),
        (
            {"type": "audio", "link": "https://example.com/a.ogg"},
            {"link": "https://example.com/a.ogg"},
        ),
    ],
    ids=["image", "document", "sticker", "audio"],
)
async def test_media_is_sent_under_its_own_type(
    sent: Any, media: dict[str, Any], part: dict[str, Any]
) -> None:
    message_id = uuid.uuid4()
    body = await sent(message_id, "media", media)
    assert body == envelope(message_id, media["type"], **{media["type"]: part})


@pytest.mark.parametrize("interactive", [LIST, CTA], ids=["list", "cta_url"])
async def test_interactive_is_sent_exactly_as_given(sent: Any, interactive: dict[str, Any]) -> None:
    message_id = uuid.uuid4()
    body = await sent(message_id, "interactive", interactive)
    assert body == envelope(message_id, "interactive", interactive=interactive)


async def test_reply_to_is_sent_as_context_and_not_inside_the_message(sent: Any) -> None:
    message_id = uuid.uuid4()
    payload = {"body": "Yes, tomorrow", "preview_url": False, REPLY_TO: "wamid.IN.1"}
    body = await sent(message_id, "text", payload)
    assert body == envelope(
        message_id,
        "text",
        context={"message_id": "wamid.IN.1"},
        text={"body": "Yes, tomorrow", "preview_url": False},
    )


async def test_a_template_carries_its_components_as_given_and_the_callback_data(
    sent: Any,
) -> None:
    message_id = uuid.uuid4()
    components = [
        {"type": "header", "parameters": [{"type": "image", "image": {"id": "4490"}}]},
        {
            "type": "button",
            "sub_type": "url",
            "index": "0",
            "parameters": [{"type": "text", "text": "x9"}],
        },
    ]
    template = {"name": "order_update", "language": "en_US", "components": components}
    body = await sent(message_id, "template", template)
    assert body == envelope(
        message_id,
        "template",
        template={"name": "order_update", "language": {"code": "en_US"}, "components": components},
    )
