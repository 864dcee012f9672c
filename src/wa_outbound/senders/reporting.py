"""The sender object, and `sender.updated` events: every change of a sender the organisation's
app is told of (a PATCH, a pause or resumption, a new limit or quality from Meta), written in
the transaction of the change. The shared sender belongs to no organisation: never reported."""

from __future__ import annotations

import uuid
from collections.abc import Iterable
from datetime import datetime
from typing import Any

import sqlalchemy as sa
from sqlalchemy.ext.asyncio import AsyncConnection

from wa_outbound.db.schema import sender
from wa_outbound.events import outgoing
from wa_outbound.senders import store
from wa_outbound.senders.store import Sender

s = sender.c


async def report_updated(
    conn: AsyncConnection,
    *,
    now: datetime,
    senders: Iterable[Sender] = (),
    sender_ids: Iterable[uuid.UUID] = (),
    waba_id: str | None = None,
) -> None:
    """Report these senders as they are now (given, by id, or every live one of `waba_id`)."""
    items = {item.id: item for item in senders}
    ids = set(sender_ids) - set(items)
    query = None
    if ids:
        query = sa.select(sender).where(s.id.in_(ids))
    if waba_id is not None:
        query = sa.select(sender).where(s.waba_id == waba_id, s.deleted_at.is_(None))
    if query is not None:
        for row in await conn.execute(query):
            items[row.id] = store.from_row(row)
    owned = [item for item in items.values() if item.org_id is not None]
    if not owned:
        return
    limits = await store.messaging_limits(conn, {i.waba_id for i in owned if i.waba_id})
    await outgoing.write(
        conn,
        [
            outgoing.Outgoing(
                org_id=str(item.org_id),
                type=outgoing.SENDER_UPDATED,
                data=outgoing.json_ready(view(item, limits.get(item.waba_id or ""))),
                occurred_at=now,
            )
            for item in sorted(owned, key=lambda i: i.id)
        ],
    )


def view(item: Sender, messaging_limit: str | None) -> dict[str, Any]:
    """The sender object of the API: never its token."""
    return {
        "id": str(item.id),
        "org_id": item.org_id,
        "name": item.name,
        "phone_number_id": item.phone_number_id,
        "waba_id": item.waba_id,
        "display_phone_number": item.display_phone_number,
        "default": item.is_default,
        "messages_per_second": item.messages_per_second,
        "status": "paused" if item.paused else "active",
        "paused_reasons": list(item.paused_reasons),
        "paused_at": item.paused_at,
        "messaging_limit": messaging_limit,
        "quality_rating": item.quality_rating,
        "token_last4": item.token_last4,
        "created_at": item.created_at,
        "updated_at": item.updated_at,
    }
