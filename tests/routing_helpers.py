"""Senders that Meta's webhooks route to, written straight into the database: the shared sender
on the number of `meta_payloads.envelope()`, and senders of their own for orgs."""

from __future__ import annotations

import uuid

from sqlalchemy.ext.asyncio import AsyncConnection, AsyncEngine

import meta_payloads as meta
from wa_outbound.db.schema import SHARED_SENDER_ID
from wa_outbound.db.types import utcnow
from wa_outbound.senders import store


async def shared_sender(
    engine: AsyncEngine,
    phone_number_id: str = meta.PHONE_NUMBER_ID,
    waba_id: str | None = meta.WABA_ID,
    display_phone_number: str | None = None,
) -> uuid.UUID:
    """The deployment's shared sender, on `phone_number_id` (by default the envelope's)."""
    async with engine.begin() as conn:
        await ensure_shared(conn, phone_number_id, waba_id, display_phone_number)
    return SHARED_SENDER_ID


async def ensure_shared(
    conn: AsyncConnection,
    phone_number_id: str = meta.PHONE_NUMBER_ID,
    waba_id: str | None = meta.WABA_ID,
    display_phone_number: str | None = None,
) -> None:
    await store.ensure_shared_sender(
        conn,
        phone_number_id=phone_number_id,
        waba_id=waba_id,
        display_phone_number=display_phone_number,
        now=utcnow(),
    )
