"""What a WhatsApp provider is: one send of one message, and its outcome."""

from __future__ import annotations

import uuid
from dataclasses import dataclass
from typing import Any, Protocol

from wa_outbound.whatsapp.retry import ProviderError


@dataclass(frozen=True, slots=True)
class OutgoingMessage:
    id: uuid.UUID
    org_id: str
    to: str
    kind: str
    payload: dict[str, Any]
    attempt: int
    phone_number_id: str = ""
    """The sender's number and token ("": the provider's configured shared sender)."""
    token: str = ""


@dataclass(frozen=True, slots=True)
class SendResult:
    """Either `wamid` (Meta accepted the message) or `error`."""

    wamid: str | None = None
    error: ProviderError | None = None


class Provider(Protocol):
    name: str

    async def send(self, message: OutgoingMessage) -> SendResult: ...

    async def close(self) -> None: ...


def request_body(message: OutgoingMessage) -> dict[str, Any]:
    """The Cloud API's send body for a stored message."""
    body: dict[str, Any] = {
        "messaging_product": "whatsapp",
        "recipient_type": "individual",
        "to": message.to,
        "type": message.kind,
    }
    if message.kind == "template":
        template = message.payload
        body["template"] = {"name": template["name"], "language": {"code": template["language"]}}
        if "components" in template:
            # As the caller gave them. Rows queued before that rule carry `null` for the keys
            # left out, which Meta refuses: those keys are dropped.
            body["template"]["components"] = [
                {key: value for key, value in component.items() if value is not None}
                for component in template["components"]
            ]
    else:
        body["text"] = {
            "body": message.payload["body"],
            "preview_url": bool(message.payload.get("preview_url", False)),
        }
    return body
