"""Builders for Meta's WhatsApp Cloud API shapes (webhook envelopes, statuses, errors), shared by
the tests, the fake Graph API and the benchmarks. Shapes follow Meta's documented payloads."""

from __future__ import annotations

import hashlib
import hmac
import time
from typing import Any

PHONE_NUMBER_ID = "106540352242922"
WABA_ID = "102290129340398"


def sign(body: bytes, app_secret: str) -> str:
    """The `X-Hub-Signature-256` header value for a raw body."""
    return "sha256=" + hmac.new(app_secret.encode(), body, hashlib.sha256).hexdigest()


def status(
    wamid: str,
    value: str,
    *,
    timestamp: int | None = None,
    recipient_id: str | None = "33612345678",
    errors: list[dict[str, Any]] | None = None,
    with_pricing: bool = True,
    callback_data: str | None = None,
) -> dict[str, Any]:
    """One `value.statuses[]` item; `timestamp` is a string of Unix seconds, as Meta sends it.
    `callback_data`: the send's `biz_opaque_callback_data`, which Meta echoes."""
    item: dict[str, Any] = {
        "id": wamid,
        "status": value,
        "timestamp": str(timestamp if timestamp is not None else int(time.time())),
    }
    if recipient_id is not None:
        item["recipient_id"] = recipient_id
    if with_pricing and value in ("sent", "delivered", "read"):
        item["conversation"] = {
            "id": "CONVERSATION_ID",
            "expiration_timestamp": str(int(time.time()) + 86_400),
            "origin": {"type": "utility"},
        }
        item["pricing"] = {"billable": True, "pricing_model": "CBP", "category": "utility"}
    if errors is not None:
        item["errors"] = errors
    if callback_data is not None:
        item["biz_opaque_callback_data"] = callback_data
    return item


def error(code: int, title: str = "Error", message: str = "", details: str = "") -> dict[str, Any]:
    """One `errors[]` item of a failed status."""
    return {
        "code": code,
        "title": title,
        "message": message or title,
        "error_data": {"details": details or title},
        "href": "https://developers.facebook.com/docs/whatsapp/cloud-api/support/error-codes/",
    }


def inbound_text(
    from_phone: str, body: str, *, wamid: str = "wamid.INBOUND", name: str = "User"
) -> dict[str, Any]:
    """A `value` with one inbound user text message and its contact."""
    return {
        "contacts": [{"profile": {"name": name}, "wa_id": from_phone.lstrip("+")}],
        "messages": [
            {
                "from": from_phone.lstrip("+"),
                "id": wamid,
                "timestamp": str(int(time.time())),
                "type": "text",
                "text": {"body": body},
            }
        ],
    }


def envelope(
    *,
    statuses: list[dict[str, Any]] | None = None,
    value_extra: dict[str, Any] | None = None,
    field: str = "messages",
    phone_number_id: str = PHONE_NUMBER_ID,
) -> dict[str, Any]:
    """A whole webhook body: one entry, one change, with the given statuses or value parts,
    about the business number `phone_number_id`."""
    value: dict[str, Any] = {
        "messaging_product": "whatsapp",
        "metadata": {"display_phone_number": "15550000000", "phone_number_id": phone_number_id},
    }
    if statuses is not None:
        value["statuses"] = statuses
    value.update(value_extra or {})
    return {
        "object": "whatsapp_business_account",
        "entry": [{"id": WABA_ID, "changes": [{"value": value, "field": field}]}],
    }


def inbound_reply(from_phone: str, body: str, *, replied_wamid: str) -> dict[str, Any]:
    """A `value` with one inbound text that replies to the business's message `replied_wamid`."""
    value = inbound_text(from_phone, body, wamid=f"wamid.IN.{replied_wamid[-12:]}")
    value["messages"][0]["context"] = {"from": "15550000000", "id": replied_wamid}
    return value


def changes(*items: tuple[str, Any], entry_id: str = WABA_ID) -> dict[str, Any]:
    """A whole webhook body with one entry (`entry_id`: the WABA) holding these (field, value)
    changes, each routed on its own."""
    return {
        "object": "whatsapp_business_account",
        "entry": [
            {
                "id": entry_id,
                "time": int(time.time()),
                "changes": [{"field": field, "value": value} for field, value in items],
            }
        ],
    }


def messages_value(
    phone_number_id: str,
    *,
    statuses: list[dict[str, Any]] | None = None,
    extra: dict[str, Any] | None = None,
) -> dict[str, Any]:
    """The `value` of a `messages` change about the business number `phone_number_id`."""
    value: dict[str, Any] = {
        "messaging_product": "whatsapp",
        "metadata": {"display_phone_number": "15550000000", "phone_number_id": phone_number_id},
    }
    if statuses is not None:
        value["statuses"] = statuses
    return value | (extra or {})


def account_restriction(*expirations: int | None) -> dict[str, Any]:
    """`account_update` ACCOUNT_RESTRICTION: business-initiated messaging restricted (each item
    with its `expiration`, Unix seconds, when given)."""
    info = []
    for expiration in expirations:
        item: dict[str, Any] = {"restriction_type": "RESTRICTED_BIZ_INITIATED_MESSAGING"}
        if expiration is not None:
            item["expiration"] = expiration
        info.append(item)
    return {"event": "ACCOUNT_RESTRICTION", "restriction_info": info}


def ban(state: str) -> dict[str, Any]:
    """`account_update` DISABLED_UPDATE with `ban_info.waba_ban_state` (DISABLE, REINSTATE...)."""
    return {
        "event": "DISABLED_UPDATE",
        "ban_info": {"waba_ban_state": state, "waba_ban_date": "2026-12-02"},
    }


def quality_update(
    display_phone_number: str, *, event: str = "ONBOARDING", current_limit: str | None = None
) -> dict[str, Any]:
    """`phone_number_quality_update` for one number of the WABA."""
    value: dict[str, Any] = {"display_phone_number": display_phone_number, "event": event}
    if current_limit is not None:
        value["current_limit"] = current_limit
    return value


def capability_update(max_daily: Any) -> dict[str, Any]:
    """`business_capability_update` with `max_daily_conversations_per_business`."""
    return {"max_daily_conversations_per_business": max_daily, "max_phone_numbers_per_business": 2}


def send_response(wamid: str, to: str) -> dict[str, Any]:
    """Meta's answer to a successful send."""
    return {
        "messaging_product": "whatsapp",
        "contacts": [{"input": to, "wa_id": to.lstrip("+")}],
        "messages": [{"id": wamid, "message_status": "accepted"}],
    }


def error_response(
    code: int, message: str = "", *, details: str = "", error_subcode: int | None = None
) -> dict[str, Any]:
    """Meta's error body for a failed API call."""
    body: dict[str, Any] = {
        "message": message or f"(#{code}) error",
        "type": "OAuthException",
        "code": code,
        "error_data": {"messaging_product": "whatsapp", "details": details or message or "error"},
        "fbtrace_id": "AbCdEf123",
    }
    if error_subcode is not None:
        body["error_subcode"] = error_subcode
    return {"error": body}
