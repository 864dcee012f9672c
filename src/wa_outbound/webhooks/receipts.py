"""Applying Meta's message statuses to the outbox: the rank rule, pending statuses, the timeline.

The hot SQL of status processing lives here, shared by the webhook, the dispatcher and the
sandbox. Every call is set-based: one locking read, one batched UPDATE, one batched INSERT of
events (and of pending statuses), whatever the number of statuses.
"""

from __future__ import annotations

import functools
import logging
from dataclasses import dataclass
from datetime import datetime
from typing import Any

import sqlalchemy as sa
from sqlalchemy.dialects.postgresql import ARRAY
from sqlalchemy.ext.asyncio import AsyncConnection

from wa_outbound.db.dialect import is_postgres
from wa_outbound.db.schema import message_wamid, outbound_message, pending_status
from wa_outbound.events import message_event_row, record_message_events
from wa_outbound.logs import message_fields
from wa_outbound.status import (
    META_STATUSES,
    RANK,
    RECEIPT_APPLIED,
    RECEIPT_IGNORED,
    RECEIPT_PENDING,
    Status,
)

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
_ERROR_COLUMNS = ("error_code", "error_title", "error_message", "error_details", "error_retryable")
_TIMESTAMPS = ("sent_at", "delivered_at", "read_at", "failed_at")
_WRITTEN = ("status", *_TIMESTAMPS, "dead_lettered", *_ERROR_COLUMNS)
_CHUNK = 1000  # Meta sends at most 1,000 statuses per POST: one chunk in practice
m = outbound_message.c
p = pending_status.c


@dataclass(frozen=True)
class StatusUpdate:
    """One status of one message, as Meta reported it."""

    provider_message_id: str
    status: str  # raw: sent/delivered/read/failed, or anything else Meta invents
    at: datetime | None  # Meta's timestamp, timezone-aware; None: the time of processing
    error: dict[str, Any] | None  # {"code": str, "title", "message", "details"}
    recipient_id: str | None = None


@dataclass
class _Message:
    """A message row locked for this call, changed in memory, written back once."""

    row: dict[str, Any]
    locked_status: str
    changed: bool = False


async def apply_statuses(
    conn: AsyncConnection, updates: list[StatusUpdate], *, actor: str, now: datetime
) -> list[str]:
    """Apply the statuses in order; return "applied", "ignored" or "pending" for each.

    The caller owns the transaction. Every status of a known message becomes a message event,
    applied or ignored; statuses of unknown wamids are kept in `pending_status`.
    """
    messages = await _lock(conn, {u.provider_message_id for u in updates})
    outcomes: list[str] = []
    events: list[dict[str, Any]] = []
    pending: list[dict[str, Any]] = []
    for update in updates:
        message = messages.get(update.provider_message_id)
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
    await _write_back(conn, [msg for msg in messages.values() if msg.changed], now)
    await record_message_events(conn, events)
    if pending:
        await conn.execute(pending_status.insert(), pending)
    return outcomes


async def _lock(conn: AsyncConnection, wamids: set[str]) -> dict[str, _Message]:
    # Rows are locked in id order (within a chunk: one chunk in practice), so concurrent calls
    # touching the same messages queue up instead of deadlocking; the status read here is the
    # one the UPDATE compares against.
    # (SQLite has no row locks: its write transactions are serialised by BEGIN IMMEDIATE.)
    found: dict[str, _Message] = {}
    by_id: dict[Any, _Message] = {}
    ordered = sorted(wamids)
    for start in range(0, len(ordered), _CHUNK):
        statement = _lock_statement(is_postgres(conn))
        rows = await conn.execute(statement, {"wamids": ordered[start : start + _CHUNK]})
        for row in rows:
            found[row.provider_message_id] = by_id[row.id] = _Message(row._asdict(), row.status)
    unknown = sorted(wamids - found.keys())
    if unknown:
        # A duplicate send's wamid (its outcome lost its claim): the same message, locked once.
        rows = await conn.execute(_linked_statement(), {"wamids": unknown})
        for row in rows:
            fields = row._asdict()
            linked = fields.pop("linked")
            if row.id not in by_id:
                by_id[row.id] = _Message(fields, row.status)
            found[linked] = by_id[row.id]
    return found


@functools.cache
def _linked_statement() -> sa.Select[Any]:
    w = message_wamid.c
    return (
        sa.select(
            w.provider_message_id.label("linked"),
            m.id,
            m.org_id,
            m.provider_message_id,
            m.attempts,
            *(m[c] for c in _WRITTEN),
        )
        .join(outbound_message, m.id == w.message_id)
        .where(w.provider_message_id.in_(sa.bindparam("wamids", expanding=True)))
        .order_by(m.id)
        .with_for_update(of=outbound_message)
    )


# The hot statements are constants, built once: rebuilding them per call costs more Python
# time than executing them.
@functools.cache
def _lock_statement(postgres: bool) -> sa.Select[Any]:
    wamids: sa.ColumnElement[bool]
    if postgres:  # one array parameter: no re-rendering of the SQL for each list length
        wamids = m.provider_message_id == sa.any_(sa.bindparam("wamids", type_=ARRAY(sa.Text)))
    else:
        wamids = m.provider_message_id.in_(sa.bindparam("wamids", expanding=True))
    return (
        sa.select(m.id, m.org_id, m.provider_message_id, m.attempts, *(m[c] for c in _WRITTEN))
        .where(wamids)
        .order_by(m.id)
        .with_for_update()
    )


# In both writes, the WHERE clause is a compare-and-set on the status read under lock: a
# write never lands on a row that moved meanwhile.
@functools.cache
def _write_statement() -> sa.Update:
    return (
        outbound_message.update()
        .where(m.id == sa.bindparam("b_id"), m.status == sa.bindparam("b_locked"))
        .values({m[c]: sa.bindparam(f"b_{c}", type_=m[c].type) for c in (*_WRITTEN, "updated_at")})
    )


@functools.cache
def _unnest_write_statement() -> sa.Update:
    """PostgreSQL: `UPDATE … FROM unnest(:id, :locked, :status, …) AS v(…) WHERE …`."""
    types = {"locked": m.status.type} | {c: m[c].type for c in ("id", *_WRITTEN)}
    values = (
        sa.func.unnest(*(sa.bindparam(f"a_{name}", type_=ARRAY(t)) for name, t in types.items()))
        .table_valued(*(sa.column(name, t) for name, t in types.items()))
        .render_derived(name="v")
    )
    return (
        outbound_message.update()
        .where(m.id == values.c.id, m.status == values.c.locked)
        .values(
            {m[c]: values.c[c] for c in _WRITTEN}
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


def _apply(message: _Message, update: StatusUpdate, now: datetime) -> None:
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
        row.update(failed_at=None, dead_lettered=False, **dict.fromkeys(_ERROR_COLUMNS))
    row["status"] = target.value
    # Steps Meta skipped (`read` with no `delivered`) take the timestamp of the step that
    # proves them; a timestamp already set is never moved.
    for step, column in _STEPS:
        if RANK[step] <= RANK[target] and row[column] is None:
            row[column] = at


def _log(message: _Message, update: StatusUpdate, reason: str | None, actor: str) -> None:
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


async def _write_back(conn: AsyncConnection, messages: list[_Message], now: datetime) -> None:
    if not messages:
        return
    if is_postgres(conn):
        # One statement for every row: the new values travel as one array per column.
        arrays = {"a_locked": [msg.locked_status for msg in messages]}
        arrays |= {f"a_{c}": [msg.row[c] for msg in messages] for c in ("id", *_WRITTEN)}
        await conn.execute(_unnest_write_statement(), arrays | {"a_now": now})
        return
    # SQLite: one prepared statement, executed for all rows in one call.
    params = [
        {"b_id": msg.row["id"], "b_locked": msg.locked_status, "b_updated_at": now}
        | {f"b_{c}": msg.row[c] for c in _WRITTEN}
        for msg in messages
    ]
    await conn.execute(_write_statement(), params)


def _event(
    message: _Message,
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
        },
        "received_at": now,
    }
