"""Reading Meta's webhook bodies tolerantly: what we use is extracted, the rest is counted.

Meta adds fields without notice and a body may mix statuses, inbound messages, management
changes and other `field` values. Nothing here raises on an unexpected shape: a part that cannot
be read is skipped and counted under a `kind`, so the rest of the body is still applied. Each
`entry[].changes[]` item keeps what routes it: `value.metadata.phone_number_id` for statuses and
inbound messages, the entry's `id` (the WABA) for management changes.
"""

from __future__ import annotations

from collections import Counter
from dataclasses import dataclass, field
from datetime import UTC, datetime
from typing import Any

from wa_outbound import phone
from wa_outbound.receipts.statuses import StatusUpdate

_MAX_WAMID = 128  # the width of provider_message_id: a longer id cannot be one of ours
_MAX_ID = 64  # the width of phone_number_id and waba_id: a longer id cannot be one of ours
MEDIA_TYPES = frozenset({"image", "video", "audio", "document", "sticker"})
# The management changes this service acts on, routed by WABA (see management.py).
MANAGEMENT_FIELDS = frozenset(
    {
        "account_update",
        "phone_number_quality_update",
        "business_capability_update",
        "message_template_status_update",
        "message_template_quality_update",
    }
)
USER_PREFERENCES = "user_preferences"


@dataclass(frozen=True)
class Inbound:
    """A message a user sent to one of our numbers: it opens their 24-hour service window and
    is reported to the organisation that owns the number (`message.received`)."""

    phone: str | None  # E.164; None when Meta names the user by a business-scoped id only
    at: datetime | None
    phone_number_id: str | None = None  # the business number it was sent to
    context_id: str | None = None  # the wamid of the message it replies to
    wamid: str | None = None
    user_id: str | None = None  # Meta's business-scoped user id (`from_user_id`)
    type: str = "unknown"
    text: str | None = None  # a text's body, a button's or reply's title, a media caption
    payload: str | None = None  # a button's payload, an interactive reply's id
    media_id: str | None = None


@dataclass(frozen=True)
class ManagementChange:
    """A change about a WABA (no `metadata`): `value` as Meta sent it, read by management.py."""

    field: str
    waba_id: str | None
    value: dict[str, Any]


@dataclass(frozen=True)
class Preference:
    """A user's marketing preference (`user_preferences`), routed by its business number."""

    phone: str
    phone_number_id: str | None
    category: str
    value: str
    at: datetime | None


@dataclass
class WebhookContent:
    statuses: list[StatusUpdate] = field(default_factory=list)
    inbound: list[Inbound] = field(default_factory=list)
    management: list[ManagementChange] = field(default_factory=list)
    numbers: list[str | None] = field(default_factory=list)
    """The business number of each `messages` change, one item per change (None: none given)."""
    preferences: list[Preference] = field(default_factory=list)
    unused: Counter[str] = field(default_factory=Counter)
    value_errors: list[dict[str, Any]] = field(default_factory=list)


def parse(body: dict[str, Any]) -> WebhookContent:
    """Every `entry[].changes[]` with `field` "messages" or a management field; other fields
    are only counted."""
    content = WebhookContent()
    for entry in _dicts(body.get("entry")):
        waba_id = _id(entry.get("id"))
        for change in _dicts(entry.get("changes")):
            value, name = change.get("value"), change.get("field")
            if name not in MANAGEMENT_FIELDS and name not in ("messages", USER_PREFERENCES):
                content.unused["other_field"] += 1
            elif not isinstance(value, dict):
                content.unused["malformed_change"] += 1
            elif name == USER_PREFERENCES:
                content.preferences.extend(_preferences(value))
            elif name == "messages":
                metadata = value.get("metadata")
                number = (
                    _id(metadata.get("phone_number_id")) if isinstance(metadata, dict) else None
                )
                content.numbers.append(number)
                _read_value(value, number, content)
            else:
                content.management.append(ManagementChange(str(name), waba_id, value))
    return content


def merge(contents: list[WebhookContent]) -> WebhookContent:
    """What several bodies carry, in their order, as one (applied in one transaction)."""
    if len(contents) == 1:
        return contents[0]
    out = WebhookContent()
    for content in contents:
        out.statuses += content.statuses
        out.inbound += content.inbound
        out.management += content.management
        out.numbers += content.numbers
        out.preferences += content.preferences
        out.unused.update(content.unused)
        out.value_errors += content.value_errors
    return out


def _read_value(value: dict[str, Any], number: str | None, content: WebhookContent) -> None:
    for item in _dicts(value.get("statuses")):
        update = _status(item, number)
        if update is None:
            content.unused["malformed_status"] += 1
        else:
            content.statuses.append(update)
    for item in _dicts(value.get("messages")):
        inbound = _inbound(item, number)
        if inbound is None:
            content.unused["malformed_message"] += 1
        else:
            content.inbound.append(inbound)
    for item in _dicts(value.get("errors")):
        content.unused["value_error"] += 1
        content.value_errors.append(_error(item))


def _status(item: dict[str, Any], number: str | None) -> StatusUpdate | None:
    wamid, raw = item.get("id"), item.get("status")
    if not isinstance(wamid, str) or not wamid or len(wamid) > _MAX_WAMID:
        return None
    if not isinstance(raw, str) or not raw:
        return None
    errors = list(_dicts(item.get("errors")))
    recipient = item.get("recipient_id")
    # Business-scoped user ids (2026): `recipient_user_id` with or instead of `recipient_id`.
    callback = item.get("biz_opaque_callback_data")
    return StatusUpdate(
        provider_message_id=wamid,
        status=raw,
        at=timestamp(item.get("timestamp")),
        error=_error(errors[0]) if errors else None,
        recipient_id=str(recipient) if isinstance(recipient, str | int) else None,
        phone_number_id=number,
        callback_data=callback if isinstance(callback, str) and len(callback) <= 512 else None,
        recipient_user_id=_id(item.get("recipient_user_id")),
    )


def _inbound(item: dict[str, Any], number: str | None) -> Inbound | None:
    user = _user(item.get("from"))
    user_id = _id(item.get("from_user_id"))
    if user is None and user_id is None:
        return None
    context = item.get("context")
    replied = context.get("id") if isinstance(context, dict) else None
    wamid = item.get("id")
    kind = item.get("type")
    kind = kind[:32] if isinstance(kind, str) and kind else "unknown"
    return Inbound(
        phone=user,
        at=timestamp(item.get("timestamp")),
        phone_number_id=number,
        context_id=replied if isinstance(replied, str) and 0 < len(replied) <= _MAX_WAMID else None,
        wamid=wamid if isinstance(wamid, str) and 0 < len(wamid) <= _MAX_WAMID else None,
        user_id=user_id,
        type=kind,
        **inbound_content(kind, item),
    )


def _preferences(value: dict[str, Any]) -> list[Preference]:
    number = _number(value)
    found = []
    for item in _dicts(value.get("user_preferences")):
        user, category, choice = _user(item.get("wa_id")), item.get("category"), item.get("value")
        if user and isinstance(category, str) and isinstance(choice, str):
            found.append(
                Preference(user, number, category, choice, timestamp(item.get("timestamp")))
            )
    return found


def inbound_content(kind: str, item: dict[str, Any]) -> dict[str, str | None]:
    """The text, reply payload and media id of an inbound message of this type, as Meta nests
    them (`text.body`, `button.payload`, `interactive.button_reply.id`, `image.id`, ...)."""
    part = item.get(kind)
    if not isinstance(part, dict):
        return {}
    if kind == "text":
        return {"text": _text(part.get("body"))}
    if kind == "button":
        return {"text": _text(part.get("text")), "payload": _text(part.get("payload"))}
    if kind == "interactive":
        reply = part.get(str(part.get("type")))
        if isinstance(reply, dict):
            return {"text": _text(reply.get("title")), "payload": _text(reply.get("id"))}
        return {}
    if kind in MEDIA_TYPES:
        return {"text": _text(part.get("caption")), "media_id": _id(part.get("id"))}
    return {}


def _user(value: Any) -> str | None:
    if not isinstance(value, str):
        return None
    try:
        return phone.normalize(value)
    except ValueError:
        return None


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


def _number(value: dict[str, Any]) -> str | None:
    metadata = value.get("metadata")
    return _id(metadata.get("phone_number_id")) if isinstance(metadata, dict) else None


def _id(value: Any) -> str | None:
    """One of Meta's numeric ids, sent as a string (a number accepted too); None if unusable."""
    if isinstance(value, bool) or not isinstance(value, str | int):
        return None
    text = str(value)
    return text if 0 < len(text) <= _MAX_ID else None


def _text(value: Any) -> str | None:
    if value is None or isinstance(value, dict | list):
        return None
    return str(value)


def _dicts(value: Any) -> list[dict[str, Any]]:
    if not isinstance(value, list):
        return []
    return [item for item in value if isinstance(item, dict)]
