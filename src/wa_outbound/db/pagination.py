"""Keyset pagination, newest first, on a (timestamp, uuid) pair: opaque cursors that stay valid
while rows are added, unlike offsets."""

from __future__ import annotations

import base64
import binascii
import json
import uuid
from datetime import UTC, datetime
from typing import Any

import sqlalchemy as sa
from sqlalchemy.ext.asyncio import AsyncConnection

from wa_outbound.errors import InvalidRequest


def encode_cursor(at: datetime, row_id: uuid.UUID) -> str:
    raw = json.dumps([at.isoformat(), str(row_id)]).encode()
    return base64.urlsafe_b64encode(raw).decode().rstrip("=")


def decode_cursor(cursor: str) -> tuple[datetime, uuid.UUID]:
    """The position a cursor of `encode_cursor` holds; InvalidRequest for anything else,
    including a time without a zone (ours always have one) or one that UTC cannot hold."""
    try:
        padded = cursor + "=" * (-len(cursor) % 4)
        at, row_id = json.loads(base64.urlsafe_b64decode(padded))
        when = datetime.fromisoformat(at)
        if when.tzinfo is None:
            raise ValueError("a time without a zone")
        return when.astimezone(UTC), uuid.UUID(row_id)
    except (ValueError, TypeError, OverflowError, binascii.Error) as exc:
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
        # Bound with the columns' own types, so the time is compared as the column stores it
        # (naive UTC text on SQLite), whatever zone the cursor's time was written in.
        position = sa.tuple_(sa.literal(cursor_at, at.type), sa.literal(cursor_id, row_id.type))
        query = query.where(sa.tuple_(at, row_id) < position)
    query = query.order_by(at.desc(), row_id.desc()).limit(limit + 1)
    rows = [dict(row._mapping) for row in await conn.execute(query)]
    if len(rows) <= limit:
        return rows, None
    rows = rows[:limit]
    last = rows[-1]
    return rows, encode_cursor(last[at.key], last[row_id.key])
