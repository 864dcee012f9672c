"""Rows inserted straight into the database, to set up the conditions the alert rules read."""

from __future__ import annotations

import uuid
from datetime import UTC, datetime, timedelta
from typing import Any

import sqlalchemy as sa
from sqlalchemy.ext.asyncio import AsyncConnection, AsyncEngine

from wa_outbound.db.schema import organization, outbound_message

NOW = datetime(2026, 11, 30, 12, 0, tzinfo=UTC)


async def add_org(conn: AsyncConnection, org_id: str = "acme") -> str:
    exists = await conn.scalar(sa.select(organization.c.id).where(organization.c.id == org_id))
    if exists is None:
        await conn.execute(organization.insert().values(id=org_id, name=org_id, created_at=NOW))
    return org_id


def message_row(
    *,
    org_id: str = "acme",
    status: str = "QUEUED",
    attempts: int = 0,
    age: timedelta = timedelta(0),
    now: datetime = NOW,
    **columns: Any,
) -> dict[str, Any]:
    """An outbox row created `age` before `now`; any column may be overridden."""
    created_at = now - age
    row: dict[str, Any] = {
        "id": uuid.uuid4(),
        "org_id": org_id,
        "channel": "WHATSAPP",
        "to_phone": "+33612345678",
        "kind": "template",
        "payload": {"name": "order_update", "language": "en_US", "components": []},
        "message_metadata": {},
        "idempotency_key": None,
        "request_hash": None,
        "status": status,
        "attempts": attempts,
        "max_attempts": 5,
        "next_attempt_at": created_at,
        "lease_until": None,
        "claimed_by": None,
        "provider_message_id": None,
        "error_code": None,
        "error_title": None,
        "error_message": None,
        "error_details": None,
        "error_retryable": None,
        "dead_lettered": False,
        "created_at": created_at,
        "updated_at": created_at,
        "accepted_at": None,
        "sent_at": None,
        "delivered_at": None,
        "read_at": None,
        "failed_at": None,
    }
    row.update(columns)
    return row


def dead_row(
    code: str | None = "131026", title: str | None = "Message undeliverable", **columns: Any
) -> dict[str, Any]:
    """A dead-lettered message that failed with Meta error `code`."""
    values: dict[str, Any] = {
        "status": "FAILED",
        "dead_lettered": True,
        "error_code": code,
        "error_title": title,
        "error_retryable": False,
        "failed_at": columns.pop("failed_at", NOW - timedelta(minutes=5)),
    }
    values.update(columns)
    return message_row(**values)


async def add_messages(engine: AsyncEngine, rows: list[dict[str, Any]]) -> None:
    async with engine.begin() as conn:
        for org_id in sorted({row["org_id"] for row in rows}):
            await add_org(conn, org_id)
        if rows:
            await conn.execute(outbound_message.insert(), rows)


async def add(engine: AsyncEngine, count: int, **columns: Any) -> None:
    """`count` messages like `message_row(**columns)`."""
    await add_messages(engine, [message_row(**columns) for _ in range(count)])


async def add_dead(engine: AsyncEngine, count: int, **columns: Any) -> None:
    await add_messages(engine, [dead_row(**columns) for _ in range(count)])
