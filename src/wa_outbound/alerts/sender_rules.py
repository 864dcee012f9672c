"""The senders' alert rules: a paused sender (critical, one alert per sender), and messages of a
WABA waiting for its messaging limit (warning, one alert per WABA)."""

from __future__ import annotations

import uuid
from datetime import datetime

import sqlalchemy as sa
from sqlalchemy.ext.asyncio import AsyncConnection

from wa_outbound.alerts.model import Finding
from wa_outbound.config import Settings
from wa_outbound.db.schema import outbound_message, sender, waba
from wa_outbound.phone import mask
from wa_outbound.status import CLAIMABLE

m = outbound_message.c
s = sender.c


async def sender_paused(conn: AsyncConnection, settings: Settings, now: datetime) -> list[Finding]:
    """Every live sender with a pause reason, with how many of its messages wait for it."""
    rows = (
        await conn.execute(
            sa.select(
                s.id,
                s.org_id,
                s.phone_number_id,
                s.waba_id,
                s.display_phone_number,
                s.paused_reasons,
                s.paused_at,
            )
            .where(s.deleted_at.is_(None), s.paused_at.is_not(None))
            .order_by(s.id)
        )
    ).all()
    paused = [row for row in rows if row.paused_reasons]
    if not paused:
        return []
    counts = await conn.execute(
        sa.select(m.sender_id, sa.func.count())
        .where(m.status.in_(CLAIMABLE), m.sender_id.in_([row.id for row in paused]))
        .group_by(m.sender_id)
    )
    waiting: dict[uuid.UUID, int] = {sender_id: int(n) for sender_id, n in counts}
    findings = []
    for row in paused:
        reasons = ", ".join(row.paused_reasons)
        number = mask(row.display_phone_number) if row.display_phone_number else "no display"
        findings.append(
            Finding(
                type="sender_paused",
                subject=str(row.id),
                severity="critical",
                summary=f"sender {number} (phone_number_id {row.phone_number_id}) is paused: "
                f"{reasons}; {waiting.get(row.id, 0)} messages wait for it",
                figures={
                    "sender_id": str(row.id),
                    "org_id": row.org_id or "shared",
                    "phone_number_id": row.phone_number_id,
                    "display_phone_number": number,
                    "waba_id": row.waba_id or "",
                    "paused_reasons": reasons,
                    "paused_at": row.paused_at.isoformat() if row.paused_at else "",
                    "waiting_messages": waiting.get(row.id, 0),
                },
            )
        )
    return findings


async def messaging_limit(
    conn: AsyncConnection, settings: Settings, now: datetime
) -> list[Finding]:
    """The WABAs whose messages wait for the messaging limit (`waiting_reason`)."""
    rows = await conn.execute(
        sa.select(s.waba_id, waba.c.messaging_limit, sa.func.count(), sa.func.min(m.created_at))
        .select_from(outbound_message)
        .join(sender, s.id == m.sender_id)
        .join(waba, waba.c.waba_id == s.waba_id, isouter=True)
        .where(m.status.in_(CLAIMABLE), m.waiting_reason == "messaging_limit")
        .group_by(s.waba_id, waba.c.messaging_limit)
        .order_by(s.waba_id)
    )
    findings = []
    for waba_id, tier, count, oldest in rows:
        subject = waba_id or "none"
        findings.append(
            Finding(
                type="messaging_limit",
                subject=subject,
                severity="warning",
                summary=f"{count} messages of WABA {subject} wait for its messaging limit "
                f"({tier or 'unknown'})",
                figures={
                    "waba_id": subject,
                    "messaging_limit": tier or "",
                    "waiting_messages": int(count),
                    "oldest_waiting_seconds": int((now - oldest).total_seconds()),
                },
            )
        )
    return findings
