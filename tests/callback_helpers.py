"""Callback rows written straight into the database: an event and its deliveries, as the
emission writes them, for tests that need deliveries in a given state."""

from __future__ import annotations

import uuid
from dataclasses import dataclass
from datetime import datetime
from typing import Any

from sqlalchemy.ext.asyncio import AsyncConnection

from wa_outbound.db.callback_schema import callback_delivery, callback_event
from wa_outbound.db.types import utcnow


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
