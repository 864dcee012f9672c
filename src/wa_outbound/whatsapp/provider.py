"""What a WhatsApp provider is: one send of one message, and its outcome."""

from __future__ import annotations

import uuid
from dataclasses import dataclass
from typing import Any, Protocol

from wa_outbound.status import REPLY_TO
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
    """The Cloud API's send body for a stored message. `biz_opaque_callback_data` carries our
    message id: Meta echoes it in the send's status webhooks, which is how a send whose answer
    was lost is recognised (receipts/reconcile.py)."""
    payload = dict(message.payload)
    reply_to = payload.pop(REPLY_TO, None)
    kind = message.kind
    body: dict[str, Any] = {
        "messaging_product": "whatsapp",
        "recipient_type": "individual",
        "to": message.to,
        "type": kind,
    }
    if reply_to is not None:
        body["context"] = {"message_id": reply_to}
    if kind == "template":
        template = payload
        body["template"] = {"name": template["name"], "language": {"code": template["language"]}}
        if "components" in template:
            # As the caller gave them. Rows queued before that rule carry `null` for the keys
            # left out, which Meta refuses: those keys are dropped.
            body["template"]["components"] = [
                {key: value for key, value in component.items() if value is not None}
                for component in template["components"]
            ]
    elif kind == "text":
        body["text"] = {
            "body": payload["body"],
            "preview_url": bool(payload.get("preview_url", False)),
        }
    elif kind == "media":
        # Meta's shape: `"type": "image", "image": {"link" | "id", "caption"?, "filename"?}`.
        media_type = payload.pop("type")
        body["type"] = media_type
        body[media_type] = payload
    else:  # interactive: as the caller gave it, validated against Meta's limits at the API
        body["interactive"] = payload
    body["biz_opaque_callback_data"] = str(message.id)
    return body
