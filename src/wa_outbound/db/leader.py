"""Which replica does a job only one may do at a time (evaluate alerts, delete old data): one
leader per job, for as long as it lives.

On PostgreSQL the leader holds a session-level advisory lock on a connection of its own, kept
out of the pool for as long as it leads, and evaluates on that connection. The lock lives as
long as the session: a leader that crashes, or whose connection is cut, loses it at once, and
another replica takes it at its next round. The leader checks its connection before each
round; when the connection is gone it steps down and tries to lead again like any other
replica. SQLite serves one process, which always leads.
"""

from __future__ import annotations

import contextlib
import logging
from collections.abc import AsyncIterator
from contextlib import asynccontextmanager

import sqlalchemy as sa
from sqlalchemy.ext.asyncio import AsyncConnection, AsyncEngine

log = logging.getLogger(__name__)


def lock_key(job: bytes) -> int:
    """A job's advisory lock key: its name (at most 8 ASCII bytes) as a bigint."""
    return int.from_bytes(job[:8], "big", signed=True)


class Leadership:
    """`round()` yields the leader's connection, or None while another replica leads;
    `release()` steps down (at shutdown) so that another replica leads at its next round."""

    def __init__(self, engine: AsyncEngine, *, key: int, job: str) -> None:
        self._engine = engine
        self._key = key
        self._job = job
        self._conn: AsyncConnection | None = None

    @asynccontextmanager
    async def round(self) -> AsyncIterator[AsyncConnection | None]:
        if self._engine.dialect.name != "postgresql":
            async with self._engine.connect() as conn:
                yield conn
            return
        yield await self._lead()

    async def _lead(self) -> AsyncConnection | None:
        if self._conn is not None:
            if await _alive(self._conn):
                return self._conn
            log.warning(
                "leadership lost: the leader's database connection is gone",
                extra={"job": self._job},
            )
            await self._drop()
        conn = await self._engine.connect()
        try:
            locked = await conn.scalar(
                sa.text("SELECT pg_try_advisory_lock(:key)"), {"key": self._key}
            )
            await conn.commit()  # the lock is the session's; no transaction stays open
        except BaseException:
            await conn.close()
            raise
        if not locked:
            await conn.close()
            return None
        log.info("this replica now leads", extra={"job": self._job})
        self._conn = conn
        return conn

    async def _drop(self) -> None:
        conn, self._conn = self._conn, None
        if conn is None:
            return
        # Never back to the pool: if the server still has the session, it still holds the lock.
        with contextlib.suppress(Exception):
            await conn.invalidate()
        with contextlib.suppress(Exception):
            await conn.close()

    async def release(self) -> None:
        conn = self._conn
        if conn is None:
            return
        try:
            await conn.execute(sa.text("SELECT pg_advisory_unlock(:key)"), {"key": self._key})
            await conn.commit()
        except Exception:  # gone already: so is the lock
            await self._drop()
            return
        self._conn = None
        await conn.close()


async def _alive(conn: AsyncConnection) -> bool:
    if conn.closed or conn.invalidated:
        return False
    try:
        await conn.execute(sa.text("SELECT 1"))
        await conn.commit()
    except Exception:  # whatever the failure, this session can no longer be trusted to lead
        return False
    return True
