"""Building a dispatcher over a test database, with a clock the test moves."""

from __future__ import annotations

import uuid
from collections.abc import AsyncIterator
from contextlib import asynccontextmanager
from dataclasses import dataclass, field
from datetime import datetime, timedelta
from typing import Any

import sqlalchemy as sa
from sqlalchemy.ext.asyncio import AsyncEngine

from helpers import TEMPLATE
from wa_outbound.config import Settings
from wa_outbound.contacts import consents
from wa_outbound.db.engine import create_engine
from wa_outbound.db.schema import consent, message_event, outbound_message
from wa_outbound.db.types import utcnow
from wa_outbound.dispatch import claims
from wa_outbound.dispatch.claims import Claimed
from wa_outbound.dispatch.dispatcher import Dispatcher
from wa_outbound.metrics import Metrics
from wa_outbound.orgs import organizations
from wa_outbound.outbox import enqueue
from wa_outbound.whatsapp.provider import Provider


@dataclass
class Clock:
    """Real time, plus however far the test has moved it forward."""

    offset: timedelta = field(default_factory=timedelta)

    @property
    def now(self) -> datetime:
        return utcnow() + self.offset

    def __call__(self) -> datetime:
        return self.now

    def advance(self, seconds: float) -> None:
        self.offset += timedelta(seconds=seconds)


async def new_org(engine: AsyncEngine, *phones: str, org_id: str | None = None) -> str:
    async with engine.begin() as conn:
        org = await organizations.create_org(
            conn,
            name="T",
            org_id=org_id,
            daily_quota=1_000_000,
            messages_per_second=1000,
            actor="test",
        )
        if len(phones) > 100:  # many recipients: their consent rows in one statement
            now = utcnow()
            await conn.execute(
                consent.insert(),
                [
                    {"org_id": org["id"], "phone": phone, "status": "granted", "source": "test"}
                    | {"granted_at": now, "updated_at": now}
                    for phone in phones
                ],
            )
            return str(org["id"])
        for phone in phones:
            await consents.set_consent(
                conn, org_id=org["id"], phone=phone, status="granted", source="test", actor="test"
            )
    return str(org["id"])


async def queue(
    engine: AsyncEngine,
    org_id: str,
    *phones: str,
    max_attempts: int = 5,
    send_after: datetime | None = None,
    sender: str | None = None,
) -> list[uuid.UUID]:
    items = [
        enqueue.NewMessage(
            to=phone,
            kind="template",
            payload=TEMPLATE,
            metadata={},
            send_after=send_after,
            idempotency_key=None,
            request_hash="h",
            sender=sender,
        )
        for phone in phones
    ]
    async with engine.begin() as conn:
        results = await enqueue.enqueue(
            conn,
            org_id=org_id,
            items=items,
            max_attempts=max_attempts,
            actor="test",
            shared_sender=True,
        )
    ids = []
    for result in results:
        assert result.message is not None, result.error
        ids.append(result.message["id"])
    return ids


async def message(engine: AsyncEngine, message_id: uuid.UUID) -> dict[str, Any]:
    async with engine.connect() as conn:
        row = (
            await conn.execute(
                sa.select(outbound_message).where(outbound_message.c.id == message_id)
            )
        ).one()
    return dict(row._mapping)


async def event_types(engine: AsyncEngine, message_id: uuid.UUID) -> list[str]:
    async with engine.connect() as conn:
        rows = await conn.execute(
            sa.select(message_event.c.type)
            .where(message_event.c.message_id == message_id)
            .order_by(message_event.c.id)
        )
        return [row.type for row in rows]


@asynccontextmanager
async def dispatcher_for(
    settings: Settings, provider: Provider, clock: Clock | None = None, **kwargs: Any
) -> AsyncIterator[Dispatcher]:
    engine = create_engine(settings)
    try:
        yield Dispatcher(
            settings=settings,
            engine=engine,
            provider=provider,
            metrics=Metrics(),
            clock=clock or Clock(),
            **kwargs,
        )
    finally:
        await provider.close()
        await engine.dispose()


async def claim_as(
    engine: AsyncEngine, worker: str, *, now: datetime, lease_s: float = 60, limit: int = 100
) -> list[Claimed]:
    """Claim due messages as a dispatcher named `worker` would, without sending them."""
    async with engine.begin() as conn:
        due = await claims.lock_due(conn, limit=limit, now=now, skip_orgs=[])
        return await claims.claim(
            conn, [row.id for row in due], worker=worker, lease_s=lease_s, now=now
        )


async def expire_leases(engine: AsyncEngine) -> None:
    """Time passes for every lease: each one ends a second ago, by the database's clock."""
    async with engine.begin() as conn:
        await conn.execute(
            outbound_message.update()
            .where(outbound_message.c.lease_until.is_not(None))
            .values(lease_until=utcnow() - timedelta(seconds=1))
        )
