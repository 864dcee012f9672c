"""Reading Meta's webhook bodies tolerantly: what we use is extracted, the rest is counted.

Meta adds fields without notice and a body may mix statuses, inbound messages and other
`field` values. Nothing here raises on an unexpected shape: a part that cannot be read is
skipped and counted under a `kind`, so the rest of the body is still applied.
"""

from __future__ import annotations

from collections import Counter
from dataclasses import dataclass, field
from datetime import UTC, datetime
from typing import Any

from wa_outbound import phone
from wa_outbound.webhooks.receipts import StatusUpdate

_MAX_WAMID = 128  # the width of provider_message_id: a longer id cannot be one of ours


@dataclass(frozen=True)
class Inbound:
    """A message a user sent to our number: it opens their 24-hour service window."""

    phone: str  # E.164
    at: datetime | None


@dataclass
class WebhookContent:
    statuses: list[StatusUpdate] = field(default_factory=list)
    inbound: list[Inbound] = field(default_factory=list)
    unused: Counter[str] = field(default_factory=Counter)
    value_errors: list[dict[str, Any]] = field(default_factory=list)


def parse(body: dict[str, Any]) -> WebhookContent:
    """Every `entry[].changes[]` with `field == "messages"`; other fields are only counted."""
    content = WebhookContent()
    for entry in _dicts(body.get("entry")):
        for change in _dicts(entry.get("changes")):
            value = change.get("value")
            if change.get("field") != "messages":
                content.unused["other_field"] += 1
            elif not isinstance(value, dict):
                content.unused["malformed_change"] += 1
            else:
                _read_value(value, content)
    return content


def _read_value(value: dict[str, Any], content: WebhookContent) -> None:
    for item in _dicts(value.get("statuses")):
        update = _status(item)
        if update is None:
            content.unused["malformed_status"] += 1
        else:
            content.statuses.append(update)
    for item in _dicts(value.get("messages")):
        inbound = _inbound(item)
        if inbound is None:
            content.unused["malformed_message"] += 1
        else:
            content.inbound.append(inbound)
    for item in _dicts(value.get("errors")):
        content.unused["value_error"] += 1
        content.value_errors.append(_error(item))


def _status(item: dict[str, Any]) -> StatusUpdate | None:
    wamid, raw = item.get("id"), item.get("status")
    if not isinstance(wamid, str) or not wamid or len(wamid) > _MAX_WAMID:
        return None
    if not isinstance(raw, str) or not raw:
        return None
    errors = list(_dicts(item.get("errors")))
    recipient = item.get("recipient_id")
    return StatusUpdate(
        provider_message_id=wamid,
        status=raw,
        at=timestamp(item.get("timestamp")),
        error=_error(errors[0]) if errors else None,
        recipient_id=str(recipient) if isinstance(recipient, str | int) else None,
    )


def _inbound(item: dict[str, Any]) -> Inbound | None:
    sender = item.get("from")
    if not isinstance(sender, str):
        return None
    try:
        number = phone.normalize(sender)
    except ValueError:
        return None
    return Inbound(phone=number, at=timestamp(item.get("timestamp")))


def _error(item: dict[str, Any]) -> dict[str, Any]:
    """`{"code", "title", "message", "details"}` from one of Meta's `errors[]` items."""
    data = item.get("error_data")
    details = data.get("details") if isinstance(data, dict) else None
    return {
        "code": _text(item.get("code")),
        "title": _text(item.get("title")),
        "message": _text(item.get("message")),
        "details": _text(details),
    }


def timestamp(value: Any) -> datetime | None:
    """Meta's `timestamp`: a string of Unix seconds (numbers accepted too); None if unreadable."""
    if isinstance(value, bool) or not isinstance(value, str | int | float):
        return None
    try:
        return datetime.fromtimestamp(float(value), UTC)
    except (ValueError, OverflowError, OSError):
        return None


def _text(value: Any) -> str | None:
    if value is None or isinstance(value, dict | list):
        return None
    return str(value)


def _dicts(value: Any) -> list[dict[str, Any]]:
    if not isinstance(value, list):
        return []
    return [item for item in value if isinstance(item, dict)]
