"""Routing what Meta posts: each change goes to the business number, or the WABA, it names.

A number routes when any sender ever had it (deleted senders keep their rows, so their late
statuses still find their messages), the shared sender included. A change for a number or a
WABA that no sender has is stored with its body and counted, never applied nor kept pending.
"""

from __future__ import annotations

import uuid
from dataclasses import dataclass

import sqlalchemy as sa
from sqlalchemy.ext.asyncio import AsyncConnection

from wa_outbound.db.schema import SHARED_SENDER_ID, sender, waba
from wa_outbound.webhooks.payload import WebhookContent

s = sender.c


@dataclass(frozen=True, slots=True)
class Owner:
    """The live sender of a number, as routing needs it."""

    id: uuid.UUID
    org_id: str | None

    @property
    def is_shared(self) -> bool:
        return self.id == SHARED_SENDER_ID


@dataclass(frozen=True)
class Routes:
    """The senders of the numbers one body names."""

    sender_ids: dict[str, list[uuid.UUID]]
    """Every sender id each known number ever had."""
    live: dict[str, Owner]
    """The live sender of each number, when it has one."""

    def knows(self, phone_number_id: str | None) -> bool:
        return phone_number_id is not None and phone_number_id in self.sender_ids


async def resolve(conn: AsyncConnection, content: WebhookContent) -> Routes:
    """One indexed query for every number the body names (most bodies name one)."""
    numbers = {n for n in content.numbers if n is not None}
    if not numbers:
        return Routes({}, {})
    rows = await conn.execute(
        sa.select(s.id, s.phone_number_id, s.org_id, s.deleted_at).where(
            s.phone_number_id.in_(numbers)
        )
    )
    ids: dict[str, list[uuid.UUID]] = {}
    live: dict[str, Owner] = {}
    for row in rows:
        ids.setdefault(row.phone_number_id, []).append(row.id)
        if row.deleted_at is None:
            live[row.phone_number_id] = Owner(row.id, row.org_id)
    return Routes(ids, live)


async def known_wabas(conn: AsyncConnection, waba_ids: set[str]) -> set[str]:
    """The WABAs a sender has (or had: its `waba` row stays) among these."""
    if not waba_ids:
        return set()
    rows = await conn.execute(
        sa.union(
            sa.select(waba.c.waba_id).where(waba.c.waba_id.in_(waba_ids)),
            sa.select(sender.c.waba_id).where(sender.c.waba_id.in_(waba_ids)),
        )
    )
    return {row[0] for row in rows}
