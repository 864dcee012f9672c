"""Old and recent rows for the retention tests, written straight into the database."""

from __future__ import annotations

import uuid
from datetime import datetime, timedelta

from sqlalchemy.ext.asyncio import AsyncConnection

from alert_factories import message_row
from wa_outbound.db.callback_schema import callback_delivery, callback_endpoint, callback_event
from wa_outbound.db.schema import message_event, message_wamid, outbound_message, webhook_event
from wa_outbound.db.types import utcnow

OLD = timedelta(days=100)


async def add_endpoint(conn: AsyncConnection, org_id: str) -> uuid.UUID:
    endpoint_id = uuid.uuid4()
    now = utcnow()
    await conn.execute(
        callback_endpoint.insert().values(
            id=endpoint_id,
            org_id=org_id,
            url="https://example.com/hook",
            events=None,
            enabled=True,
            secret="plain:whsec_c2VjcmV0",
            created_at=now,
            updated_at=now,
        )
    )
    return endpoint_id


async def add_event(
    conn: AsyncConnection,
    org_id: str,
    endpoint_id: uuid.UUID,
    *,
    at: datetime,
    message_id: uuid.UUID | None = None,
    delivery: str = "succeeded",
) -> int:
    """A callback event with one delivery in the state `delivery`; its seq."""
    seq = (
        await conn.execute(
            callback_event.insert()
            .values(
                id=uuid.uuid4(),
                org_id=org_id,
                type="message.delivered",
                message_id=message_id,
                occurred_at=at,
                data={},
            )
            .returning(callback_event.c.seq)
        )
    ).scalar_one()
    await conn.execute(
        callback_delivery.insert().values(
            id=uuid.uuid4(),
            endpoint_id=endpoint_id,
            event_seq=seq,
            org_id=org_id,
            message_id=message_id,
            status=delivery,
            attempts=1,
            next_attempt_at=at,
            created_at=at,
            updated_at=at,
        )
    )
    return int(seq)


async def add_message(
    conn: AsyncConnection,
    org_id: str,
    *,
    status: str,
    age: timedelta,
    endpoint_id: uuid.UUID | None = None,
    idempotency_key: str | None = None,
) -> uuid.UUID:
    """A message last changed `age` ago, with an event, an extra wamid and a callback event."""
    now = utcnow()
    row = message_row(
        org_id=org_id, status=status, age=age, now=now, idempotency_key=idempotency_key
    )
    await conn.execute(outbound_message.insert().values(row))
    message_id: uuid.UUID = row["id"]
    await conn.execute(
        message_event.insert().values(
            message_id=message_id,
            org_id=org_id,
            at=now - age,
            type="queued",
            actor="test",
            details={},
        )
    )
    await conn.execute(
        message_wamid.insert().values(
            provider_message_id=f"wamid.{message_id.hex}",
            message_id=message_id,
            org_id=org_id,
            created_at=now - age,
        )
    )
    if endpoint_id is not None:
        await add_event(conn, org_id, endpoint_id, at=now - age, message_id=message_id)
    return message_id


async def add_body(conn: AsyncConnection, *, age: timedelta, processed: bool) -> int:
    at = utcnow() - age
    return int(
        (
            await conn.execute(
                webhook_event.insert()
                .values(
                    received_at=at, body=b"{}", attempts=1, processed_at=at if processed else None
                )
                .returning(webhook_event.c.id)
            )
        ).scalar_one()
    )
