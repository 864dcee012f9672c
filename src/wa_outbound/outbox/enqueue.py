"""Queueing messages into the outbox: consent, service window, idempotency; one transaction."""

from __future__ import annotations

import uuid
from dataclasses import dataclass, field
from datetime import datetime, timedelta
from typing import Any

import sqlalchemy as sa
from sqlalchemy.ext.asyncio import AsyncConnection

from wa_outbound.contacts.consents import granted_phones
from wa_outbound.db.schema import outbound_message, service_window
from wa_outbound.db.types import utcnow
from wa_outbound.errors import (
    ConsentRequired,
    IdempotencyConflict,
    OutsideServiceWindow,
    ServiceError,
)
from wa_outbound.outbox.bulk import insert_new
from wa_outbound.senders import choice
from wa_outbound.status import CHANNEL_WHATSAPP, Status

SERVICE_WINDOW = timedelta(hours=24)
# Free-form messages: Meta takes them only inside the recipient's service window.
SESSION_KINDS = frozenset({"text", "media", "interactive"})


@dataclass(frozen=True, slots=True)
class NewMessage:
    to: str
    kind: str
    payload: dict[str, Any]
    metadata: dict[str, str]
    send_after: datetime | None
    idempotency_key: str | None
    request_hash: str
    sender: str | None = None
    """`from` as the caller gave it (a sender id or display number), or None."""
    expires_at: datetime | None = None


@dataclass(slots=True)
class Outcome:
    """What happened to one message of an enqueue call."""

    message: dict[str, Any] | None = None
    created: bool = False
    error: ServiceError | None = None
    _pending: dict[str, Any] = field(default_factory=dict, repr=False)


async def enqueue(
    conn: AsyncConnection,
    *,
    org_id: str,
    items: list[NewMessage],
    max_attempts: int,
    actor: str,
    shared_sender: bool,
) -> list[Outcome]:
    """Queue every acceptable item; the caller owns the transaction and commits all at once.

    Idempotency is decided by the unique (org_id, idempotency_key) constraint: a concurrent
    duplicate waits on the first insert and then finds its row, so exactly one row exists.
    """
    now = utcnow()
    outcomes = [Outcome() for _ in items]
    existing = await _existing_by_key(conn, org_id, {i.idempotency_key for i in items})
    consented = await granted_phones(conn, org_id=org_id, phones={i.to for i in items})
    senders = await choice.load(conn, org_id, shared_available=shared_sender)
    chosen: list[uuid.UUID | ServiceError] = []
    for item in items:
        try:
            chosen.append(senders.pick(item.sender))
        except ServiceError as exc:
            chosen.append(exc)
    sessions = {
        (sender_id, item.to)
        for item, sender_id in zip(items, chosen, strict=True)
        if item.kind in SESSION_KINDS and isinstance(sender_id, uuid.UUID)
    }
    open_windows = await _open_windows(conn, org_id, sessions, now)

    rows: list[dict[str, Any]] = []
    first_by_key: dict[str, int] = {}
    for index, item in enumerate(items):
        key = item.idempotency_key
        sender_id = chosen[index]
        if key is not None and key in existing:
            outcomes[index] = _replay(existing[key], item)
        elif key is not None and key in first_by_key:
            continue  # same key twice in one call: resolved against the first below
        elif isinstance(sender_id, ServiceError):
            outcomes[index].error = sender_id
        elif item.to not in consented:
            outcomes[index].error = ConsentRequired(phone_suffix=item.to[-4:])
        elif item.kind in SESSION_KINDS and (sender_id, item.to) not in open_windows:
            outcomes[index].error = OutsideServiceWindow()
        else:
            row = new_row(org_id, item, now, max_attempts, sender_id)
            if senders.paused(sender_id):
                row["waiting_reason"] = "sender_paused"
            rows.append(row)
            outcomes[index]._pending = row
            if key is not None:
                first_by_key[key] = index

    # No NOTIFY here: it would serialise every enqueue's commit (see outbox_notifier); the
    # caller wakes the dispatchers once the transaction has committed.
    inserted = await insert_new(conn, org_id, rows, now=now, actor=actor)
    for outcome in outcomes:
        if outcome._pending and outcome._pending["id"] in inserted:
            outcome.message, outcome.created = outcome._pending, True

    # Keys that lost a race with a concurrent request, or repeated within this call.
    unresolved = {
        index: item
        for index, item in enumerate(items)
        if item.idempotency_key is not None
        and outcomes[index].message is None
        and outcomes[index].error is None
    }
    if unresolved:
        found = await _existing_by_key(
            conn, org_id, {i.idempotency_key for i in unresolved.values()}
        )
        for index, item in unresolved.items():
            outcomes[index] = _replay(found[item.idempotency_key or ""], item)
    return outcomes


def new_row(
    org_id: str,
    item: NewMessage,
    now: datetime,
    max_attempts: int,
    sender_id: uuid.UUID | None,
) -> dict[str, Any]:
    """The outbox row of a new message, every column set (`sender_id` None: decided by the
    single-statement enqueue, which fills it in)."""
    send_at = max(item.send_after, now) if item.send_after else now
    return {
        "id": uuid.uuid4(),
        "org_id": org_id,
        "channel": CHANNEL_WHATSAPP,
        "to_phone": item.to,
        "kind": item.kind,
        "payload": item.payload,
        "message_metadata": item.metadata,
        "idempotency_key": item.idempotency_key,
        "request_hash": item.request_hash,
        "status": Status.QUEUED.value,
        "attempts": 0,
        "max_attempts": max_attempts,
        "next_attempt_at": send_at,
        "lease_until": None,
        "claimed_by": None,
        "provider_message_id": None,
        "error_code": None,
        "error_title": None,
        "error_message": None,
        "error_details": None,
        "error_retryable": None,
        "dead_lettered": False,
        "created_at": now,
        "updated_at": now,
        "accepted_at": None,
        "sent_at": None,
        "delivered_at": None,
        "read_at": None,
        "failed_at": None,
        "sender_id": sender_id,
        "waiting_reason": None,
        "expires_at": item.expires_at,
    }


def _replay(row: dict[str, Any], item: NewMessage) -> Outcome:
    if row["request_hash"] != item.request_hash:
        return Outcome(error=IdempotencyConflict(idempotency_key=item.idempotency_key))
    return Outcome(message=row, created=False)


async def _existing_by_key(
    conn: AsyncConnection, org_id: str, keys: set[str | None]
) -> dict[str, dict[str, Any]]:
    wanted = {k for k in keys if k is not None}
    if not wanted:
        return {}
    rows = await conn.execute(
        sa.select(outbound_message).where(
            outbound_message.c.org_id == org_id, outbound_message.c.idempotency_key.in_(wanted)
        )
    )
    return {row.idempotency_key: dict(row._mapping) for row in rows}


async def _open_windows(
    conn: AsyncConnection, org_id: str, pairs: set[tuple[uuid.UUID, str]], now: datetime
) -> set[tuple[uuid.UUID, str]]:
    """Which (sender, recipient) pairs have an open service window: Meta keys a window by the
    business number the user wrote to."""
    if not pairs:
        return set()
    w = service_window.c
    rows = await conn.execute(
        sa.select(w.sender_id, w.phone).where(
            w.org_id == org_id,
            w.phone.in_({phone for _, phone in pairs}),
            w.last_inbound_at > now - SERVICE_WINDOW,
        )
    )
    return {(row.sender_id, row.phone) for row in rows} & pairs
