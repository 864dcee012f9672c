"""`expires_at`: refused when it cannot be met, shown on the message, and a message still unsent
at its expiry ends FAILED with the code `expired`, not dead-lettered, whatever held it."""

from __future__ import annotations

from datetime import timedelta

import httpx
import pytest
import sqlalchemy as sa
from sqlalchemy.ext.asyncio import AsyncEngine

from dispatch_helpers import Clock, event_types, new_org, queue
from helpers import TEMPLATE, grant, make_settings
from wa_outbound.db.schema import outbound_message
from wa_outbound.db.types import utcnow
from wa_outbound.dispatch import expiry
from wa_outbound.dispatch.dispatcher import Dispatcher
from wa_outbound.metrics import Metrics
from wa_outbound.whatsapp.sandbox import SandboxProvider, SandboxStatuses

pytestmark = pytest.mark.asyncio
m = outbound_message.c


async def test_expires_at_is_checked_and_shown(
    client: httpx.AsyncClient, org: tuple[str, dict[str, str]]
) -> None:
    _, auth = org
    await grant(client, auth, "+33612345678")
    soon = utcnow() + timedelta(minutes=10)
    body = {"to": "+33612345678", "template": TEMPLATE}
    queued = await client.post(
        "/v1/messages", json={**body, "expires_at": soon.isoformat()}, headers=auth
    )
    assert queued.status_code == 202, queued.text
    assert queued.json()["expires_at"].startswith(soon.strftime("%Y-%m-%dT%H:%M"))
    refused = [
        {**body, "expires_at": (utcnow() - timedelta(seconds=1)).isoformat()},
        {
            **body,
            "expires_at": soon.isoformat(),
            "send_after": (soon + timedelta(seconds=1)).isoformat(),
        },
    ]
    for wrong in refused:
        answer = await client.post("/v1/messages", json=wrong, headers=auth)
        assert answer.status_code == 422
        assert answer.json()["error"]["code"] == "validation_error"


async def test_a_message_unsent_at_its_expiry_fails_expired(
    db_engine: AsyncEngine, database_url: str
) -> None:
    org_id = await new_org(db_engine, "+33611111111", "+33622222222")
    expiring, lasting = await queue(db_engine, org_id, "+33611111111", "+33622222222")
    clock = Clock()
    async with db_engine.begin() as conn:
        await conn.execute(
            outbound_message.update()
            .where(m.id == expiring)
            .values(expires_at=clock.now + timedelta(seconds=30), waiting_reason="pair_interval")
        )
    async with db_engine.begin() as conn:
        assert await expiry.expire_due(conn, now=clock.now, actor="test") == 0

    clock.advance(31)
    settings = make_settings(database_url)
    dispatcher = Dispatcher(
        settings=settings,
        engine=db_engine,
        provider=SandboxProvider(SandboxStatuses(db_engine)),
        metrics=Metrics(),
        clock=clock,
    )
    # The claim never takes an expired message, even before the sweep has ended it.
    assert await dispatcher.run_once() == 1
    await dispatcher.reclaim()

    async with db_engine.connect() as conn:
        rows = {
            row.id: row
            for row in await conn.execute(
                sa.select(outbound_message).where(m.id.in_([expiring, lasting]))
            )
        }
    ended = rows[expiring]
    assert (ended.status, ended.error_code, ended.dead_lettered) == ("FAILED", "expired", False)
    assert (ended.attempts, ended.waiting_reason) == (0, None)
    assert "expired" in await event_types(db_engine, expiring)
    assert rows[lasting].status != "FAILED"
