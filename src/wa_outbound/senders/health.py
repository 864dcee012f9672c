"""Pausing and resuming senders. A paused sender's messages are not claimed and wait, marked
`waiting_reason: sender_paused`; nothing is dead-lettered for it. `paused_reasons` is a set:
the sender sends again only when the last reason is removed."""

from __future__ import annotations

import uuid
from collections.abc import Iterable
from datetime import datetime

import sqlalchemy as sa
from sqlalchemy.ext.asyncio import AsyncConnection

from wa_outbound.db.schema import outbound_message, sender
from wa_outbound.events import record_audit
from wa_outbound.senders.reporting import report_updated
from wa_outbound.senders.store import ACCOUNT_REASONS, PAUSE_REASONS, Sender, from_row

s = sender.c
m = outbound_message.c
_WAITING = ("QUEUED", "RETRYING")


async def _targets(
    conn: AsyncConnection, sender_ids: Iterable[uuid.UUID] | None, waba_id: str | None
) -> list[Sender]:
    query = sa.select(sender).where(s.deleted_at.is_(None)).order_by(s.id).with_for_update()
    if waba_id is not None:
        query = query.where(s.waba_id == waba_id)
    else:
        query = query.where(s.id.in_(list(sender_ids or ())))
    return [from_row(row) for row in await conn.execute(query)]


async def add_reason(
    conn: AsyncConnection,
    reason: str,
    *,
    now: datetime,
    actor: str,
    sender_ids: Iterable[uuid.UUID] | None = None,
    waba_id: str | None = None,
    details: dict[str, object] | None = None,
    report: bool = True,
) -> list[Sender]:
    """Add `reason` to these senders (or every sender of `waba_id`); returns those that were not
    paused for it before, as they are now."""
    assert reason in PAUSE_REASONS, reason
    changed: list[Sender] = []
    for before in await _targets(conn, sender_ids, waba_id):
        if reason in before.paused_reasons:
            continue
        reasons = [*before.paused_reasons, reason]
        row = (
            await conn.execute(
                sender.update()
                .where(s.id == before.id)
                .values(
                    paused_reasons=reasons,
                    paused_at=before.paused_at or now,
                    updated_at=now,
                )
                .returning(*sender.c)
            )
        ).one()
        changed.append(from_row(row))
        await conn.execute(
            outbound_message.update()
            .where(m.sender_id == before.id, m.status.in_(_WAITING))
            .values(waiting_reason="sender_paused")
        )
        await record_audit(
            conn,
            org_id=before.org_id,
            at=now,
            action="sender.paused",
            actor=actor,
            subject=str(before.id),
            details={"reason": reason, "paused_reasons": reasons, **(details or {})},
        )
    if report and changed:
        await report_updated(conn, now=now, senders=changed)
    return changed


async def remove_reasons(
    conn: AsyncConnection,
    reasons: Iterable[str] | None,
    *,
    now: datetime,
    actor: str,
    sender_ids: Iterable[uuid.UUID] | None = None,
    waba_id: str | None = None,
    report: bool = True,
) -> list[Sender]:
    """Remove `reasons` (None: every reason) from these senders (or every sender of
    `waba_id`); returns those that changed. A sender left with no reason resumes: its waiting
    messages are due at once."""
    removing = set(PAUSE_REASONS if reasons is None else reasons)
    changed: list[Sender] = []
    for before in await _targets(conn, sender_ids, waba_id):
        left = [r for r in before.paused_reasons if r not in removing]
        if len(left) == len(before.paused_reasons):
            continue
        row = (
            await conn.execute(
                sender.update()
                .where(s.id == before.id)
                .values(
                    paused_reasons=left,
                    paused_at=before.paused_at if left else None,
                    updated_at=now,
                )
                .returning(*sender.c)
            )
        ).one()
        changed.append(from_row(row))
        if not left:
            await conn.execute(
                outbound_message.update()
                .where(
                    m.sender_id == before.id,
                    m.status.in_(_WAITING),
                    m.waiting_reason == "sender_paused",
                )
                .values(waiting_reason=None)
            )
        await record_audit(
            conn,
            org_id=before.org_id,
            at=now,
            action="sender.resumed" if not left else "sender.reason_removed",
            actor=actor,
            subject=str(before.id),
            details={
                "removed": sorted(removing & set(before.paused_reasons)),
                "paused_reasons": left,
            },
        )
    if report and changed:
        await report_updated(conn, now=now, senders=changed)
    return changed


async def pause_after_error(
    conn: AsyncConnection,
    sender_id: uuid.UUID,
    reason: str,
    *,
    used_token: str | None,
    now: datetime,
    actor: str,
    details: dict[str, object] | None = None,
) -> list[Sender]:
    """Meta refused a send of `sender_id` for a reason of the sender's: pause it (`token_invalid`)
    or every sender of its WABA (account reasons; only it when it has no WABA).

    A token error pauses the sender only if it still has the token the send used (`used_token`,
    as stored; None: not known), so a token replaced meanwhile is not paused for the old one's
    fault. Returns the senders paused now."""
    row = (
        await conn.execute(sa.select(s.access_token, s.waba_id).where(s.id == sender_id))
    ).first()
    if row is None:
        return []
    if reason not in ACCOUNT_REASONS:
        if used_token is not None and row.access_token != used_token:
            return []
        return await add_reason(
            conn, reason, now=now, actor=actor, sender_ids=[sender_id], details=details
        )
    if row.waba_id:
        return await add_reason(
            conn, reason, now=now, actor=actor, waba_id=row.waba_id, details=details
        )
    return await add_reason(
        conn, reason, now=now, actor=actor, sender_ids=[sender_id], details=details
    )


async def mark_waiting(conn: AsyncConnection, message_ids: Iterable[uuid.UUID]) -> None:
    """These messages, if still waiting on a paused sender, show `sender_paused` (a sender
    already paused before their answer came was not marked by `add_reason` again)."""
    ids = list(message_ids)
    if not ids:
        return
    # The paused senders are locked first: a resume running meanwhile then waits for this
    # transaction, and its own UPDATE sees (and clears) these marks. Otherwise a message could
    # keep `sender_paused` on a resumed sender, which the claim never looks at.
    senders = sa.select(m.sender_id).where(m.id.in_(ids)).scalar_subquery()
    paused = await conn.execute(
        sa.select(s.id)
        .where(s.id.in_(senders), s.paused_at.is_not(None), s.deleted_at.is_(None))
        .order_by(s.id)
        .with_for_update()
    )
    paused_ids = list(paused.scalars())
    if paused_ids:
        await conn.execute(
            outbound_message.update()
            .where(m.id.in_(ids), m.status.in_(_WAITING), m.sender_id.in_(paused_ids))
            .values(waiting_reason="sender_paused")
        )
