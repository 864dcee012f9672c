"""The 24-hour customer service window, opened by a user's inbound message."""

from __future__ import annotations

from datetime import datetime

import sqlalchemy as sa
from sqlalchemy.ext.asyncio import AsyncConnection

from wa_outbound.db.dialect import insert
from wa_outbound.db.schema import SHARED_SENDER_ID, consent, service_window
from wa_outbound.webhooks.payload import Inbound


async def open_service_windows(
    conn: AsyncConnection, inbound: list[Inbound], *, now: datetime
) -> int:
    """Record each sender's latest inbound message; return how many windows were touched.

    The business number is shared by every organisation of this service, and Meta does not say
    which one the user is answering. So the window opens for every organisation that has a
    consent row for that phone (granted or not: sending still requires a granted consent);
    organisations that never dealt with the number get nothing.
    """
    latest: dict[str, datetime] = {}
    for item in inbound:
        # Meta's time of the message, never in the future: a late webhook opens a window
        # that is already partly, or wholly, over.
        at = min(item.at or now, now)
        latest[item.phone] = max(latest.get(item.phone, at), at)
    if not latest:
        return 0
    known = await conn.execute(
        sa.select(consent.c.org_id, consent.c.phone).where(consent.c.phone.in_(latest))
    )
    rows = [
        {
            "org_id": org_id,
            "sender_id": SHARED_SENDER_ID,
            "phone": number,
            "last_inbound_at": latest[number],
        }
        for org_id, number in known
    ]
    if not rows:
        return 0
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
