"""Which message a status is about: its wamid, sent from the business number Meta reported it
for. A wamid is Meta's id on one number, so two numbers' messages may share one; a status of
number X never changes a message of number Y. The messages are locked here for the rank rule
(receipts.py) to change them."""

from __future__ import annotations

import functools
import uuid
from collections.abc import Collection, Mapping
from dataclasses import dataclass
from datetime import datetime
from typing import Any

import sqlalchemy as sa
from sqlalchemy.dialects.postgresql import ARRAY
from sqlalchemy.ext.asyncio import AsyncConnection

from wa_outbound.db.dialect import is_postgres
from wa_outbound.db.schema import SHARED_SENDER_ID, message_wamid, outbound_message, sender

ERROR_COLUMNS = ("error_code", "error_title", "error_message", "error_details", "error_retryable")
TIMESTAMPS = ("sent_at", "delivered_at", "read_at", "failed_at")
# The columns a status may change, read under lock and written back (the wamid and the wait
# only by a reconciliation, see reconcile.py).
WRITTEN = (
    "status",
    *TIMESTAMPS,
    "dead_lettered",
    *ERROR_COLUMNS,
    "provider_message_id",
    "accepted_at",
    "waiting_reason",
)
_CHUNK = 1000  # Meta sends at most 1,000 statuses per POST: one chunk in practice
m = outbound_message.c

# Which messages a number's statuses may change: its sender ids (deleted senders included);
# None stands for the old rows without a sender, which were the shared sender's.
Scope = frozenset[uuid.UUID | None]


@dataclass(frozen=True)
class StatusUpdate:
    """One status of one message, as Meta reported it."""

    provider_message_id: str
    status: str  # raw: sent/delivered/read/failed, or anything else Meta invents
    at: datetime | None  # Meta's timestamp, timezone-aware; None: the time of processing
    error: dict[str, Any] | None  # {"code": str, "title", "message", "details"}
    recipient_id: str | None = None
    phone_number_id: str | None = None
    """The business number Meta reported it for: only a message sent from that number
    matches. None (the sandbox's own statuses, pending rows from before senders): any number."""
    callback_data: str | None = None
    """The send's `biz_opaque_callback_data` as Meta echoed it: our message id."""
    recipient_user_id: str | None = None
    """Meta's business-scoped user id, given with or instead of `recipient_id`."""

    @property
    def named_id(self) -> uuid.UUID | None:
        """The message id the callback data names, if it is one."""
        return as_message_id(self.callback_data)


def as_message_id(callback_data: str | None) -> uuid.UUID | None:
    if callback_data is None or len(callback_data) != 36:
        return None
    try:
        return uuid.UUID(callback_data)
    except ValueError:
        return None


@dataclass
class LockedMessage:
    """A message row locked for this call, changed in memory, written back once."""

    row: dict[str, Any]
    locked_status: str
    changed: bool = False


@dataclass(frozen=True)
class Locked:
    candidates: dict[str, list[LockedMessage]]
    """By wamid: the locked messages carrying it (own or linked), in id order."""
    scopes: dict[str, Scope]
    messages: list[LockedMessage]
    """Every locked message, once."""
    named: dict[uuid.UUID, LockedMessage]
    """The messages locked because a status's callback data names them (and found by its
    wamid for none of its number)."""

    def match(self, update: StatusUpdate) -> LockedMessage | None:
        """The message this status is about: its wamid, sent from its number."""
        return _match(self.candidates, self.scopes, update)

    def named_by(self, update: StatusUpdate) -> LockedMessage | None:
        """The message the status's callback data names, if it was sent from its number."""
        message = self.named.get(update.named_id) if update.named_id else None
        if message is None or update.phone_number_id is None:
            return message
        return message if message.row["sender_id"] in self.scopes[update.phone_number_id] else None

    def attach(self, wamid: str, message: LockedMessage) -> None:
        """The later statuses of `wamid` in this call are about `message`."""
        self.candidates.setdefault(wamid, []).append(message)


async def lock_messages(
    conn: AsyncConnection,
    updates: list[StatusUpdate],
    senders_by_number: Mapping[str, Collection[uuid.UUID]] | None = None,
) -> Locked:
    """Lock the messages these statuses may be about: by wamid, then, for the statuses that
    found none of their number, by the wamids of duplicate sends (`message_wamid`).

    `senders_by_number`: the sender ids each number ever had, when the caller read them
    already; otherwise they are read here."""
    scopes = await _scopes(conn, updates, senders_by_number)
    # Rows are locked in id order (within a chunk: one chunk in practice), so concurrent calls
    # touching the same messages queue up instead of deadlocking; the status read here is the
    # one the UPDATE compares against.
    # (SQLite has no row locks: its write transactions are serialised by BEGIN IMMEDIATE.)
    found: dict[str, list[LockedMessage]] = {}
    by_id: dict[Any, LockedMessage] = {}
    ordered = sorted({u.provider_message_id for u in updates})
    for start in range(0, len(ordered), _CHUNK):
        statement = _lock_statement(is_postgres(conn))
        rows = await conn.execute(statement, {"wamids": ordered[start : start + _CHUNK]})
        for row in rows:
            message = by_id[row.id] = LockedMessage(row._asdict(), row.status)
            found.setdefault(row.provider_message_id, []).append(message)
    unknown = sorted({u.provider_message_id for u in updates if _match(found, scopes, u) is None})
    if unknown:
        # A duplicate send's wamid (its outcome lost its claim): the same message, locked once.
        rows = await conn.execute(_linked_statement(), {"wamids": unknown})
        for row in rows:
            fields = row._asdict()
            linked = fields.pop("linked")
            if row.id not in by_id:
                by_id[row.id] = LockedMessage(fields, row.status)
            found.setdefault(linked, []).append(by_id[row.id])
    # A status for a send whose answer was lost: its wamid is nowhere, its callback data names
    # the message (reconcile.py decides what that means).
    named_ids = sorted(
        {u.named_id for u in updates if u.named_id is not None and _match(found, scopes, u) is None}
    )
    named: dict[uuid.UUID, LockedMessage] = {}
    if named_ids:
        rows = await conn.execute(_named_statement(), {"ids": named_ids})
        for row in rows:
            if row.id not in by_id:
                by_id[row.id] = LockedMessage(row._asdict(), row.status)
            named[row.id] = by_id[row.id]
    return Locked(found, scopes, list(by_id.values()), named)


async def _scopes(
    conn: AsyncConnection,
    updates: list[StatusUpdate],
    known: Mapping[str, Collection[uuid.UUID]] | None,
) -> dict[str, Scope]:
    numbers = {u.phone_number_id for u in updates if u.phone_number_id is not None}
    if not numbers:
        return {}
    if known is None or not numbers <= known.keys():
        known = await sender_ids_by_number(conn, numbers)
    scopes: dict[str, Scope] = {}
    for number in numbers:
        ids: set[uuid.UUID | None] = set(known.get(number, ()))
        if SHARED_SENDER_ID in ids:
            ids.add(None)
        scopes[number] = frozenset(ids)
    return scopes


async def sender_ids_by_number(
    conn: AsyncConnection, phone_number_ids: set[str]
) -> dict[str, list[uuid.UUID]]:
    """Every sender id each number ever had, deleted senders included (as
    senders.store.ids_by_phone_number_id, which this package may not import)."""
    found: dict[str, list[uuid.UUID]] = {}
    if phone_number_ids:
        rows = await conn.execute(
            sa.select(sender.c.phone_number_id, sender.c.id).where(
                sender.c.phone_number_id.in_(phone_number_ids)
            )
        )
        for number, sender_id in rows:
            found.setdefault(number, []).append(sender_id)
    return found


def _match(
    candidates: dict[str, list[LockedMessage]], scopes: dict[str, Scope], update: StatusUpdate
) -> LockedMessage | None:
    scope = None if update.phone_number_id is None else scopes[update.phone_number_id]
    for message in candidates.get(update.provider_message_id, ()):
        if scope is None or message.row["sender_id"] in scope:
            return message
    return None


# The hot statements are constants, built once: rebuilding them per call costs more Python
# time than executing them.
@functools.cache
def _lock_statement(postgres: bool) -> sa.Select[Any]:
    wamids: sa.ColumnElement[bool]
    if postgres:  # one array parameter: no re-rendering of the SQL for each list length
        wamids = m.provider_message_id == sa.any_(sa.bindparam("wamids", type_=ARRAY(sa.Text)))
    else:
        wamids = m.provider_message_id.in_(sa.bindparam("wamids", expanding=True))
    return sa.select(*_columns()).where(wamids).order_by(m.id).with_for_update()


@functools.cache
def _linked_statement() -> sa.Select[Any]:
    w = message_wamid.c
    return (
        sa.select(w.provider_message_id.label("linked"), *_columns())
        .join(outbound_message, m.id == w.message_id)
        .where(w.provider_message_id.in_(sa.bindparam("wamids", expanding=True)))
        .order_by(m.id)
        .with_for_update(of=outbound_message)
    )


@functools.cache
def _named_statement() -> sa.Select[Any]:
    return (
        sa.select(*_columns())
        .where(m.id.in_(sa.bindparam("ids", expanding=True)))
        .order_by(m.id)
        .with_for_update()
    )


def _columns() -> list[sa.Column[Any]]:
    """What the rank rule reads of each message."""
    return [m.id, m.org_id, m.sender_id, m.attempts] + [m[c] for c in WRITTEN]
