"""`reply_to`: the message a new one replies to, as the wamid Meta needs in `context`.

A caller names it by the inbound message's wamid (taken as given) or by our id of it: the `id`
of a `message.received` event's data (webhooks.received.inbound_id) or of the event itself.
An id is looked up among the organisation's `message.received` events, which carry the wamid.
"""

from __future__ import annotations

import uuid
from collections.abc import Iterable

import sqlalchemy as sa
from sqlalchemy.ext.asyncio import AsyncConnection

from wa_outbound.db.callback_schema import callback_event
from wa_outbound.webhooks.received import received_event_id

MESSAGE_RECEIVED = "message.received"
e = callback_event.c


def as_id(reply_to: str) -> uuid.UUID | None:
    """The id in `reply_to`, or None when it is a wamid (Meta's ids are never UUIDs)."""
    try:
        return uuid.UUID(reply_to)
    except ValueError:
        return None


async def wamids_of(
    conn: AsyncConnection, *, org_id: str, ids: Iterable[uuid.UUID]
) -> dict[uuid.UUID, str]:
    """The wamid of each inbound message the organisation was told of, by the id it was given
    (the event's `data.id`, or the event's own `id`); ids it was never given are left out."""
    wanted = set(ids)
    if not wanted:
        return {}
    # The event id is derived from data.id and the org: both are found by the unique index.
    by_event = {received_event_id(inbound, org_id): inbound for inbound in wanted}
    rows = await conn.execute(
        sa.select(e.id, e.data).where(
            e.id.in_(wanted | by_event.keys()),
            e.org_id == org_id,
            e.type == MESSAGE_RECEIVED,
        )
    )
    found: dict[uuid.UUID, str] = {}
    for row in rows:
        wamid = row.data.get("wamid") if isinstance(row.data, dict) else None
        if isinstance(wamid, str) and wamid:
            found[by_event.get(row.id, row.id)] = wamid
    return found
