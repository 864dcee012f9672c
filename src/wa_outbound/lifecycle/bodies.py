"""Erasing a contact from Meta's stored webhook bodies (`webhook_event.body`, JSON bytes).

Only the parts about that user and that organisation change: on the organisation's own numbers,
the statuses with that `recipient_id`, the inbound messages from them (text, captions, button
texts and payloads, everything but the wamid, type, time and context) and the `contacts[]` item
with their `wa_id` and profile name, then any other mention of the number in those changes. On
the deployment's shared number, which serves many organisations, the statuses of the
organisation's own messages and the inbound messages that reply to one of them, or to none
(those belong to no organisation: the user's request is enough). Another organisation's parts
stay as they are."""

from __future__ import annotations

from collections.abc import Callable, Collection
from dataclasses import dataclass
from typing import Any

import orjson
import sqlalchemy as sa
from sqlalchemy.ext.asyncio import AsyncConnection

from wa_outbound.db.dialect import is_postgres
from wa_outbound.db.schema import webhook_event
from wa_outbound.lifecycle.redaction import INBOUND_STRUCTURE, Redactor

w = webhook_event.c


@dataclass(frozen=True, slots=True)
class Scope:
    """Whose parts of a body are the organisation's: its numbers (Meta's phone_number_id), the
    shared number's, and the wamids of its messages to the contact."""

    own_numbers: Collection[str]
    shared_numbers: Collection[str]
    wamids: Collection[str]


async def redact_bodies(conn: AsyncConnection, redactor: Redactor, scope: Scope) -> int:
    """Redact the stored bodies that mention the contact's number; how many changed."""
    needle = redactor.digits.encode()
    if is_postgres(conn):
        mentions = sa.text("position(CAST(:needle AS bytea) IN webhook_event.body) > 0")
    else:
        mentions = sa.text("instr(webhook_event.body, :needle) > 0")
    rows = await conn.execute(
        sa.select(w.id, w.body, w.last_error)
        .where(mentions.bindparams(sa.bindparam("needle", needle, type_=sa.LargeBinary)))
        .order_by(w.id)
        .with_for_update()
    )
    changed = 0
    for row in rows.all():
        body = redact_body(bytes(row.body), redactor, scope)
        error = redactor.text(row.last_error)
        if body is None and error == row.last_error:
            continue
        values: dict[str, Any] = {"last_error": error}
        if body is not None:
            values["body"] = body
        await conn.execute(webhook_event.update().where(w.id == row.id).values(values))
        changed += 1
    return changed


def redact_body(raw: bytes, redactor: Redactor, scope: Scope) -> bytes | None:
    """`raw` without what is about the contact in `scope`; None when nothing changed."""
    try:
        body = orjson.loads(raw)
    except orjson.JSONDecodeError:
        body = None
    if not isinstance(body, dict):
        # Not JSON we can read: its mentions of the number go, whoever they are about.
        token = redactor.phone_token.encode()
        out = raw.replace(redactor.phone.encode(), token).replace(redactor.digits.encode(), token)
        return out if out != raw else None
    changed = False
    for entry in _dicts(body.get("entry")):
        for change in _dicts(entry.get("changes")):
            value = change.get("value")
            if change.get("field") == "messages" and isinstance(value, dict):
                changed |= _redact_value(value, redactor, scope)
    return orjson.dumps(body) if changed else None


def _redact_value(value: dict[str, Any], redactor: Redactor, scope: Scope) -> bool:
    metadata = value.get("metadata")
    number = metadata.get("phone_number_id") if isinstance(metadata, dict) else None
    own = number in scope.own_numbers
    if not own and number not in scope.shared_numbers:
        return False
    changed = _replace(
        value.get("statuses"),
        lambda item: (
            redactor.is_phone(item.get("recipient_id")) and (own or item.get("id") in scope.wamids)
        ),
        redactor.scrub,
    )
    from_user = _replace(
        value.get("messages"),
        lambda item: redactor.is_phone(item.get("from")) and (own or _ours(item, scope)),
        lambda item: redactor.content(item, keep=INBOUND_STRUCTURE),
    )
    changed |= from_user
    changed |= _replace(
        value.get("contacts"),
        lambda item: redactor.is_phone(item.get("wa_id")) and (own or from_user),
        lambda item: redactor.content(item, keep=()),  # a profile's `name` is the user's
    )
    if own:
        scrubbed = redactor.scrub(value)
        changed |= scrubbed != value
        value.clear()
        value.update(scrubbed)
    return changed


def _ours(message: dict[str, Any], scope: Scope) -> bool:
    """An inbound message to the shared number: a reply to one of the org's messages, or to
    none (it belongs to no organisation)."""
    context = message.get("context")
    replied = context.get("id") if isinstance(context, dict) else None
    return replied is None or replied in scope.wamids


def _replace(
    items: Any,
    about: Callable[[dict[str, Any]], bool],
    redact: Callable[[dict[str, Any]], Any],
) -> bool:
    """Replace, in the list `items`, the objects `about` the contact by `redact(object)`."""
    if not isinstance(items, list):
        return False
    changed = False
    for i, item in enumerate(items):
        if isinstance(item, dict) and about(item):
            items[i] = redact(item)
            changed = True
    return changed


def _dicts(value: Any) -> list[dict[str, Any]]:
    return [item for item in value if isinstance(item, dict)] if isinstance(value, list) else []
