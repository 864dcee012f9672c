"""Keys and stored-secret access for the crypto tests (tests/crypto/)."""

from __future__ import annotations

import base64
import os
import uuid

import sqlalchemy as sa
from sqlalchemy.ext.asyncio import AsyncEngine

from wa_outbound.db.schema import sender


def new_key() -> str:
    """A WA_SECRET_KEYS key, as docs/configuration.md says to make one."""
    return base64.urlsafe_b64encode(os.urandom(32)).decode()


async def set_token(engine: AsyncEngine, sender_id: uuid.UUID, stored: str) -> None:
    """Overwrite a sender's stored token (e.g. with a `Keyring.encrypt` output)."""
    async with engine.begin() as conn:
        await conn.execute(
            sender.update().where(sender.c.id == sender_id).values(access_token=stored)
        )


async def stored_tokens(engine: AsyncEngine) -> dict[uuid.UUID, str | None]:
    async with engine.connect() as conn:
        rows = await conn.execute(sa.select(sender.c.id, sender.c.access_token))
        return {row.id: row.access_token for row in rows}
