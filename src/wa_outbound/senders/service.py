"""Creating, changing and deleting an org's senders, with the rules of API.md: one default per
org, a number registered once, tokens stored encrypted, tokens and Meta's facts verified by the
caller (senders.verify) before anything is written."""

from __future__ import annotations

import uuid
from collections.abc import Callable
from dataclasses import dataclass
from datetime import datetime
from typing import Any

import sqlalchemy as sa
from sqlalchemy.exc import IntegrityError
from sqlalchemy.ext.asyncio import AsyncConnection

from wa_outbound.db.schema import organization, outbound_message, sender
from wa_outbound.errors import (
    DefaultRequired,
    NotFound,
    SenderExists,
    SenderInUse,
    SenderIsDefault,
)
from wa_outbound.events import message_event_row, record_audit, record_message_events
from wa_outbound.senders import health, store
from wa_outbound.senders.reporting import report_updated
from wa_outbound.senders.reporting import view as view
from wa_outbound.senders.store import Sender
from wa_outbound.whatsapp.graph import NumberInfo

s = sender.c
m = outbound_message.c
Encrypt = Callable[[str], str]
_WAITING = ("QUEUED", "RETRYING")


@dataclass(frozen=True, slots=True)
class NewSender:
    phone_number_id: str
    waba_id: str
    access_token: str
    name: str | None
    messages_per_second: float
    default: bool


async def registered(conn: AsyncConnection, phone_number_id: str) -> bool:
    """Whether a live sender (the shared one included) has this number."""
    found = await conn.scalar(
        sa.select(s.id).where(s.phone_number_id == phone_number_id, s.deleted_at.is_(None))
    )
    return found is not None


async def _lock_org(conn: AsyncConnection, org_id: str) -> None:
    """Serialises the org's sender changes (the one-default rule) across replicas."""
    found = await conn.scalar(
        sa.select(organization.c.id).where(organization.c.id == org_id).with_for_update()
    )
    if found is None:
        raise NotFound(f"organisation {org_id!r} not found")


async def create(
    conn: AsyncConnection,
    org_id: str,
    new: NewSender,
    info: NumberInfo,
    *,
    encrypt: Encrypt,
    now: datetime,
    actor: str,
) -> Sender:
    await _lock_org(conn, org_id)
    if await registered(conn, new.phone_number_id):
        raise SenderExists(phone_number_id=new.phone_number_id)
    others = await store.of_org(conn, org_id)
    is_default = new.default or not others
    if is_default and others:
        await conn.execute(
            sender.update()
            .where(s.org_id == org_id, s.is_default)
            .values(is_default=False, updated_at=now)
        )
    sender_id = uuid.uuid4()
    try:
        async with conn.begin_nested():
            await conn.execute(
                sender.insert().values(
                    id=sender_id,
                    org_id=org_id,
                    name=new.name,
                    phone_number_id=new.phone_number_id,
                    waba_id=new.waba_id,
                    display_phone_number=info.display_phone_number,
                    is_default=is_default,
                    messages_per_second=new.messages_per_second,
                    access_token=encrypt(new.access_token),
                    token_last4=new.access_token[-4:],
                    paused_reasons=[],
                    quality_rating=info.quality_rating,
                    created_at=now,
                    updated_at=now,
                )
            )
    except IntegrityError as exc:  # registered meanwhile by another org's request
        raise SenderExists(phone_number_id=new.phone_number_id) from exc
    await store.set_messaging_limit(
        conn, new.waba_id, info.messaging_limit, now=now, keep_if_none=True
    )
    await record_audit(
        conn,
        org_id=org_id,
        at=now,
        action="sender.created",
        actor=actor,
        subject=str(sender_id),
        details={"phone_number_id": new.phone_number_id, "waba_id": new.waba_id},
    )
    created = await store.get(conn, sender_id)
    assert created is not None
    return created


async def owned(
    conn: AsyncConnection, org_id: str, sender_id: uuid.UUID, *, lock: bool = False
) -> Sender:
    """The org's live sender, or 404 (another org's sender is not found, never forbidden)."""
    found = await store.get(conn, sender_id, lock=lock)
    if found is None or found.org_id != org_id:
        raise NotFound("sender not found")
    return found


async def update(
    conn: AsyncConnection,
    org_id: str,
    sender_id: uuid.UUID,
    changes: dict[str, Any],
    *,
    encrypt: Encrypt,
    info: NumberInfo | None,
    now: datetime,
    actor: str,
) -> Sender:
    """Apply a PATCH. `changes` holds only the fields given; a new `access_token` comes with
    `info`, what Meta said when asked with it."""
    await _lock_org(conn, org_id)
    current = await owned(conn, org_id, sender_id, lock=True)
    values: dict[str, Any] = {}
    if "name" in changes:
        values["name"] = changes["name"]
    if "messages_per_second" in changes:
        values["messages_per_second"] = changes["messages_per_second"]
    if "default" in changes:
        if changes["default"] and not current.is_default:
            await conn.execute(
                sender.update()
                .where(s.org_id == org_id, s.is_default)
                .values(is_default=False, updated_at=now)
            )
            values["is_default"] = True
        elif not changes["default"] and current.is_default:
            raise DefaultRequired()
    if "access_token" in changes and info is not None:
        token = changes["access_token"]
        values.update(
            access_token=encrypt(token),
            token_last4=token[-4:],
            display_phone_number=info.display_phone_number,
            quality_rating=info.quality_rating,
        )
        if current.waba_id and info.messaging_limit is not None:
            await store.set_messaging_limit(conn, current.waba_id, info.messaging_limit, now=now)
    if values:
        await conn.execute(
            sender.update().where(s.id == sender_id).values(updated_at=now, **values)
        )
    if "access_token" in changes:
        await health.remove_reasons(
            conn, ["token_invalid"], now=now, actor=actor, sender_ids=[sender_id], report=False
        )
    if changes.get("paused") is True:
        await health.add_reason(
            conn, "manual", now=now, actor=actor, sender_ids=[sender_id], report=False
        )
    elif changes.get("paused") is False:
        await health.remove_reasons(
            conn, None, now=now, actor=actor, sender_ids=[sender_id], report=False
        )
    if "messaging_limit" in changes and current.waba_id:
        await store.set_messaging_limit(conn, current.waba_id, changes["messaging_limit"], now=now)
    await record_audit(
        conn,
        org_id=org_id,
        at=now,
        action="sender.updated",
        actor=actor,
        subject=str(sender_id),
        details={"changed": sorted(changes)},
    )
    updated = await store.get(conn, sender_id)
    assert updated is not None
    # One event for the whole PATCH, the WABA's other senders too when its limit changed.
    await report_updated(
        conn,
        now=now,
        senders=[updated],
        waba_id=current.waba_id if "messaging_limit" in changes else None,
    )
    return updated


async def delete(
    conn: AsyncConnection,
    org_id: str,
    sender_id: uuid.UUID,
    *,
    cancel_waiting: bool,
    now: datetime,
    actor: str,
) -> int:
    """Delete a sender (its row stays, so its messages' late statuses still route); returns how
    many waiting messages were cancelled."""
    await _lock_org(conn, org_id)
    current = await owned(conn, org_id, sender_id, lock=True)
    if current.is_default and len(await store.of_org(conn, org_id)) > 1:
        raise SenderIsDefault()
    waiting = m.sender_id == sender_id, m.status.in_(_WAITING)
    if not cancel_waiting:
        count = await conn.scalar(
            sa.select(sa.func.count()).select_from(outbound_message).where(*waiting)
        )
        if count:
            raise SenderInUse(waiting=int(count))
    cancelled = await _cancel_waiting(conn, sender_id, now=now, actor=actor)
    await conn.execute(
        sender.update()
        .where(s.id == sender_id)
        .values(deleted_at=now, is_default=False, updated_at=now)
    )
    await record_audit(
        conn,
        org_id=org_id,
        at=now,
        action="sender.deleted",
        actor=actor,
        subject=str(sender_id),
        details={"cancelled": cancelled},
    )
    return cancelled


async def _cancel_waiting(
    conn: AsyncConnection, sender_id: uuid.UUID, *, now: datetime, actor: str
) -> int:
    rows = (
        await conn.execute(
            sa.select(m.id, m.org_id, m.status)
            .where(m.sender_id == sender_id, m.status.in_(_WAITING))
            .with_for_update()
        )
    ).all()
    if not rows:
        return 0
    ids = [row.id for row in rows]
    await conn.execute(
        outbound_message.update()
        .where(m.id.in_(ids), m.status.in_(_WAITING))
        .values(status="CANCELLED", waiting_reason=None, updated_at=now)
    )
    await record_message_events(
        conn,
        [
            message_event_row(
                message_id=row.id,
                org_id=row.org_id,
                at=now,
                type="cancelled",
                actor=actor,
                from_status=row.status,
                to_status="CANCELLED",
                details={"reason": "sender_deleted"},
            )
            for row in rows
        ],
    )
    return len(ids)
