"""Engines: PostgreSQL (asyncpg; directly or through PgBouncer) and SQLite (aiosqlite)."""

from __future__ import annotations

import logging
from typing import Any

import sqlalchemy as sa
from sqlalchemy import URL, NullPool, event
from sqlalchemy.ext.asyncio import AsyncEngine, create_async_engine

from wa_outbound.config import Settings

log = logging.getLogger(__name__)

CONNECT_TIMEOUT_S = 5.0
# The client gives up this long after the server's own statement timeout: a live server cancels
# the statement itself (57014, the connection stays usable); only a server that answers nothing
# at all (hung, or a network that drops packets) is given up on by the client.
CLIENT_TIMEOUT_MARGIN_S = 1.0


def create_engine(settings: Settings) -> AsyncEngine:
    """The service's pool, on WA_DATABASE_URL: PostgreSQL, PgBouncer in front of it, or SQLite."""
    url = settings.database_url
    if url.startswith("sqlite"):
        return _sqlite_engine(url)
    # Connections open lazily, up to the peak concurrency. An overflow connection is closed when
    # it comes back to a full pool, so a pool smaller than the usual number of requests in
    # flight reconnects all the time (measured: 8 % of the CPU at 32 concurrent enqueues with a
    # pool of 20): size it for that load, overflow for bursts.
    return _postgres_engine(
        url, settings, pooled=settings.database_pooled, pool_size=40, max_overflow=10
    )


def create_session_engine(settings: Settings, engine: AsyncEngine) -> AsyncEngine:
    """Where connections that keep a session live (LISTEN, session advisory locks): `engine`
    itself, unless WA_DATABASE_URL goes through a transaction pooler; then a small pool of its
    own on WA_DATABASE_SESSION_URL. The caller disposes of it when it is not `engine`."""
    if not settings.database_pooled:
        return engine
    # Held for as long as the process lives: a listener per channel (outbox, callbacks, API
    # keys) and a leader per job (alerts, retention); the overflow for short uses beside them.
    return _postgres_engine(
        settings.session_database_url, settings, pooled=False, pool_size=5, max_overflow=5
    )


def _postgres_engine(
    url: str, settings: Settings, *, pooled: bool, pool_size: int, max_overflow: int
) -> AsyncEngine:
    connect_args: dict[str, Any] = {
        "timeout": CONNECT_TIMEOUT_S,
        "command_timeout": settings.database_statement_timeout_seconds + CLIENT_TIMEOUT_MARGIN_S,
    }
    if pooled:
        # A transaction pooler hands the server connection to another client after each
        # transaction: a statement prepared under a name would be missing there, or its name
        # taken. With both caches off, asyncpg prepares every statement unnamed and parses it
        # again with its Bind: nothing outlives the transaction, nothing piles up on the
        # server. PgBouncer refuses startup parameters it does not know, so the statement
        # timeout is the server's own (docs/operations.md, "Scaling out").
        connect_args |= {"statement_cache_size": 0, "prepared_statement_cache_size": 0}
    else:
        timeout_ms = round(settings.database_statement_timeout_seconds * 1000)
        connect_args["server_settings"] = {"statement_timeout": str(timeout_ms)}
    # hide_parameters: a database error logged with its statement must not carry the bound
    # values (phone numbers, message payloads) into the logs.
    return create_async_engine(
        url,
        pool_size=pool_size,
        max_overflow=max_overflow,
        # No pre-ping: it costs a round trip per transaction. A connection that died with the
        # server fails its statement once; SQLAlchemy then invalidates the whole pool.
        pool_timeout=10,
        connect_args=connect_args,
        hide_parameters=True,
    )


async def warn_if_pooled_without_timeout(engine: AsyncEngine, settings: Settings) -> None:
    """Through a transaction pooler the pool's statement timeout is the server's own setting
    (the role's or the database's): warn at start-up when it is off or longer than
    WA_DATABASE_STATEMENT_TIMEOUT_SECONDS, since the client would then give up first and drop
    its connection instead of the server cancelling the statement."""
    if not settings.database_pooled:
        return
    try:
        async with engine.connect() as conn:
            server_ms = int(
                await conn.scalar(
                    sa.text("SELECT setting FROM pg_settings WHERE name = 'statement_timeout'")
                )
            )
    except Exception:  # the database is unreachable: readiness says so already
        return
    wanted_ms = round(settings.database_statement_timeout_seconds * 1000)
    if server_ms == 0 or server_ms > wanted_ms:
        log.warning(
            "through a transaction pooler the statement timeout is the server's, and it is "
            "%s: set it on the role (ALTER ROLE ... SET statement_timeout = '%dms')",
            "off" if server_ms == 0 else f"{server_ms} ms",
            wanted_ms,
            extra={"server_statement_timeout_ms": server_ms, "wanted_ms": wanted_ms},
        )


def create_migration_engine(url: str | URL) -> AsyncEngine:
    """An engine for schema changes: one connection at a time, kept by nobody, and no statement
    timeout on either side, since a migration step may rightly take longer than any request."""
    if str(url).startswith("sqlite"):
        return _sqlite_engine(url)
    return create_async_engine(
        url,
        poolclass=NullPool,
        connect_args={"timeout": CONNECT_TIMEOUT_S, "command_timeout": None},
        hide_parameters=True,
    )


def _sqlite_engine(url: str | URL) -> AsyncEngine:
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
