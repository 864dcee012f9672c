"""Applying Meta's message statuses to the outbox: the rank rule, pending statuses, the timeline.

The hot SQL of status processing lives here, shared by the webhook, the dispatcher and the
sandbox. Every call is set-based: one locking read, one batched UPDATE, one batched INSERT of
events (and of pending statuses), whatever the number of statuses.
"""

from __future__ import annotations

import functools
import logging
import uuid
from collections.abc import Collection, Mapping
from datetime import datetime
from typing import Any

import sqlalchemy as sa
from sqlalchemy.dialects.postgresql import ARRAY
from sqlalchemy.ext.asyncio import AsyncConnection

from wa_outbound.db.dialect import is_postgres
from wa_outbound.db.schema import outbound_message, pending_status
from wa_outbound.events import message_event_row, record_message_events
from wa_outbound.logs import message_fields
from wa_outbound.receipts import reconcile
from wa_outbound.receipts.matching import (
    ERROR_COLUMNS,
    WRITTEN,
    LockedMessage,
    StatusUpdate,
    lock_messages,
)
from wa_outbound.status import (
    META_STATUSES,
    RANK,
    RECEIPT_APPLIED,
    RECEIPT_IGNORED,
    RECEIPT_PENDING,
    Status,
)

__all__ = ["APPLIED", "IGNORED", "KNOWN_STATUSES", "PENDING", "StatusUpdate", "apply_statuses"]

log = logging.getLogger(__name__)
APPLIED, IGNORED, PENDING = RECEIPT_APPLIED, RECEIPT_IGNORED, RECEIPT_PENDING
KNOWN_STATUSES = META_STATUSES

# FAILED sits between SENT and DELIVERED: `failed` wins over ACCEPTED/SENT and loses to
# DELIVERED/READ. So the outcome never depends on the arrival order: a message ends at the
# highest status Meta reported for it, however the webhooks were reordered or repeated.
_RANK: dict[str, float] = {str(status): rank for status, rank in RANK.items()} | {
    Status.FAILED: 2.5
}
_TARGET = {"sent": Status.SENT, "delivered": Status.DELIVERED, "read": Status.READ}
_STEPS = ((Status.SENT, "sent_at"), (Status.DELIVERED, "delivered_at"), (Status.READ, "read_at"))
m = outbound_message.c


async def apply_statuses(
    conn: AsyncConnection,
    updates: list[StatusUpdate],
    *,
    actor: str,
    now: datetime,
    senders_by_number: Mapping[str, Collection[uuid.UUID]] | None = None,
) -> list[str]:
    """Apply the statuses in order; return "applied", "ignored" or "pending" for each.

    The caller owns the transaction. A status changes only a message of its number (the sender
    ids each number ever had: `senders_by_number`, read here when not given). Every status of a
    known message becomes a message event, applied or ignored; the others are kept in
    `pending_status`, with their number.
    """
    locked = await lock_messages(conn, updates, senders_by_number)
    outcomes: list[str] = []
    events: list[dict[str, Any]] = []
    pending: list[dict[str, Any]] = []
    links: list[dict[str, Any]] = []
    for update in updates:
        message = locked.match(update)
        if message is None and (named := locked.named_by(update)) is not None:
            # A send whose answer we never read: its callback data names the message.
            event = reconcile.attach(named, update, links, actor=actor, now=now)
            if event is not None:
                locked.attach(update.provider_message_id, named)
                events.append(event)
                message = named
        if message is None:
            pending.append(pending_row(update, now))
            outcomes.append(PENDING)
            continue
        before = message.row["status"]
        reason = _refusal(before, update.status)
        if reason is None:
            _apply(message, update, now)
        outcomes.append(IGNORED if reason else APPLIED)
        _log(message, update, reason, actor)
        events.append(_event(message, update, before, reason, actor, now))
    await _write_back(conn, [msg for msg in locked.messages if msg.changed], now)
    await reconcile.write_links(conn, links)
    await record_message_events(conn, events)
    if pending:
        await conn.execute(pending_status.insert(), pending)
    return outcomes


# In both writes, the WHERE clause is a compare-and-set on the status read under lock: a
# write never lands on a row that moved meanwhile.
@functools.cache
def _write_statement() -> sa.Update:
    return (
        outbound_message.update()
        .where(m.id == sa.bindparam("b_id"), m.status == sa.bindparam("b_locked"))
        .values({m[c]: sa.bindparam(f"b_{c}", type_=m[c].type) for c in (*WRITTEN, "updated_at")})
    )


@functools.cache
def _unnest_write_statement() -> sa.Update:
    """PostgreSQL: `UPDATE … FROM unnest(:id, :locked, :status, …) AS v(…) WHERE …`."""
    types = {"locked": m.status.type} | {c: m[c].type for c in ("id", *WRITTEN)}
    values = (
        sa.func.unnest(*(sa.bindparam(f"a_{name}", type_=ARRAY(t)) for name, t in types.items()))
        .table_valued(*(sa.column(name, t) for name, t in types.items()))
        .render_derived(name="v")
    )
    return (
        outbound_message.update()
        .where(m.id == values.c.id, m.status == values.c.locked)
        .values(
            {m[c]: values.c[c] for c in WRITTEN}
            | {m.updated_at: sa.bindparam("a_now", type_=m.updated_at.type)}
        )
    )


def _refusal(current: str, raw: str) -> str | None:
    """Why a status does not apply to a message in `current`, or None when it raises the rank."""
    if raw not in KNOWN_STATUSES:
        return "unsupported_status"
    rank = _RANK.get(current)
    if rank is None:
        return "not_awaiting_status"  # e.g. QUEUED again after a replay, or CANCELLED
    target = _RANK[Status.FAILED if raw == "failed" else _TARGET[raw]]
    if target == rank:
        return "duplicate"
    if target < rank:
        return "already_delivered" if raw == "failed" else "out_of_order"
    return None


def _apply(message: LockedMessage, update: StatusUpdate, now: datetime) -> None:
    row, at = message.row, update.at or now
    message.changed = True
    if update.status == "failed":
        error = update.error or {}
        row.update(
            status=Status.FAILED.value,
            failed_at=at,
            dead_lettered=True,
            error_code=_clip(error.get("code"), 64) or "unknown",
            error_title=_clip(error.get("title"), 500),
            error_message=error.get("message"),
            error_details=error.get("details"),
            error_retryable=False,
        )
        return
    target = _TARGET[update.status]
    if row["status"] == Status.FAILED:
        # Delivered after all: the failure was wrong; it stays in the timeline only.
        row.update(failed_at=None, dead_lettered=False, **dict.fromkeys(ERROR_COLUMNS))
    row["status"] = target.value
    # Steps Meta skipped (`read` with no `delivered`) take the timestamp of the step that
    # proves them; a timestamp already set is never moved.
    for step, column in _STEPS:
        if RANK[step] <= RANK[target] and row[column] is None:
            row[column] = at


def _log(message: LockedMessage, update: StatusUpdate, reason: str | None, actor: str) -> None:
    # A failure is worth a line at INFO; the ordinary sent/delivered/read flow is not.
    failed = update.status == "failed" and reason is None
    level = logging.INFO if failed else logging.DEBUG
    if not log.isEnabledFor(level):
        return
    row = message.row
    log.log(
        level,
        "message failed by status" if failed else "status " + ("ignored" if reason else "applied"),
        extra=message_fields(
            message_id=row["id"],
            org_id=row["org_id"],
            attempt=row["attempts"],
            error_code=row["error_code"] if failed else None,
            status=update.status,
            reason=reason,
            provider_message_id=update.provider_message_id,
            actor=actor,
        ),
    )


async def _write_back(conn: AsyncConnection, messages: list[LockedMessage], now: datetime) -> None:
    if not messages:
        return
    if is_postgres(conn):
        # One statement for every row: the new values travel as one array per column.
        arrays = {"a_locked": [msg.locked_status for msg in messages]}
        arrays |= {f"a_{c}": [msg.row[c] for msg in messages] for c in ("id", *WRITTEN)}
        await conn.execute(_unnest_write_statement(), arrays | {"a_now": now})
        return
    # SQLite: one prepared statement, executed for all rows in one call.
    params = [
        {"b_id": msg.row["id"], "b_locked": msg.locked_status, "b_updated_at": now}
        | {f"b_{c}": msg.row[c] for c in WRITTEN}
        for msg in messages
    ]
    await conn.execute(_write_statement(), params)


def _event(
    message: LockedMessage,
    update: StatusUpdate,
    before: str,
    reason: str | None,
    actor: str,
    now: datetime,
) -> dict[str, Any]:
    details: dict[str, Any] = {
        "provider_message_id": update.provider_message_id,
        "status": update.status,
        "status_at": update.at.isoformat() if update.at else None,
        "ignored": reason is not None,
    }
    if reason:
        details["reason"] = reason
    if update.error:
        details["error"] = update.error
    if update.recipient_id:
        details["recipient_id"] = update.recipient_id
    if update.recipient_user_id:
        details["recipient_user_id"] = update.recipient_user_id
    return message_event_row(
        message_id=message.row["id"],
        org_id=message.row["org_id"],
        at=now,
        type=f"status.{update.status[:40]}",
        actor=actor,
        from_status=before,
        to_status=message.row["status"],
        details=details,
    )


def _clip(value: Any, length: int) -> str | None:
    return None if value is None else str(value)[:length]


def pending_row(update: StatusUpdate, now: datetime) -> dict[str, Any]:
    return {
        "provider_message_id": update.provider_message_id,
        "status": update.status[:32],
        "status_at": update.at,
        "payload": {
            "status": update.status,
            "error": update.error,
            "recipient": update.recipient_id,
            "recipient_user_id": update.recipient_user_id,
            # Kept only when it names a message: the sweep matches on it (pending.py).
            "callback": str(update.named_id) if update.named_id else None,
        },
        "received_at": now,
        "phone_number_id": update.phone_number_id,
    }
