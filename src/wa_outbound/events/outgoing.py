"""Events for the organisations' webhook endpoints: the input of the callback outbox.

An event is written in the transaction of the change it reports, so a crash cannot lose one and
a rollback never emits one: a `callback_event` row (what happened, with its data as it was
then), and a `callback_delivery` row for each endpoint of the organisation subscribed to its
type, enabled or not (a disabled endpoint's deliveries wait for it). An organisation without
such an endpoint costs one indexed read per batch of changes and writes nothing.

The event's `seq` is the `sequence` of a message's events: a later change of a message takes
its number after the earlier change committed, since both hold the message's row lock.
"""

from __future__ import annotations

import uuid
from collections import defaultdict
from collections.abc import Iterable, Mapping, Sequence
from dataclasses import dataclass
from datetime import datetime
from typing import Any

import orjson
import sqlalchemy as sa
from sqlalchemy.ext.asyncio import AsyncConnection

from wa_outbound.db.callback_schema import callback_delivery, callback_endpoint, callback_event
from wa_outbound.db.dialect import any_of, insert
from wa_outbound.db.listener import CALLBACKS_CHANNEL, notify
from wa_outbound.db.schema import outbound_message
from wa_outbound.db.types import utcnow
from wa_outbound.events.message_view import view
from wa_outbound.status import Status

# The status a message moves into → the event that reports it.
MESSAGE_EVENTS: Mapping[str, str] = {
    Status.ACCEPTED: "message.accepted",
    Status.SENT: "message.sent",
    Status.DELIVERED: "message.delivered",
    Status.READ: "message.read",
    Status.FAILED: "message.failed",
    Status.CANCELLED: "message.cancelled",
}
MESSAGE_RECEIVED = "message.received"
CONSENT_CHANGED = "consent.changed"
SENDER_UPDATED = "sender.updated"
TEMPLATE_UPDATED = "template.updated"
EVENT_TYPES: tuple[str, ...] = (
    *MESSAGE_EVENTS.values(),
    MESSAGE_RECEIVED,
    CONSENT_CHANGED,
    SENDER_UPDATED,
    TEMPLATE_UPDATED,
)

# Endpoints of an organisation: (endpoint id, the types it takes or None for every type).
Endpoints = dict[str, list[tuple[uuid.UUID, frozenset[str] | None]]]


@dataclass(frozen=True, slots=True)
class Outgoing:
    """One event to report. `event_id` is given for events that must be written once only
    (a retried webhook reports the same inbound message again): a second one is dropped."""

    org_id: str
    type: str
    data: dict[str, Any]
    occurred_at: datetime
    message_id: uuid.UUID | None = None
    event_id: uuid.UUID | None = None


def body(
    *,
    event_id: uuid.UUID,
    seq: int,
    type: str,
    occurred_at: datetime,
    data: str,
    message_id: uuid.UUID | None,
) -> bytes:
    """The request body of a callback: `{"id", "type", "timestamp", "data"}`, where `data` is the
    event's JSON text as the database gives it back (an object: `Outgoing.data`), put in as it is
    rather than decoded and encoded again; a message's events get their `sequence` as the last
    member of `data`."""
    head = orjson.dumps(
        {"id": str(event_id), "type": type, "timestamp": occurred_at}, option=orjson.OPT_UTC_Z
    )
    content = data.strip().encode()
    if message_id is not None:
        members = content[:-1].rstrip()  # all of the object but its closing brace
        separator = b"" if members == b"{" else b","
        content = b'%s%s"sequence":%d}' % (members, separator, seq)
    return b"".join((head[:-1], b',"data":', content, b"}"))


def json_ready(value: Any) -> Any:
    """`value` as JSON types (datetimes as RFC 3339 UTC, UUIDs as strings), as the API answers."""
    return orjson.loads(orjson.dumps(value, option=orjson.OPT_UTC_Z | orjson.OPT_NON_STR_KEYS))


async def message_changes(conn: AsyncConnection, timeline: Sequence[Mapping[str, Any]]) -> None:
    """Report the message events among these timeline rows that move a message into a status
    the app is told of, each with the message as it is now in this transaction."""
    changes = [
        row
        for row in timeline
        if row.get("to_status") in MESSAGE_EVENTS and row.get("from_status") != row["to_status"]
    ]
    if not changes:
        return
    endpoints = await subscribers(conn, {row["org_id"] for row in changes})
    wanted = [
        row
        for row in changes
        if _wanted(endpoints.get(row["org_id"], ()), MESSAGE_EVENTS[row["to_status"]])
    ]
    if not wanted:
        return
    ids = list({row["message_id"] for row in wanted})
    result = await conn.execute(
        sa.select(outbound_message).where(any_of(conn, outbound_message.c.id, ids))
    )
    messages = {row.id: dict(row._mapping) for row in result}
    outgoing = []
    for row in wanted:
        message = messages.get(row["message_id"])
        if message is None:
            continue
        shown = view(message) | {"status": str(row["to_status"])}
        outgoing.append(
            Outgoing(
                org_id=row["org_id"],
                type=MESSAGE_EVENTS[row["to_status"]],
                data={"message": json_ready(shown)},
                occurred_at=row["at"],
                message_id=row["message_id"],
            )
        )
    await write(conn, outgoing, endpoints=endpoints)


async def subscribers(conn: AsyncConnection, org_ids: Iterable[str]) -> Endpoints:
    """The webhook endpoints of these organisations, with the types each takes."""
    orgs = sorted(set(org_ids))
    found: Endpoints = defaultdict(list)
    if not orgs:
        return found
    e = callback_endpoint.c
    # FOR KEY SHARE: an endpoint being deleted waits for this transaction (its deliveries are
    # inserted below), while other events, changes of the endpoint and its deliveries do not.
    rows = await conn.execute(
        sa.select(e.id, e.org_id, e.events)
        .where(e.org_id.in_(orgs))
        .with_for_update(read=True, key_share=True)
    )
    for row in rows:
        types = None if row.events is None else frozenset(row.events)
        found[row.org_id].append((row.id, types))
    return found


async def write(
    conn: AsyncConnection, outgoing: Sequence[Outgoing], *, endpoints: Endpoints | None = None
) -> int:
    """Write these events and their deliveries; how many events were written (events with no
    subscribed endpoint, and repeats of an `event_id`, are not)."""
    if endpoints is None:
        endpoints = await subscribers(conn, {o.org_id for o in outgoing})
    kept = [o for o in outgoing if _wanted(endpoints.get(o.org_id, ()), o.type)]
    if not kept:
        return 0
    rows = [
        {
            "id": o.event_id or uuid.uuid4(),
            "org_id": o.org_id,
            "type": o.type,
            "message_id": o.message_id,
            "occurred_at": o.occurred_at,
            "data": o.data,
        }
        for o in kept
    ]
    statement = (
        insert(conn, callback_event)
        .on_conflict_do_nothing(index_elements=["id"])
        .returning(callback_event.c.seq, callback_event.c.id, sort_by_parameter_order=True)
    )
    written = {row.id: row.seq for row in await conn.execute(statement, rows)}
    now = utcnow()
    deliveries = [
        {
            "id": uuid.uuid4(),
            "endpoint_id": endpoint_id,
            "event_seq": written[row["id"]],
            "org_id": o.org_id,
            "message_id": o.message_id,
            "status": "pending",
            "attempts": 0,
            "next_attempt_at": now,
            "created_at": now,
            "updated_at": now,
        }
        for o, row in zip(kept, rows, strict=True)
        if row["id"] in written
        for endpoint_id, types in endpoints[o.org_id]
        if types is None or o.type in types
    ]
    if deliveries:
        await conn.execute(callback_delivery.insert(), deliveries)
        # Every replica's callback worker claims at this transaction's commit, not at its next
        # poll (one NOTIFY per transaction, however many writes).
        await notify(conn, CALLBACKS_CHANNEL)
    return len(written)


def _wanted(endpoints: Iterable[tuple[uuid.UUID, frozenset[str] | None]], type: str) -> bool:
    return any(types is None or type in types for _, types in endpoints)
