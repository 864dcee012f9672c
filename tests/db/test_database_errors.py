"""Database failures answer 503 with the error body, never 500: a database dropped under a
running app (3D000), a server that refuses connections, a statement timeout (57014). A
statement timeout costs at most its own connection, never the rest of the pool."""

from __future__ import annotations

import asyncio
import os
import signal
import socket
from collections.abc import AsyncIterator
from contextlib import asynccontextmanager

import asyncpg
import httpx
import pytest
import sqlalchemy as sa
from sqlalchemy.ext.asyncio import AsyncConnection
from sqlalchemy.pool import QueuePool

from helpers import (
    ADMIN,
    TEMPLATE,
    app_and_state,
    app_client,
    create_org_with_key,
    grant,
    make_settings,
)
from private_postgres import PrivatePostgres
from wa_outbound.app import create_app
from wa_outbound.db import raw
from wa_outbound.db.engine import create_engine
from wa_outbound.errors import Unavailable

PHONE = "+33612340002"


def _dsn(url: str, database: str | None = None) -> str:
    dsn = url.replace("postgresql+asyncpg://", "postgresql://")
    if database is None:
        return dsn
    return f"{dsn.rpartition('/')[0]}/{database}"


def _closed_port() -> int:
    with socket.socket() as sock:
        sock.bind(("127.0.0.1", 0))
        port: int = sock.getsockname()[1]
    return port  # nobody listens there any more


async def enqueue(client: httpx.AsyncClient, auth: dict[str, str]) -> httpx.Response:
    return await client.post("/v1/messages", json={"to": PHONE, "template": TEMPLATE}, headers=auth)


def assert_unavailable(response: httpx.Response) -> None:
    assert response.status_code == 503, response.text
    assert response.json()["error"]["code"] == "service_unavailable"


@pytest.mark.parametrize("key_cache_s", [60.0, 0.0], ids=["key-cached", "key-looked-up"])
async def test_a_database_dropped_under_the_app_answers_503(
    postgres_url: str, key_cache_s: float
) -> None:
    settings = make_settings(postgres_url, api_key_cache_seconds=key_cache_s)
    async with app_client(create_app(settings)) as client:
        _, auth = await create_org_with_key(client)
        await grant(client, auth, PHONE)
        assert (await enqueue(client, auth)).status_code == 202

        admin = await asyncpg.connect(_dsn(postgres_url, "postgres"), timeout=5)
        try:
            name = postgres_url.rpartition("/")[2]
            await admin.execute(f'DROP DATABASE "{name}" WITH (FORCE)')
        finally:
            await admin.close()

        # The first call meets a terminated connection, the next ones a database that is gone
        # (invalid_catalog_name on connect): every one is a 503 with the error body.
        for _ in range(2):
            assert_unavailable(await enqueue(client, auth))
            assert_unavailable(await client.get("/v1/messages", headers=auth))
        ready = await client.get("/health/ready")
    assert ready.status_code == 503
    assert ready.json()["components"]["database"]["status"] == "down"


async def test_a_server_refusing_connections_answers_503() -> None:
    url = f"postgresql+asyncpg://postgres@127.0.0.1:{_closed_port()}/nowhere"
    async with app_client(create_app(make_settings(url))) as client:
        lookup = await client.get("/v1/messages", headers={"Authorization": "Bearer wao_x"})
        admin = await client.post("/v1/admin/orgs", json={"name": "Acme"}, headers=ADMIN)
    assert_unavailable(lookup)
    assert_unavailable(admin)


@asynccontextmanager
async def table_locked(database_url: str, table: str) -> AsyncIterator[asyncpg.Connection]:
    """Another session holds `table` exclusively: every statement on it waits."""
    conn = await asyncpg.connect(_dsn(database_url), timeout=5)
    try:
        async with conn.transaction():
            await conn.execute(f"LOCK TABLE {table} IN ACCESS EXCLUSIVE MODE")
            yield conn
    finally:
        await conn.close()


async def app_backends(database_url: str) -> set[int]:
    """The server processes of every other session on this database: the app's connections."""
    conn = await asyncpg.connect(_dsn(database_url), timeout=5)
    try:
        rows = await conn.fetch(
            "SELECT pid FROM pg_stat_activity "
            "WHERE datname = current_database() AND pid <> pg_backend_pid()"
        )
    finally:
        await conn.close()
    return {row["pid"] for row in rows}


async def test_a_statement_timeout_answers_503_and_keeps_the_pool(postgres_url: str) -> None:
    settings = make_settings(
        postgres_url, database_statement_timeout_seconds=1, api_key_cache_seconds=60
    )
    async with app_and_state(create_app(settings)) as (client, state):
        _, auth = await create_org_with_key(client)
        await grant(client, auth, PHONE)
        # A few connections in the pool, as under load.
        listed = await asyncio.gather(*(client.get("/v1/messages", headers=auth) for _ in range(4)))
        assert {r.status_code for r in listed} == {200}
        pool = state["engine"].pool

        before = await app_backends(postgres_url)
        async with table_locked(postgres_url, "outbound_message"):
            during = await enqueue(client, auth)
        assert_unavailable(during)
        assert (await enqueue(client, auth)).status_code == 202
        # The server cancelled the statement (57014): the pool was not replaced, and none of
        # its connections was closed.
        assert state["engine"].pool is pool
        assert before <= await app_backends(postgres_url)


async def select_one_as_the_hot_paths_do(conn: AsyncConnection) -> None:
    """A statement on the asyncpg connection, its failure handled as outbox/one.py does."""
    try:
        await (await raw.driver(conn)).fetchval("SELECT 1")
    except raw.CONNECTION_LOST as exc:
        raise await raw.connection_lost(conn, exc) from exc


@pytest.mark.slow
async def test_a_statement_the_client_gave_up_on_drops_only_its_own_connection(
    private_postgres: PrivatePostgres,
) -> None:
    """A server process that answers nothing (stopped): the client's timeout fires, and the
    hot paths' handling of it (db/raw.py) invalidates that connection, not the pool."""
    settings = make_settings(private_postgres.url, database_statement_timeout_seconds=1)
    engine = create_engine(settings)
    try:
        idle = [await engine.connect() for _ in range(3)]
        idle_pids = set()
        for conn in idle:
            idle_pids.add(await conn.scalar(sa.text("SELECT pg_backend_pid()")))
            await conn.close()
        pool = engine.pool
        assert isinstance(pool, QueuePool)
        assert pool.checkedin() == 3

        async with engine.connect() as conn:
            pid = await conn.scalar(sa.text("SELECT pg_backend_pid()"))
            await conn.commit()
            os.kill(pid, signal.SIGSTOP)
            try:
                with pytest.raises(Unavailable):
                    await select_one_as_the_hot_paths_do(conn)
            finally:
                os.kill(pid, signal.SIGCONT)

        assert engine.pool is pool  # not disposed
        assert pool.checkedin() == 3
        async with engine.connect() as conn:
            assert await conn.scalar(sa.text("SELECT pg_backend_pid()")) in idle_pids
    finally:
        await engine.dispose()
