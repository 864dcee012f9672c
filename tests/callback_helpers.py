"""Callback rows written straight into the real database: an endpoint with its encrypted secret,
and events with one delivery per endpoint (as the emission writes them), for tests that need
deliveries in a given state."""

from __future__ import annotations

import uuid
from collections.abc import Sequence
from dataclasses import dataclass
from datetime import datetime
from typing import Any

import sqlalchemy as sa
from sqlalchemy.ext.asyncio import AsyncConnection

from helpers import TEST_SECRET_KEY
from wa_outbound.callbacks import secrets
from wa_outbound.crypto import Keyring
from wa_outbound.db.callback_schema import callback_delivery, callback_endpoint, callback_event
from wa_outbound.db.types import utcnow

KEYRING = Keyring([TEST_SECRET_KEY])
"""The keyring of the tests' settings with `secret_keys=TEST_SECRET_KEY`."""


def new_secret() -> str:
    return secrets.new_secret()


@dataclass(frozen=True)
class Endpoint:
    id: uuid.UUID
    secret: str
    url: str


async def insert_endpoint(
    conn: AsyncConnection,
    org_id: str,
    url: str,
    *,
    secret: str | None = None,
    previous_secret: str | None = None,
    previous_secret_until: datetime | None = None,
    enabled: bool = True,
    disabled_reason: str | None = None,
    events: list[str] | None = None,
    failing_since: datetime | None = None,
    keyring: Keyring = KEYRING,
) -> Endpoint:
    endpoint_id = uuid.uuid4()
    secret = secret or new_secret()
    now = utcnow()
    await conn.execute(
        callback_endpoint.insert().values(
            id=endpoint_id,
            org_id=org_id,
            url=url,
            events=events,
            description=None,
            enabled=enabled,
            disabled_reason=disabled_reason,
            secret=keyring.encrypt(secret),
            previous_secret=keyring.encrypt(previous_secret) if previous_secret else None,
            previous_secret_until=previous_secret_until,
            failing_since=failing_since,
            last_success_at=None,
            created_at=now,
            updated_at=now,
        )
    )
    return Endpoint(endpoint_id, secret, url)


@dataclass(frozen=True)
class Event:
    seq: int
    id: uuid.UUID
    type: str
    message_id: uuid.UUID | None


async def insert_event(
    conn: AsyncConnection,
    org_id: str,
    endpoint_ids: Sequence[uuid.UUID],
    *,
    type: str = "message.sent",
    message_id: uuid.UUID | None = None,
    data: dict[str, Any] | None = None,
    next_attempt_at: datetime | None = None,
) -> Event:
    """An event and its pending deliveries to `endpoint_ids`, as the emission writes them (a
    message event's `sequence` is its seq, added to `data` when it is sent)."""
    now = utcnow()
    event_id = uuid.uuid4()
    if message_id is not None and data is None:
        data = {"message": {"id": str(message_id)}}
    seq = (
        await conn.execute(
            callback_event.insert()
            .values(
                id=event_id,
                org_id=org_id,
                type=type,
                message_id=message_id,
                occurred_at=now,
                data=data or {},
            )
            .returning(callback_event.c.seq)
        )
    ).scalar_one()
    if endpoint_ids:
        await conn.execute(
            callback_delivery.insert(),
            [
                {
                    "id": uuid.uuid4(),
                    "endpoint_id": endpoint_id,
                    "event_seq": seq,
                    "org_id": org_id,
                    "message_id": message_id,
                    "status": "pending",
                    "attempts": 0,
                    "next_attempt_at": next_attempt_at or now,
                    "created_at": now,
                    "updated_at": now,
                }
                for endpoint_id in endpoint_ids
            ],
        )
    return Event(seq, event_id, type, message_id)


async def deliveries(conn: AsyncConnection, endpoint_id: uuid.UUID) -> list[Any]:
    """The endpoint's delivery rows, in event order."""
    d = callback_delivery.c
    return list(
        (
            await conn.execute(
                sa.select(callback_delivery)
                .where(d.endpoint_id == endpoint_id)
                .order_by(d.event_seq)
            )
        ).all()
    )


async def endpoint_row(conn: AsyncConnection, endpoint_id: uuid.UUID) -> Any:
    return (
        await conn.execute(
            sa.select(callback_endpoint).where(callback_endpoint.c.id == endpoint_id)
        )
    ).one()


MESSAGE_TYPES = ("message.accepted", "message.sent", "message.delivered")


async def insert_message_events(
    conn: AsyncConnection,
    org_id: str,
    endpoint_ids: Sequence[uuid.UUID],
    *,
    messages: int,
    types: Sequence[str] = MESSAGE_TYPES,
) -> list[Event]:
    """`types` in order for each of `messages` new messages, delivered to every endpoint."""
    events = []
    for _ in range(messages):
        message_id = uuid.uuid4()
        for kind in types:
            event = await insert_event(conn, org_id, endpoint_ids, type=kind, message_id=message_id)
            events.append(event)
    return events


@dataclass(frozen=True, slots=True)
class InsertedEvent:
    seq: int
    id: uuid.UUID
    deliveries: list[uuid.UUID]
    """One per endpoint, in the order the endpoints were given."""


async def insert_event_with_deliveries(
    conn: AsyncConnection,
    *,
    org_id: str,
    endpoint_ids: list[uuid.UUID],
    event_type: str = "message.delivered",
    message_id: uuid.UUID | None = None,
    data: dict[str, Any] | None = None,
    at: datetime | None = None,
    **delivery: Any,
) -> InsertedEvent:
    """A `callback_event` and one `callback_delivery` per endpoint: pending, never attempted,
    due at `at` (now by default), unless `delivery` sets other columns (status, attempts...)."""
    at = at or utcnow()
    event_id = uuid.uuid4()
    result = await conn.execute(
        callback_event.insert().values(
            id=event_id,
            org_id=org_id,
            type=event_type,
            message_id=message_id,
            occurred_at=at,
            data=data if data is not None else {"sequence": 1},
        )
    )
    key = result.inserted_primary_key
    assert key is not None
    seq = int(key[0])
    ids = [uuid.uuid4() for _ in endpoint_ids]
    if ids:
        await conn.execute(
            callback_delivery.insert(),
            [
                {
                    "id": delivery_id,
                    "endpoint_id": endpoint_id,
                    "event_seq": seq,
                    "org_id": org_id,
                    "message_id": message_id,
                    "status": "pending",
                    "attempts": 0,
                    "next_attempt_at": at,
                    "lease_until": None,
                    "claimed_by": None,
                    "last_status_code": None,
                    "last_error": None,
                    "created_at": at,
                    "updated_at": at,
                    "delivered_at": None,
                }
                | delivery
                for delivery_id, endpoint_id in zip(ids, endpoint_ids, strict=True)
            ],
        )
    return InsertedEvent(seq=seq, id=event_id, deliveries=ids)
