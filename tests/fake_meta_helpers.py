"""What the fake Meta Graph API's own tests share (tests/test_fake_meta*.py): its token, a
recipient, the send path and a send's body."""

from __future__ import annotations

from typing import Any

from meta_payloads import PHONE_NUMBER_ID

TOKEN = "graph-token"
PHONE = "+33612345678"
MESSAGES = f"/v21.0/{PHONE_NUMBER_ID}/messages"


def send_body(to: str = PHONE, **overrides: Any) -> dict[str, Any]:
    """A template send as the service posts it, with `overrides` on its top-level fields."""
    body: dict[str, Any] = {
        "messaging_product": "whatsapp",
        "recipient_type": "individual",
        "to": to,
        "type": "template",
        "template": {"name": "order_update", "language": {"code": "en_US"}, "components": []},
    }
    body.update(overrides)
    return body
