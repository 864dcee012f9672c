"""Statements sent on the asyncpg connection under a SQLAlchemy one, for the hot paths.

They skip SQLAlchemy's statement compiler and execution layer (see docs/performance.md), so its
handling of a lost connection is redone here: the caller catches `CONNECTION_LOST` and raises
`await connection_lost(conn, exc)`.
"""

from __future__ import annotations

from typing import Any

import asyncpg
from sqlalchemy.ext.asyncio import AsyncConnection

from wa_outbound.errors import Unavailable

# The connection, not the statement, failed. InternalClientError: the protocol met a server
# message it did not expect (seen when the server terminated the connection while it was idle).
CONNECTION_LOST = (
    OSError,
    asyncpg.InterfaceError,
    asyncpg.exceptions.InternalClientError,
    asyncpg.PostgresConnectionError,
    asyncpg.exceptions.OperatorInterventionError,
)


async def driver(conn: AsyncConnection) -> Any:
    """The asyncpg connection under `conn` (in `conn`'s transaction, if it has begun one)."""
    raw = await conn.get_raw_connection()
    return raw.driver_connection


async def connection_lost(conn: AsyncConnection, exc: BaseException) -> Unavailable:
    """What SQLAlchemy does when one of its own statements meets a dead connection: the server
    went away, so the pool's other connections are dead too; drop this one and start a new
    pool. The answer is 503, as on every other route.

    A statement timeout says nothing about the other connections, and must not cost every
    request in flight its connection: the server's own (57014, an "operator intervention" to
    asyncpg) leaves this connection usable too; the client's (TimeoutError, an OSError) drops
    only this connection, whose statement may still be running."""
    if not isinstance(exc, asyncpg.QueryCanceledError):
        await conn.invalidate(exc)
        if not isinstance(exc, TimeoutError):
            await conn.engine.dispose()
    return Unavailable("The database is unavailable; retry later.")
