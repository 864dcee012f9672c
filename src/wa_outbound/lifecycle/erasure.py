"""`DELETE /v1/contacts/{phone}`: erase one organisation's data about one phone number, in the
caller's transaction (one transaction: all of it or nothing).

The organisation's consent for the number (and every other row it keeps per number: the
consent history) is deleted. Its messages to the number are locked, then redacted: `to_phone`
null, `redacted` true, their content (template parameters, text, captions, interactive bodies,
metadata values) and any mention of the number replaced by tokens (`redaction`). Their
timeline, the callback events about them, about inbound messages from the number and about
its consent, the stored webhook bodies (`bodies`), pending statuses, service windows, the
limiter's rows and the audit trail's subjects are redacted the same way. Pending callback
deliveries of those events are dropped; the messages still waiting are then cancelled through
the usual path, so the cancellation is on the timeline and reported (already redacted).

A message being sent at that moment finishes: its outcome lands on the redacted row; so does
one waiting for Meta's status of a send whose outcome was lost (`send_unknown`: it may have
reached Meta, it is not cancelled). Neither is ever sent again: its expiry is set to now, so if
it comes back to waiting (or is replayed from the dead-letter queue) it fails with the code
`expired` instead of being claimed.
"""

from __future__ import annotations

import uuid
from collections.abc import Collection, Sequence
from dataclasses import dataclass
from datetime import datetime
from typing import Any

import sqlalchemy as sa
from sqlalchemy.ext.asyncio import AsyncConnection

from wa_outbound.db.callback_schema import callback_delivery, callback_event, metadata
from wa_outbound.db.schema import (
    SHARED_SENDER_ID,
    audit_event,
    message_event,
    message_wamid,
    outbound_message,
    pair_slot,
    pending_status,
    sender,
    service_window,
    waba_reach,
)
from wa_outbound.db.types import utcnow
from wa_outbound.events import record_audit
from wa_outbound.lifecycle.bodies import Scope, redact_bodies
from wa_outbound.lifecycle.redaction import Redactor
from wa_outbound.outbox.messages import SEND_UNKNOWN, cancel_message
from wa_outbound.status import CANCELLABLE, KINDS, Status

m = outbound_message.c
e = callback_event.c
# Redacted in place (the limiter still counts the token), not deleted with the contact's rows.
_REDACTED_PER_PHONE = frozenset({"service_window", "pair_slot", "waba_reach"})


@dataclass(frozen=True, slots=True)
class Erased:
    messages_redacted: int
    messages_cancelled: int


async def erase_contact(
    conn: AsyncConnection,
    *,
    org_id: str,
    phone: str,
    key: bytes,
    shared_numbers: Collection[str],
    actor: str,
) -> Erased:
    now = utcnow()
    redactor = Redactor(key, phone)
    # Locked first, in id order: the dispatcher cannot claim them meanwhile, and a webhook's
    # status waits for this transaction and then lands on the redacted row.
    messages = (
        (
            await conn.execute(
                sa.select(outbound_message)
                .where(m.org_id == org_id, m.to_phone == phone)
                .order_by(m.id)
                .with_for_update()
            )
        )
        .mappings()
        .all()
    )
    ids = [row["id"] for row in messages]
    await _redact_messages(conn, messages, redactor, now)
    await _redact_events(conn, ids, redactor)
    seqs = await _redact_callback_events(conn, org_id, ids, redactor)
    if seqs:
        d = callback_delivery.c
        await conn.execute(
            callback_delivery.delete().where(d.event_seq.in_(seqs), d.status == "pending")
        )
    senders = await _senders(conn, org_id)
    own_numbers = {number for sender_id, number, _ in senders if sender_id != SHARED_SENDER_ID}
    scope = Scope(
        own_numbers=own_numbers,
        shared_numbers=set(shared_numbers) - own_numbers,
        wamids=await _wamids(conn, messages),
    )
    await redact_bodies(conn, redactor, scope)
    await _redact_pending(conn, redactor, {*own_numbers, *scope.shared_numbers})
    await _redact_limiter_and_windows(conn, org_id, senders, redactor)
    await _redact_audit(conn, org_id, redactor)
    await _delete_contact_rows(conn, org_id, phone)
    cancelled = 0
    for row in messages:
        if row["status"] in CANCELLABLE and not _in_flight(row):
            await cancel_message(conn, org_id=org_id, message_id=row["id"], actor=actor)
            cancelled += 1
    erased = Erased(messages_redacted=len(messages), messages_cancelled=cancelled)
    await record_audit(
        conn,
        org_id=org_id,
        at=now,
        action="contact.erased",
        actor=actor,
        subject=redactor.phone_token,
        details={"messages_redacted": len(messages), "messages_cancelled": cancelled},
    )
    return erased


async def _redact_messages(
    conn: AsyncConnection, messages: Sequence[Any], redactor: Redactor, now: datetime
) -> None:
    # Content first: its texts are then known when the error texts are read.
    contents = [
        (redactor.content(row["payload"]), redactor.content(row["message_metadata"]))
        for row in messages
    ]
    for row, (payload, meta) in zip(messages, contents, strict=True):
        values: dict[str, Any] = {
            "to_phone": None,
            "redacted": True,
            "payload": payload,
            "message_metadata": meta,
            "idempotency_key": _clip(redactor.text(row["idempotency_key"]), 255),
            "error_title": _clip(redactor.text(row["error_title"]), 500),
            "error_message": redactor.text(row["error_message"]),
            "error_details": redactor.text(row["error_details"]),
        }
        # In flight, perhaps with Meta already, or replayable: never sent again (see the
        # module's docstring).
        if _in_flight(row) or row["dead_lettered"]:
            expires = row["expires_at"]
            values["expires_at"] = now if expires is None else min(expires, now)
        await conn.execute(outbound_message.update().where(m.id == row["id"]).values(values))


async def _redact_events(
    conn: AsyncConnection, ids: Sequence[uuid.UUID], redactor: Redactor
) -> None:
    if not ids:
        return
    ev = message_event.c
    for event_id, details in (
        await conn.execute(sa.select(ev.id, ev.details).where(ev.message_id.in_(ids)))
    ).all():
        scrubbed = redactor.scrub(details)
        if scrubbed != details:
            await conn.execute(
                message_event.update().where(ev.id == event_id).values(details=scrubbed)
            )


async def _redact_callback_events(
    conn: AsyncConnection, org_id: str, ids: Sequence[uuid.UUID], redactor: Redactor
) -> list[int]:
    """Redact the org's callback events about these messages and the contact; their seqs."""
    about = sa.or_(
        sa.and_(e.type == "message.received", e.data["from"].as_string() == redactor.phone),
        sa.and_(e.type == "consent.changed", e.data["phone"].as_string() == redactor.phone),
    )
    if ids:
        about = sa.or_(e.message_id.in_(ids), about)
    rows = (
        await conn.execute(
            sa.select(e.seq, e.type, e.data)
            .where(e.org_id == org_id, about)
            .order_by(e.seq)
            .with_for_update()
        )
    ).all()
    shown = {str(message_id) for message_id in ids}
    for seq, type_, data in rows:
        redacted = _event_data(type_, data, redactor, shown)
        if redacted != data:
            await conn.execute(callback_event.update().where(e.seq == seq).values(data=redacted))
    return [row.seq for row in rows]


def _event_data(type_: str, data: Any, redactor: Redactor, shown: set[str]) -> Any:
    if not isinstance(data, dict):
        return redactor.scrub(data)
    data = dict(data)
    message = data.get("message")
    if isinstance(message, dict) and message.get("id") in shown:
        message = dict(message)
        for part in (*KINDS, "metadata"):
            message[part] = redactor.content(message.get(part))
        data["message"] = message | {"to": None, "redacted": True}
    if type_ == "message.received":
        for part in ("text", "payload", "from_user_id"):
            data[part] = redactor.content(data.get(part))
    return redactor.scrub(data)


async def _senders(conn: AsyncConnection, org_id: str) -> list[tuple[uuid.UUID, str, str | None]]:
    """(id, phone_number_id, waba_id) of the org's senders, deleted ones too, and the shared
    sender's."""
    s = sender.c
    rows = await conn.execute(
        sa.select(s.id, s.phone_number_id, s.waba_id).where(
            sa.or_(s.org_id == org_id, s.id == SHARED_SENDER_ID)
        )
    )
    return [(row.id, row.phone_number_id, row.waba_id) for row in rows]


async def _wamids(conn: AsyncConnection, messages: Sequence[Any]) -> set[str]:
    wamids = {row["provider_message_id"] for row in messages if row["provider_message_id"]}
    if messages:
        w = message_wamid.c
        found = await conn.scalars(
            sa.select(w.provider_message_id).where(w.message_id.in_([r["id"] for r in messages]))
        )
        wamids.update(found)
    return wamids


async def _redact_pending(conn: AsyncConnection, redactor: Redactor, numbers: set[str]) -> None:
    """Statuses still waiting for their wamid, about the contact on the org's or shared
    numbers (which org they are for is not known yet)."""
    p = pending_status.c
    rows = await conn.execute(
        sa.select(p.id, p.payload).where(
            p.payload["recipient"].as_string() == redactor.digits,
            sa.or_(p.phone_number_id.in_(numbers), p.phone_number_id.is_(None)),
        )
    )
    for pending_id, payload in rows.all():
        await conn.execute(
            pending_status.update()
            .where(p.id == pending_id)
            .values(payload=redactor.scrub(payload))
        )


async def _redact_limiter_and_windows(
    conn: AsyncConnection,
    org_id: str,
    senders: list[tuple[uuid.UUID, str, str | None]],
    redactor: Redactor,
) -> None:
    """The number becomes its token in the org's service windows, and in the pair slots and
    reached recipients of the org's senders and WABAs and of the shared sender: the messaging
    limit still counts the recipient. A row a previous erasure left under the token gives way
    to the newer one."""
    token = redactor.phone_token
    sender_ids = [sender_id for sender_id, _, _ in senders]
    wabas = sorted({waba_id for _, _, waba_id in senders if waba_id})
    for table, scope in (
        (service_window, service_window.c.org_id == org_id),
        (pair_slot, pair_slot.c.sender_id.in_(sender_ids)),
        (waba_reach, waba_reach.c.waba_id.in_(wabas)),
    ):
        keys = [c.name for c in table.primary_key.columns if c.name != "phone"]
        other = table.alias()  # not correlated with the DELETE's own table
        taken = sa.select(*(other.c[k] for k in keys)).where(other.c.phone == redactor.phone)
        phone = table.c.phone
        await conn.execute(
            table.delete().where(
                scope, phone == token, sa.tuple_(*(table.c[k] for k in keys)).in_(taken)
            )
        )
        await conn.execute(table.update().where(scope, phone == redactor.phone).values(phone=token))


async def _redact_audit(conn: AsyncConnection, org_id: str, redactor: Redactor) -> None:
    a = audit_event.c
    rows = await conn.execute(
        sa.select(a.id, a.details).where(a.org_id == org_id, a.subject == redactor.phone)
    )
    for audit_id, details in rows.all():
        await conn.execute(
            audit_event.update()
            .where(a.id == audit_id)
            .values(subject=redactor.phone_token, details=redactor.scrub(details))
        )


async def _delete_contact_rows(conn: AsyncConnection, org_id: str, phone: str) -> None:
    """Every table kept per (org, number): the consent, its history, and whatever else a
    feature keeps about a contact of an org (but the rows redacted above)."""
    for table in metadata.sorted_tables:
        columns = table.c
        if table.name in _REDACTED_PER_PHONE or "org_id" not in columns or "phone" not in columns:
            continue
        await conn.execute(
            table.delete().where(columns["org_id"] == org_id, columns["phone"] == phone)
        )


def _in_flight(row: Any) -> bool:
    """Being sent, or waiting for Meta's word on a send whose outcome was lost (it may have
    reached Meta: not cancellable)."""
    return bool(row["status"] == Status.SENDING or row["waiting_reason"] == SEND_UNKNOWN)


def _clip(value: str | None, length: int) -> str | None:
    return None if value is None else value[:length]
