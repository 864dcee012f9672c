"""Templates and consents in the database for the tests: a WABA's registry as a sync leaves
it, a recording provider for the dispatcher, and the org's callback events."""

from __future__ import annotations

import uuid
from collections.abc import Sequence
from typing import Any

import sqlalchemy as sa
from sqlalchemy.ext.asyncio import AsyncEngine

from wa_outbound.contacts import consents
from wa_outbound.db.callback_schema import callback_endpoint, callback_event
from wa_outbound.db.template_schema import template
from wa_outbound.db.types import utcnow
from wa_outbound.templates import registry
from wa_outbound.whatsapp.provider import OutgoingMessage, SendResult
from wa_outbound.whatsapp.retry import ProviderError


def item(name: str, status: str = "APPROVED", category: str = "UTILITY", **extra: Any) -> Any:
    """A template as Meta lists it."""
    return {"name": name, "language": "en_US", "status": status, "category": category} | extra


async def synced(engine: AsyncEngine, waba_id: str, *items: dict[str, Any]) -> None:
    """The WABA's registry as a complete sync from Meta leaves it."""
    async with engine.begin() as conn:
        await registry.store_listing(conn, waba_id, items, now=utcnow(), complete=True)


async def change(engine: AsyncEngine, waba_id: str, name: str, **changes: Any) -> None:
    async with engine.begin() as conn:
        await registry.change(conn, waba_id, name, "en_US", now=utcnow(), **changes)


async def row(engine: AsyncEngine, waba_id: str, name: str) -> dict[str, Any]:
    t = template.c
    async with engine.connect() as conn:
        found = await conn.execute(
            sa.select(template).where(t.waba_id == waba_id, t.name == name, t.language == "en_US")
        )
        return dict(found.one()._mapping)


async def opt_out(engine: AsyncEngine, org_id: str, phone: str, value: bool = True) -> None:
    async with engine.begin() as conn:
        await consents.set_consent(
            conn,
            org_id=org_id,
            phone=phone,
            status=None,
            source="test",
            actor="test",
            marketing_opt_out=value,
        )


async def consent_of(engine: AsyncEngine, org_id: str, phone: str) -> dict[str, Any]:
    async with engine.connect() as conn:
        return await consents.get_consent(conn, org_id=org_id, phone=phone)


async def history_of(engine: AsyncEngine, org_id: str, phone: str) -> list[dict[str, Any]]:
    async with engine.connect() as conn:
        return await consents.history(conn, org_id=org_id, phone=phone)


class Recording:
    """A provider that accepts every send, or answers each recipient's scripted error."""

    name = "recording"

    def __init__(self, errors: dict[str, ProviderError] | None = None) -> None:
        self.sent: list[OutgoingMessage] = []
        self.errors = errors or {}

    async def send(self, message: OutgoingMessage) -> SendResult:
        self.sent.append(message)
        if message.to in self.errors:
            return SendResult(error=self.errors[message.to])
        return SendResult(wamid=f"wamid.{uuid.uuid4().hex}")

    async def close(self) -> None:
        return None


async def subscribe(engine: AsyncEngine, org_id: str, events: Sequence[str] | None = None) -> None:
    now = utcnow()
    async with engine.begin() as conn:
        await conn.execute(
            callback_endpoint.insert().values(
                id=uuid.uuid4(),
                org_id=org_id,
                url="https://example.com/hook",
                events=list(events) if events is not None else None,
                enabled=True,
                secret="plain:whsec_c2VjcmV0",
                created_at=now,
                updated_at=now,
            )
        )


async def callbacks_of(engine: AsyncEngine, org_id: str, type: str) -> list[dict[str, Any]]:
    e = callback_event.c
    async with engine.connect() as conn:
        rows = await conn.execute(
            sa.select(callback_event).where(e.org_id == org_id, e.type == type).order_by(e.seq)
        )
        return [dict(r._mapping) for r in rows]
