"""Audit trail: message events (the timeline) and organisation-level audit events.

Every message event that moves a message into a status the organisation's app is told of is
also written as a callback event (`outgoing`), in the same transaction."""

from __future__ import annotations

import uuid
from datetime import datetime
from typing import Any

from sqlalchemy.ext.asyncio import AsyncConnection

from wa_outbound.db.schema import audit_event, message_event
from wa_outbound.events import outgoing


def message_event_row(
    *,
    message_id: uuid.UUID,
    org_id: str,
    at: datetime,
    type: str,
    actor: str,
    from_status: str | None = None,
    to_status: str | None = None,
    details: dict[str, Any] | None = None,
) -> dict[str, Any]:
    return {
        "message_id": message_id,
        "org_id": org_id,
        "at": at,
        "type": type,
        "from_status": from_status,
        "to_status": to_status,
        "actor": actor,
        "details": details or {},
    }


async def record_message_events(conn: AsyncConnection, rows: list[dict[str, Any]]) -> None:
    if rows:
        await conn.execute(message_event.insert(), rows)
        await outgoing.message_changes(conn, rows)


async def record_audit(
    conn: AsyncConnection,
    *,
    org_id: str | None,
    at: datetime,
    action: str,
    actor: str,
    subject: str | None = None,
    details: dict[str, Any] | None = None,
) -> None:
    await conn.execute(
        audit_event.insert().values(
            org_id=org_id,
            at=at,
            action=action,
            actor=actor,
            subject=subject,
            details=details or {},
        )
    )
