"""The shared sender's row follows the settings, and a start-up lifts its token pause."""

from __future__ import annotations

import pytest
import sqlalchemy as sa
from sqlalchemy.ext.asyncio import AsyncEngine

from helpers import make_settings
from wa_outbound.db.schema import SHARED_SENDER_ID, sender
from wa_outbound.db.types import utcnow
from wa_outbound.senders import health
from wa_outbound.senders.directory import Directory

pytestmark = pytest.mark.asyncio


async def reasons(engine: AsyncEngine) -> list[str]:
    async with engine.connect() as conn:
        found = await conn.scalar(
            sa.select(sender.c.paused_reasons).where(sender.c.id == SHARED_SENDER_ID)
        )
    return list(found or [])


async def test_a_start_up_lifts_the_shared_senders_token_pause_only(
    db_engine: AsyncEngine, database_url: str
) -> None:
    settings = make_settings(database_url, shared_waba_id="waba-shared")
    directory = Directory(db_engine, settings)
    await directory.ensure_shared()
    async with db_engine.begin() as conn:
        for reason in ("token_invalid", "payment_issue"):
            await health.add_reason(
                conn, reason, now=utcnow(), actor="test", sender_ids=[SHARED_SENDER_ID]
            )
    assert await reasons(db_engine) == ["token_invalid", "payment_issue"]

    await Directory(db_engine, settings).ensure_shared()  # a restart, with a new token

    assert await reasons(db_engine) == ["payment_issue"]
    async with db_engine.connect() as conn:
        row = (await conn.execute(sa.select(sender).where(sender.c.id == SHARED_SENDER_ID))).one()
    assert (row.phone_number_id, row.waba_id, row.org_id) == ("sandbox", "waba-shared", None)
