"""The 24-hour customer service window, opened by a user's inbound message to one of our numbers.

Meta keys a window by business number and user; here it is kept per (organisation, sender,
user): the organisation that owns the number the user wrote to. The shared number serves many
organisations: the window opens for the one whose message the user replies to, or, when the
reply names none of ours, for every organisation that has a consent row for that user (granted
or not: sending still requires a granted consent), as before senders existed.
"""

from __future__ import annotations

import uuid
from datetime import datetime

import sqlalchemy as sa
from sqlalchemy.ext.asyncio import AsyncConnection

from wa_outbound.db.dialect import insert
from wa_outbound.db.schema import SHARED_SENDER_ID, consent, outbound_message, service_window
from wa_outbound.webhooks.payload import Inbound
from wa_outbound.webhooks.routing import Routes

m = outbound_message.c
# (org_id, sender_id, phone) → the latest inbound message's time.
Windows = dict[tuple[str, uuid.UUID, str], datetime]


async def open_service_windows(
    conn: AsyncConnection, inbound: list[Inbound], routes: Routes, *, now: datetime
) -> int:
    """Open (or move forward) the windows these inbound messages open; return how many rows
    were written. Messages to numbers without a live sender open none."""
    windows: Windows = {}
    shared: list[tuple[str, str | None, datetime]] = []
    for item in inbound:
        owner = routes.live.get(item.phone_number_id or "")
        if owner is None or item.phone is None:
            continue
        # Meta's time of the message, never in the future: a late webhook opens a window that
        # is already partly, or wholly, over.
        at = min(item.at or now, now)
        if owner.is_shared:
            shared.append((item.phone, item.context_id, at))
        elif owner.org_id is not None:
            _keep_latest(windows, (owner.org_id, owner.id, item.phone), at)
    if shared:
        await _route_shared(conn, shared, windows)
    return await _write(conn, windows)


async def _route_shared(
    conn: AsyncConnection, inbound: list[tuple[str, str | None, datetime]], windows: Windows
) -> None:
    """(user, wamid replied to, time) of inbound messages to the shared number."""
    replied = {context_id for _, context_id, _ in inbound if context_id}
    owners: dict[str, str] = {}
    if replied:
        rows = await conn.execute(
            sa.select(m.provider_message_id, m.org_id).where(
                m.provider_message_id.in_(replied),
                sa.or_(m.sender_id == SHARED_SENDER_ID, m.sender_id.is_(None)),
            )
        )
        owners = {row.provider_message_id: row.org_id for row in rows}
    unowned: dict[str, datetime] = {}
    for user, context_id, at in inbound:
        org_id = owners.get(context_id or "")
        if org_id is not None:
            _keep_latest(windows, (org_id, SHARED_SENDER_ID, user), at)
        else:
            unowned[user] = max(unowned.get(user, at), at)
    if unowned:
        rows = await conn.execute(
            sa.select(consent.c.org_id, consent.c.phone).where(consent.c.phone.in_(unowned))
        )
        for org_id, user in rows:
            _keep_latest(windows, (org_id, SHARED_SENDER_ID, user), unowned[user])


def _keep_latest(windows: Windows, key: tuple[str, uuid.UUID, str], at: datetime) -> None:
    windows[key] = max(windows.get(key, at), at)


async def _write(conn: AsyncConnection, windows: Windows) -> int:
    if not windows:
        return 0
    rows = [
        {"org_id": org_id, "sender_id": sender_id, "phone": user, "last_inbound_at": at}
        for (org_id, sender_id, user), at in sorted(windows.items())
    ]
    stmt = insert(conn, service_window).values(rows)
    newer = stmt.excluded.last_inbound_at > service_window.c.last_inbound_at
    # Webhooks come out of order: a window only ever moves forward.
    await conn.execute(
        stmt.on_conflict_do_update(
            index_elements=[
                service_window.c.org_id,
                service_window.c.sender_id,
                service_window.c.phone,
            ],
            set_={
                "last_inbound_at": sa.case(
                    (newer, stmt.excluded.last_inbound_at),
                    else_=service_window.c.last_inbound_at,
                )
            },
        )
    )
    return len(rows)
