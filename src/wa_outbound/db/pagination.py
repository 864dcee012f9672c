"""Keyset pagination, newest first, on a (timestamp, uuid) pair: opaque cursors that stay valid
while rows are added, unlike offsets."""

from __future__ import annotations

import base64
import binascii
import json
import uuid
from datetime import datetime
from typing import Any

import sqlalchemy as sa
from sqlalchemy.ext.asyncio import AsyncConnection

from wa_outbound.errors import InvalidRequest


def encode_cursor(at: datetime, row_id: uuid.UUID) -> str:
    raw = json.dumps([at.isoformat(), str(row_id)]).encode()
    return base64.urlsafe_b64encode(raw).decode().rstrip("=")


def decode_cursor(cursor: str) -> tuple[datetime, uuid.UUID]:
    try:
        padded = cursor + "=" * (-len(cursor) % 4)
        at, row_id = json.loads(base64.urlsafe_b64decode(padded))
        return datetime.fromisoformat(at), uuid.UUID(row_id)
    except (ValueError, TypeError, binascii.Error) as exc:
        raise InvalidRequest("cursor: not a cursor returned by this API", field="cursor") from exc


async def newest_first(
    conn: AsyncConnection,
    query: sa.Select[Any],
    *,
    at: sa.ColumnElement[Any],
    row_id: sa.ColumnElement[Any],
    limit: int,
    cursor: str | None,
) -> tuple[list[dict[str, Any]], str | None]:
    """One page of `query` ordered by (at, row_id) descending, and the next page's cursor."""
    if cursor:
        cursor_at, cursor_id = decode_cursor(cursor)
        query = query.where(sa.tuple_(at, row_id) < sa.tuple_(cursor_at, cursor_id))
    query = query.order_by(at.desc(), row_id.desc()).limit(limit + 1)
    rows = [dict(row._mapping) for row in await conn.execute(query)]
    if len(rows) <= limit:
        return rows, None
    rows = rows[:limit]
    last = rows[-1]
    return rows, encode_cursor(last[at.key], last[row_id.key])
