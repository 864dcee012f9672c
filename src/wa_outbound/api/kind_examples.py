"""Examples of the session message kinds beyond text (`media`, `interactive`) and `reply_to`, for
the OpenAPI document (examples.py holds the rest)."""

from __future__ import annotations

from fastapi.openapi.models import Example

PHONE = "+33612345678"

SEND_SESSION: dict[str, Example] = {
    "media": {
        "summary": "An image by link, with a caption (inside the service window)",
        "value": {
            "to": PHONE,
            "media": {
                "type": "image",
                "link": "https://example.com/receipts/42.png",
                "caption": "Your receipt",
            },
        },
    },
    "interactive": {
        "summary": "Reply buttons, answering the recipient's last message (`reply_to`)",
        "value": {
            "to": PHONE,
            "reply_to": "wamid.HBgLMzM2MTIzNDU2NzgVAgASGBQzQTdGNjE2QzYyMEQ3NEI1NjQ5RQA=",
            "interactive": {
                "type": "button",
                "body": {"text": "Change the delivery day, or keep it?"},
                "action": {
                    "buttons": [
                        {"type": "reply", "reply": {"id": "change", "title": "Change"}},
                        {"type": "reply", "reply": {"id": "keep", "title": "Keep"}},
                    ]
                },
            },
        },
    },
}
