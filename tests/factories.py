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
from wa_outbound.db.schema import organization, outbound_message, sender, waba
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


async def insert_sender(
    conn: AsyncConnection,
    org_id: str,
    *,
    phone_number_id: str | None = None,
    waba_id: str | None = None,
    token: str | None = None,
    messages_per_second: float = 80.0,
    is_default: bool | None = None,
    messaging_limit: str | None = None,
) -> uuid.UUID:
    """A sender row, as `POST /v1/senders` leaves it, without asking Meta. Its token is stored
    in clear (`plain:`), which every keyring reads."""
    now = utcnow()
    phone_number_id = phone_number_id or str(uuid.uuid4().int % 10**15)
    waba_id = waba_id or f"waba-{phone_number_id}"
    token = token or f"token-{phone_number_id}"
    if is_default is None:
        has_default = await conn.scalar(
            sa.select(sa.func.count())
            .select_from(sender)
            .where(sender.c.org_id == org_id, sender.c.is_default, sender.c.deleted_at.is_(None))
        )
        is_default = not has_default
    sender_id = uuid.uuid4()
    await conn.execute(
        sender.insert().values(
            id=sender_id,
            org_id=org_id,
            name=None,
            phone_number_id=phone_number_id,
            waba_id=waba_id,
            display_phone_number=f"+1 555 {phone_number_id[-7:]}",
            is_default=is_default,
            messages_per_second=messages_per_second,
            access_token=f"plain:{token}",
            token_last4=token[-4:],
            paused_reasons=[],
            created_at=now,
            updated_at=now,
        )
    )
    existing = await conn.scalar(sa.select(waba.c.waba_id).where(waba.c.waba_id == waba_id))
    if existing is None:
        await conn.execute(
            waba.insert().values(waba_id=waba_id, messaging_limit=messaging_limit, updated_at=now)
        )
    return sender_id
