"""Engine construction for PostgreSQL (asyncpg) and SQLite (aiosqlite)."""

from __future__ import annotations

from typing import Any

from sqlalchemy import event
from sqlalchemy.ext.asyncio import AsyncEngine, create_async_engine

from wa_outbound.config import Settings


def create_engine(settings: Settings) -> AsyncEngine:
    # hide_parameters: a database error logged with its statement must not carry the bound
    # values (phone numbers, message payloads) into the logs.
    url = settings.database_url
    if url.startswith("sqlite"):
        return _sqlite_engine(url)
    return create_async_engine(
        url,
        # Connections open lazily, up to the peak concurrency. An overflow connection is closed
        # when it comes back to a full pool, so a pool smaller than the usual number of
        # requests in flight reconnects all the time (measured: 8 % of the CPU at 32
        # concurrent enqueues with a pool of 20): size it for that load, overflow for bursts.
        pool_size=40,
        max_overflow=10,
        # No pre-ping: it costs a round trip per transaction. A connection that died with the
        # server fails its statement once; SQLAlchemy then invalidates the whole pool.
        pool_timeout=10,
        connect_args={
            "timeout": 5,
            "command_timeout": settings.database_statement_timeout_seconds,
        },
        hide_parameters=True,
    )


def _sqlite_engine(url: str) -> AsyncEngine:
    engine = create_async_engine(url, connect_args={"timeout": 30}, hide_parameters=True)

    @event.listens_for(engine.sync_engine, "connect")
    def _on_connect(dbapi_connection: Any, _record: Any) -> None:
        # Let SQLAlchemy own transactions, so "begin" below decides how they start.
        dbapi_connection.isolation_level = None
        cursor = dbapi_connection.cursor()
        cursor.execute("PRAGMA journal_mode=WAL")
        cursor.execute("PRAGMA busy_timeout=30000")
        cursor.execute("PRAGMA foreign_keys=ON")
        cursor.execute("PRAGMA synchronous=NORMAL")
        cursor.close()

    @event.listens_for(engine.sync_engine, "begin")
    def _on_begin(connection: Any) -> None:
        # IMMEDIATE takes the write lock up front: a deferred transaction that reads and then
        # writes can fail with "database is locked" instead of waiting its turn.
        connection.exec_driver_sql("BEGIN IMMEDIATE")

    return engine
