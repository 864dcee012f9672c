"""The API's operations as requests, built once for the sync and the async client: the path,
the query, the body, and whether repeating the request after a lost answer is safe."""

from __future__ import annotations

import enum
import uuid
from collections.abc import Mapping, Sequence
from dataclasses import dataclass
from datetime import datetime
from typing import Any, Final
from urllib.parse import quote

from wa_outbound_client.models import (
    Interactive,
    Media,
    MessageCreate,
    Template,
    Text,
    format_time,
)


class _Unset(enum.Enum):
    UNSET = enum.auto()


UNSET: Final = _Unset.UNSET
"""A PATCH field left out (unchanged), as opposed to None (cleared, where the API clears)."""
Unset = _Unset


@dataclass(frozen=True, slots=True)
class Call:
    method: str
    path: str
    params: dict[str, str | int] | None = None
    body: Any = None
    headers: dict[str, str] | None = None
    replay_safe: bool = False
    """True when the request may be repeated after an answer was lost: it reads, it sets a
    state (PUT, PATCH), or it carries an idempotency key."""


def _id(value: str | uuid.UUID) -> str:
    return quote(str(value), safe="")


def _phone(value: str) -> str:
    return quote(value, safe="+")


def _query(**values: str | int | None) -> dict[str, str | int]:
    return {key: value for key, value in values.items() if value is not None}


def _patch(**fields: Any) -> dict[str, Any]:
    return {key: value for key, value in fields.items() if value is not UNSET}


# Messages


def send_message(
    to: str,
    *,
    template: Template | None,
    text: str | Text | None,
    media: Media | None,
    interactive: Interactive | None,
    reply_to: str | None,
    metadata: Mapping[str, str] | None,
    send_after: datetime | str | None,
    expires_at: datetime | str | None,
    sender: str | None,
    idempotency_key: str | None,
) -> Call:
    body: dict[str, Any] = {"to": to}
    if template is not None:
        body["template"] = template
    if text is not None:
        body["text"] = {"body": text} if isinstance(text, str) else text
    if media is not None:
        body["media"] = media
    if interactive is not None:
        body["interactive"] = interactive
    if reply_to is not None:
        body["reply_to"] = reply_to
    if metadata is not None:
        body["metadata"] = dict(metadata)
    if send_after is not None:
        body["send_after"] = format_time(send_after)
    if expires_at is not None:
        body["expires_at"] = format_time(expires_at)
    if sender is not None:
        body["from"] = sender
    key = idempotency_key or str(uuid.uuid4())
    return Call(
        "POST", "/v1/messages", body=body, headers={"Idempotency-Key": key}, replay_safe=True
    )


def send_batch(messages: Sequence[MessageCreate]) -> Call:
    # Every item gets a key, so that a retried batch queues none of its messages twice.
    items = [
        {**item, "idempotency_key": item.get("idempotency_key") or str(uuid.uuid4())}
        for item in messages
    ]
    return Call("POST", "/v1/messages/batch", body={"messages": items}, replay_safe=True)


def get_message(message_id: str | uuid.UUID) -> Call:
    return Call("GET", f"/v1/messages/{_id(message_id)}", replay_safe=True)


def list_messages(*, status: str | None, to: str | None, limit: int, cursor: str | None) -> Call:
    params = _query(status=status, to=to, limit=limit, cursor=cursor)
    return Call("GET", "/v1/messages", params=params, replay_safe=True)


def message_events(message_id: str | uuid.UUID) -> Call:
    return Call("GET", f"/v1/messages/{_id(message_id)}/events", replay_safe=True)


def cancel_message(message_id: str | uuid.UUID) -> Call:
    return Call("POST", f"/v1/messages/{_id(message_id)}/cancel")


# Consents


def put_consent(phone: str, *, status: str, source: str | None) -> Call:
    body = {"status": status, "source": source}
    return Call("PUT", f"/v1/consents/{_phone(phone)}", body=body, replay_safe=True)


def get_consent(phone: str) -> Call:
    return Call("GET", f"/v1/consents/{_phone(phone)}", replay_safe=True)


def erase_contact(phone: str) -> Call:
    # Erasing again erases nothing more (it answers zeros): safe to repeat after a lost answer,
    # and an erasure should not be given up on.
    return Call("DELETE", f"/v1/contacts/{_phone(phone)}", replay_safe=True)


# Dead-letter queue


def list_dead_letters(*, error_code: str | None, limit: int, cursor: str | None) -> Call:
    params = _query(error_code=error_code, limit=limit, cursor=cursor)
    return Call("GET", "/v1/dlq", params=params, replay_safe=True)


def dlq_report() -> Call:
    return Call("GET", "/v1/dlq/report", replay_safe=True)


def replay_one(message_id: str | uuid.UUID) -> Call:
    return Call("POST", f"/v1/dlq/{_id(message_id)}/replay")


def replay_many(*, ids: Sequence[str | uuid.UUID] | None, error_code: str | None) -> Call:
    if ids is None and error_code is None:
        raise ValueError("replay_many needs ids, error_code or both")
    body: dict[str, Any] = {}
    if ids is not None:
        body["ids"] = [str(i) for i in ids]
    if error_code is not None:
        body["error_code"] = error_code
    return Call("POST", "/v1/dlq/replay", body=body)


def discard(message_id: str | uuid.UUID) -> Call:
    return Call("DELETE", f"/v1/dlq/{_id(message_id)}")


# Quota

QUOTA = "/v1/rate-limits/whatsapp/quota"


def get_quota() -> Call:
    return Call("GET", QUOTA, replay_safe=True)


def set_quota(
    *, limit: int | None, window_seconds: int | None, messages_per_second: float | None
) -> Call:
    body = {
        key: value
        for key, value in {
            "limit": limit,
            "window_seconds": window_seconds,
            "messages_per_second": messages_per_second,
        }.items()
        if value is not None
    }
    return Call("PUT", QUOTA, body=body, replay_safe=True)


# Senders


def create_sender(
    *,
    phone_number_id: str,
    waba_id: str,
    access_token: str,
    name: str | None,
    messages_per_second: float | None,
    default: bool | None,
) -> Call:
    body: dict[str, Any] = {
        "phone_number_id": phone_number_id,
        "waba_id": waba_id,
        "access_token": access_token,
    }
    if name is not None:
        body["name"] = name
    if messages_per_second is not None:
        body["messages_per_second"] = messages_per_second
    if default is not None:
        body["default"] = default
    return Call("POST", "/v1/senders", body=body)


def list_senders() -> Call:
    return Call("GET", "/v1/senders", replay_safe=True)


def get_sender(sender_id: str | uuid.UUID) -> Call:
    return Call("GET", f"/v1/senders/{_id(sender_id)}", replay_safe=True)


def update_sender(sender_id: str | uuid.UUID, fields: dict[str, Any]) -> Call:
    return Call("PATCH", f"/v1/senders/{_id(sender_id)}", body=_patch(**fields), replay_safe=True)


def delete_sender(sender_id: str | uuid.UUID, *, cancel_waiting: bool) -> Call:
    params: dict[str, str | int] | None = {"cancel_waiting": "true"} if cancel_waiting else None
    return Call("DELETE", f"/v1/senders/{_id(sender_id)}", params=params)


# Webhook endpoints

ENDPOINTS = "/v1/webhook-endpoints"


def create_endpoint(url: str, *, events: Sequence[str] | None, description: str | None) -> Call:
    body: dict[str, Any] = {"url": url, "events": None if events is None else list(events)}
    if description is not None:
        body["description"] = description
    return Call("POST", ENDPOINTS, body=body)


def list_endpoints() -> Call:
    return Call("GET", ENDPOINTS, replay_safe=True)


def get_endpoint(endpoint_id: str | uuid.UUID) -> Call:
    return Call("GET", f"{ENDPOINTS}/{_id(endpoint_id)}", replay_safe=True)


def update_endpoint(endpoint_id: str | uuid.UUID, fields: dict[str, Any]) -> Call:
    path = f"{ENDPOINTS}/{_id(endpoint_id)}"
    return Call("PATCH", path, body=_patch(**fields), replay_safe=True)


def delete_endpoint(endpoint_id: str | uuid.UUID) -> Call:
    return Call("DELETE", f"{ENDPOINTS}/{_id(endpoint_id)}")


def rotate_secret(endpoint_id: str | uuid.UUID) -> Call:
    return Call("POST", f"{ENDPOINTS}/{_id(endpoint_id)}/rotate-secret")


def list_deliveries(
    endpoint_id: str | uuid.UUID, *, status: str | None, limit: int, cursor: str | None
) -> Call:
    params = _query(status=status, limit=limit, cursor=cursor)
    path = f"{ENDPOINTS}/{_id(endpoint_id)}/deliveries"
    return Call("GET", path, params=params, replay_safe=True)


def retry_delivery(endpoint_id: str | uuid.UUID, delivery_id: str | uuid.UUID) -> Call:
    path = f"{ENDPOINTS}/{_id(endpoint_id)}/deliveries/{_id(delivery_id)}/retry"
    return Call("POST", path)


def recover(endpoint_id: str | uuid.UUID, *, since: datetime | str) -> Call:
    body = {"since": format_time(since)}
    return Call("POST", f"{ENDPOINTS}/{_id(endpoint_id)}/recover", body=body)
