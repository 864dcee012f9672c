"""The `sender` and `waba` rows: reading them, and the shared sender's row kept in step with the
settings. Queries here take the caller's connection; the caller owns the transaction."""

from __future__ import annotations

import uuid
from dataclasses import dataclass
from datetime import datetime
from typing import Any

import sqlalchemy as sa
from sqlalchemy.ext.asyncio import AsyncConnection

from wa_outbound.db.dialect import insert
from wa_outbound.db.schema import SHARED_SENDER_ID, sender, waba

s = sender.c

DEFAULT_MESSAGES_PER_SECOND = 80.0
SANDBOX_PHONE_NUMBER_ID = "sandbox"
PAUSE_REASONS = ("manual", "token_invalid", "account_restricted", "payment_issue")
# Account-level reasons: they hold every sender of the WABA.
ACCOUNT_REASONS = frozenset({"account_restricted", "payment_issue"})


@dataclass(frozen=True, slots=True)
class Sender:
    id: uuid.UUID
    org_id: str | None
    name: str | None
    phone_number_id: str
    waba_id: str | None
    display_phone_number: str | None
    is_default: bool
    messages_per_second: float
    access_token: str | None
    """As stored: encrypted (see wa_outbound.crypto); None for the shared sender."""
    token_last4: str | None
    paused_reasons: tuple[str, ...]
    paused_at: datetime | None
    quality_rating: str | None
    created_at: datetime
    updated_at: datetime
    deleted_at: datetime | None = None

    @property
    def is_shared(self) -> bool:
        return self.id == SHARED_SENDER_ID

    @property
    def paused(self) -> bool:
        return bool(self.paused_reasons)


def from_row(row: Any) -> Sender:
    m = row._mapping if hasattr(row, "_mapping") else row
    return Sender(
        id=m["id"],
        org_id=m["org_id"],
        name=m["name"],
        phone_number_id=m["phone_number_id"],
        waba_id=m["waba_id"],
        display_phone_number=m["display_phone_number"],
        is_default=bool(m["is_default"]),
        messages_per_second=float(m["messages_per_second"]),
        access_token=m["access_token"],
        token_last4=m["token_last4"],
        paused_reasons=tuple(m["paused_reasons"] or ()),
        paused_at=m["paused_at"],
        quality_rating=m["quality_rating"],
        created_at=m["created_at"],
        updated_at=m["updated_at"],
        deleted_at=m["deleted_at"],
    )


async def get(conn: AsyncConnection, sender_id: uuid.UUID, *, lock: bool = False) -> Sender | None:
    """A live (not deleted) sender."""
    query = sa.select(sender).where(s.id == sender_id, s.deleted_at.is_(None))
    if lock:
        query = query.with_for_update()
    row = (await conn.execute(query)).first()
    return from_row(row) if row is not None else None


async def of_org(conn: AsyncConnection, org_id: str) -> list[Sender]:
    rows = await conn.execute(
        sa.select(sender)
        .where(s.org_id == org_id, s.deleted_at.is_(None))
        .order_by(s.created_at, s.id)
    )
    return [from_row(row) for row in rows]


async def by_phone_number_id(
    conn: AsyncConnection, phone_number_ids: set[str]
) -> dict[str, Sender]:
    """The live senders (the shared one included) of these numbers, by number."""
    if not phone_number_ids:
        return {}
    rows = await conn.execute(
        sa.select(sender).where(s.phone_number_id.in_(phone_number_ids), s.deleted_at.is_(None))
    )
    return {row.phone_number_id: from_row(row) for row in rows}


async def ids_by_phone_number_id(
    conn: AsyncConnection, phone_number_ids: set[str]
) -> dict[str, list[uuid.UUID]]:
    """Every sender id a number ever had, deleted senders included: what a late status of
    theirs is matched with."""
    found: dict[str, list[uuid.UUID]] = {}
    if phone_number_ids:
        rows = await conn.execute(
            sa.select(s.phone_number_id, s.id).where(s.phone_number_id.in_(phone_number_ids))
        )
        for number, sender_id in rows:
            found.setdefault(number, []).append(sender_id)
    return found


async def of_waba(conn: AsyncConnection, waba_id: str) -> list[Sender]:
    """The live senders of a WABA."""
    rows = await conn.execute(
        sa.select(sender).where(s.waba_id == waba_id, s.deleted_at.is_(None)).order_by(s.id)
    )
    return [from_row(row) for row in rows]


async def messaging_limit(conn: AsyncConnection, waba_id: str | None) -> str | None:
    if not waba_id:
        return None
    return await conn.scalar(sa.select(waba.c.messaging_limit).where(waba.c.waba_id == waba_id))


async def messaging_limits(conn: AsyncConnection, waba_ids: set[str]) -> dict[str, str | None]:
    if not waba_ids:
        return {}
    rows = await conn.execute(
        sa.select(waba.c.waba_id, waba.c.messaging_limit).where(waba.c.waba_id.in_(waba_ids))
    )
    return {row.waba_id: row.messaging_limit for row in rows}


async def set_messaging_limit(
    conn: AsyncConnection,
    waba_id: str,
    tier: str | None,
    *,
    now: datetime,
    keep_if_none: bool = False,
) -> None:
    """Store a WABA's messaging limit (creating its row); its senders' `updated_at` moves, so
    caches of them reload. With `keep_if_none`, an unknown tier leaves a known one as it is."""
    stmt = insert(conn, waba).values(waba_id=waba_id, messaging_limit=tier, updated_at=now)
    if keep_if_none and tier is None:
        await conn.execute(stmt.on_conflict_do_nothing())
        return
    await conn.execute(
        stmt.on_conflict_do_update(
            index_elements=[waba.c.waba_id],
            set_={"messaging_limit": tier, "updated_at": now},
        )
    )
    await conn.execute(sender.update().where(s.waba_id == waba_id).values(updated_at=now))


async def ensure_shared_sender(
    conn: AsyncConnection,
    *,
    phone_number_id: str,
    waba_id: str | None,
    display_phone_number: str | None,
    now: datetime,
) -> None:
    """Create or update the shared sender's row (no org, no stored token) from the settings.
    Its health, throughput and WABA live in the row like any sender's; its token stays in the
    environment."""
    values = {
        "phone_number_id": phone_number_id,
        "waba_id": waba_id or None,
        "display_phone_number": display_phone_number,
        "updated_at": now,
    }
    # Replicas (and a replica's lifespan and dispatcher) may do this at once: the first insert
    # wins, the others insert nothing, whichever unique index they meet, and then update.
    await conn.execute(
        insert(conn, sender)
        .values(
            id=SHARED_SENDER_ID,
            org_id=None,
            name="shared",
            is_default=False,
            messages_per_second=DEFAULT_MESSAGES_PER_SECOND,
            access_token=None,
            token_last4=None,
            paused_reasons=[],
            created_at=now,
            **values,
        )
        .on_conflict_do_nothing()
    )
    await conn.execute(sender.update().where(s.id == SHARED_SENDER_ID).values(**values))
    if waba_id:
        wstmt = insert(conn, waba).values(waba_id=waba_id, messaging_limit=None, updated_at=now)
        await conn.execute(wstmt.on_conflict_do_nothing())


async def set_messages_per_second(
    conn: AsyncConnection, sender_id: uuid.UUID, messages_per_second: float, *, now: datetime
) -> None:
    await conn.execute(
        sender.update()
        .where(s.id == sender_id)
        .values(messages_per_second=messages_per_second, updated_at=now)
    )


async def set_restricted_until(
    conn: AsyncConnection, waba_id: str, until: datetime | None, *, now: datetime
) -> None:
    """When the WABA's account restriction ends (None: no end known, or none); creates its row."""
    stmt = insert(conn, waba).values(
        waba_id=waba_id, messaging_limit=None, restricted_until=until, updated_at=now
    )
    await conn.execute(
        stmt.on_conflict_do_update(
            index_elements=[waba.c.waba_id],
            set_={"restricted_until": until, "updated_at": now},
        )
    )


async def restrictions_ended(conn: AsyncConnection, now: datetime) -> list[str]:
    """The WABAs whose account restriction ended by `now`."""
    rows = await conn.execute(
        sa.select(waba.c.waba_id)
        .where(waba.c.restricted_until <= now)
        .order_by(waba.c.waba_id)
        .with_for_update(skip_locked=True)
    )
    return list(rows.scalars())
