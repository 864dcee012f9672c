"""Rows written straight into the real database, for tests that need a state the API cannot
reach by itself yet (a message Meta accepted, with its wamid)."""

from __future__ import annotations

import uuid
from collections.abc import AsyncIterator
from contextlib import asynccontextmanager
from datetime import datetime
from typing import Any

import sqlalchemy as sa
from sqlalchemy.ext.asyncio import AsyncConnection, AsyncEngine

from alert_factories import message_row as outbox_row
from helpers import make_settings
from wa_outbound.db.engine import create_engine
from wa_outbound.db.schema import organization, outbound_message
from wa_outbound.db.types import utcnow

PHONE = "+33612345678"


@asynccontextmanager
async def engine_for(url: str) -> AsyncIterator[AsyncEngine]:
    engine = create_engine(make_settings(url))
    try:
        yield engine
    finally:
        await engine.dispose()


async def insert_org(conn: AsyncConnection, org_id: str | None = None) -> str:
    org_id = org_id or f"org-{uuid.uuid4().hex[:8]}"
    await conn.execute(organization.insert().values(id=org_id, name=org_id, created_at=utcnow()))
    return org_id


async def insert_message(
    conn: AsyncConnection,
    *,
    org_id: str,
    wamid: str | None = None,
    status: str = "ACCEPTED",
    to: str = PHONE,
    **columns: Any,
) -> uuid.UUID:
    """A template message, by default ACCEPTED by Meta with `wamid`."""
    now = utcnow()
    defaults: dict[str, Any] = {
        "attempts": 1,
        "to_phone": to,
        "provider_message_id": wamid,
        "accepted_at": now if wamid else None,
    }
    row = outbox_row(org_id=org_id, status=status, now=now, **(defaults | columns))
    await conn.execute(outbound_message.insert().values(row))
    return uuid.UUID(str(row["id"]))


async def accept(
    conn: AsyncConnection, message_id: uuid.UUID, wamid: str, *, at: datetime | None = None
) -> None:
    """What the dispatcher does when Meta answers a send: ACCEPTED and the wamid."""
    await conn.execute(
        outbound_message.update()
        .where(outbound_message.c.id == message_id)
        .values(status="ACCEPTED", provider_message_id=wamid, accepted_at=at or utcnow())
    )


async def message_row(conn: AsyncConnection, message_id: uuid.UUID) -> dict[str, Any]:
    row = (
        await conn.execute(sa.select(outbound_message).where(outbound_message.c.id == message_id))
    ).one()
    return dict(row._mapping)
