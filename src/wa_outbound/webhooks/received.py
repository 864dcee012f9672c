"""`message.received`: an inbound message reported to the organisation that owns the number.

A number of an organisation's own reports to that organisation. The shared number reports an
inbound message only to the organisation whose message it replies to (`context.id`); one that
replies to none of ours reaches no organisation's app (it still opens service windows).

The event is written once per inbound message: its id is derived from the number and the wamid,
so a body Meta delivers again (or that the sweep processes again) reports nothing new.
"""

from __future__ import annotations

import uuid
from datetime import datetime
from typing import Any

import sqlalchemy as sa
from sqlalchemy.ext.asyncio import AsyncConnection

from wa_outbound.db.schema import SHARED_SENDER_ID, outbound_message
from wa_outbound.events import outgoing
from wa_outbound.webhooks.payload import Inbound
from wa_outbound.webhooks.routing import Routes

m = outbound_message.c
_INBOUND = uuid.UUID("6a1f6f0e-2f38-4d53-9a55-0c1f6b8e61d1")
_EVENT = uuid.UUID("0e5c9a53-5d0e-4d8e-8d0b-7d3b2f0b9c44")


def inbound_id(phone_number_id: str, wamid: str) -> uuid.UUID:
    """Our id of an inbound message: the same for every delivery of it."""
    return uuid.uuid5(_INBOUND, f"{phone_number_id}/{wamid}")


def received_event_id(inbound: uuid.UUID, org_id: str) -> uuid.UUID:
    """The id of the `message.received` event that told `org_id` of inbound message `inbound`."""
    return uuid.uuid5(_EVENT, f"{inbound}/{org_id}")


async def report_received(
    conn: AsyncConnection, inbound: list[Inbound], routes: Routes, *, now: datetime
) -> int:
    """Write the `message.received` events of these inbound messages; how many were new."""
    items = [
        (item, owner)
        for item in inbound
        if item.wamid and (owner := routes.live.get(item.phone_number_id or "")) is not None
    ]
    if not items:
        return 0
    replied = await _replied_to(conn, [item for item, _ in items], routes)
    events: list[outgoing.Outgoing] = []
    for item, owner in items:
        number = item.phone_number_id or ""
        context = replied.get((number, item.context_id or ""))
        # The shared number's inbound messages belong to the org whose message they reply to.
        shared_org = context[1] if context is not None else None
        org_id = shared_org if owner.is_shared else owner.org_id
        if org_id is None or item.wamid is None:
            continue
        our_id = inbound_id(number, item.wamid)
        events.append(
            outgoing.Outgoing(
                org_id=org_id,
                type=outgoing.MESSAGE_RECEIVED,
                data=_data(item, our_id, None if owner.is_shared else owner.id, context, now),
                occurred_at=min(item.at or now, now),
                event_id=received_event_id(our_id, org_id),
            )
        )
    return await outgoing.write(conn, events) if events else 0


async def _replied_to(
    conn: AsyncConnection, inbound: list[Inbound], routes: Routes
) -> dict[tuple[str, str], tuple[uuid.UUID, str]]:
    """(number, wamid replied to) → (our message id, its org) for replies to our messages, each
    matched among the messages of the number it was sent to."""
    wamids = {item.context_id for item in inbound if item.context_id}
    if not wamids:
        return {}
    rows = await conn.execute(
        sa.select(m.id, m.org_id, m.provider_message_id, m.sender_id).where(
            m.provider_message_id.in_(wamids)
        )
    )
    by_sender = {
        sender_id: number for number, ids in routes.sender_ids.items() for sender_id in ids
    }
    found: dict[tuple[str, str], tuple[uuid.UUID, str]] = {}
    for row in rows:
        number = by_sender.get(row.sender_id if row.sender_id is not None else SHARED_SENDER_ID)
        if number is not None:
            found[number, row.provider_message_id] = (row.id, row.org_id)
    return found


def _data(
    item: Inbound,
    our_id: uuid.UUID,
    sender_id: uuid.UUID | None,
    context: tuple[uuid.UUID, str] | None,
    now: datetime,
) -> dict[str, Any]:
    data: dict[str, Any] = {
        "id": str(our_id),
        "wamid": item.wamid,
        "from": item.phone,
        "from_user_id": item.user_id,
        "sender_id": None if sender_id is None else str(sender_id),
        "type": item.type,
    }
    parts = {"text": item.text, "payload": item.payload, "media_id": item.media_id}
    data.update({key: value for key, value in parts.items() if value is not None})
    if context is not None:
        data["context_message_id"] = str(context[0])
    data["received_at"] = outgoing.json_ready(min(item.at or now, now))
    return data
