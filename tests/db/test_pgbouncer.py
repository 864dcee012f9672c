"""WA_DATABASE_URL through PgBouncer in transaction mode (a real one, started by the test), and
WA_DATABASE_SESSION_URL straight to PostgreSQL for what needs a session."""

from __future__ import annotations

import asyncio
import logging
from collections.abc import AsyncIterator, Iterator

import asyncpg
import pytest
import sqlalchemy as sa
from sqlalchemy.ext.asyncio import AsyncEngine

from conftest import services_unavailable
from helpers import make_settings
from private_pgbouncer import PrivatePgBouncer, binary
from wa_outbound.config import Settings
from wa_outbound.db import raw
from wa_outbound.db.engine import (
    create_engine,
    create_session_engine,
    warn_if_pooled_without_timeout,
)
from wa_outbound.db.leader import Leadership, lock_key
from wa_outbound.db.listener import Listener, notify

KEY = lock_key(b"wa-test")


@pytest.fixture
def one_server_connection(pg_template: str) -> Iterator[PrivatePgBouncer]:
    """PgBouncer with a pool of one server connection: every client shares one session, as
    many clients do at times under any pool size."""
    if binary() is None:
        services_unavailable("pgbouncer is not installed (apt-get install pgbouncer)")
    bouncer = PrivatePgBouncer(pool_size=1)
    try:
        bouncer.start()
        yield bouncer
    finally:
        bouncer.destroy()


def pooled_settings(bouncer: PrivatePgBouncer, postgres_url: str) -> Settings:
    return make_settings(bouncer.url(postgres_url), database_session_url=postgres_url)


@pytest.fixture
async def engines(
    one_server_connection: PrivatePgBouncer, postgres_url: str
) -> AsyncIterator[tuple[AsyncEngine, AsyncEngine]]:
    """(the pool through PgBouncer, the session engine straight to PostgreSQL)."""
    settings = pooled_settings(one_server_connection, postgres_url)
    engine = create_engine(settings)
    session = create_session_engine(settings, engine)
    yield engine, session
    await session.dispose()
    await engine.dispose()


async def test_statements_of_many_clients_share_one_server_session_and_leave_nothing_on_it(
    engines: tuple[AsyncEngine, AsyncEngine],
) -> None:
    engine, _ = engines

    async def client(n: int) -> int:
        total = 0
        for i in range(20):
            async with engine.begin() as conn:
                total += await conn.scalar(sa.text("SELECT CAST(:n AS int) + :i"), {"n": n, "i": i})
                # The hot paths' raw statements (outbox, claims) go the same way.
                total += await (await raw.driver(conn)).fetchval("SELECT $1::int", i)
        return total

    # More client connections than server ones: each transaction may land on the server
    # session another client prepared its statements on.
    totals = await asyncio.gather(*(client(n) for n in range(8)))
    assert totals == [20 * n + 2 * sum(range(20)) for n in range(8)]
    async with engine.connect() as conn:
        # Named statements would pile up on the server's session (or collide by name).
        left = await conn.scalar(sa.text("SELECT count(*) FROM pg_prepared_statements"))
    assert left == 0


async def test_a_statement_outside_a_transaction_works_through_pgbouncer(
    engines: tuple[AsyncEngine, AsyncEngine],
) -> None:
    engine, _ = engines
    async with engine.connect() as conn:
        driver = await raw.driver(conn)
        # Parse and Bind in two exchanges may reach two server connections: asyncpg parses the
        # unnamed statement again with its Bind.
        assert [await driver.fetchval("SELECT $1::text", str(i)) for i in range(5)] == [
            "0",
            "1",
            "2",
            "3",
            "4",
        ]


async def test_pgbouncer_refuses_the_direct_engines_statement_timeout_at_connect(
    one_server_connection: PrivatePgBouncer, postgres_url: str
) -> None:
    """Why the pooled engine sends no startup parameter: PgBouncer refuses the connection."""
    engine = create_engine(make_settings(one_server_connection.url(postgres_url)))
    try:
        with pytest.raises(Exception, match="unsupported startup parameter"):
            async with engine.connect() as conn:
                await conn.scalar(sa.text("SELECT 1"))
    finally:
        await engine.dispose()


async def test_the_session_engine_hears_a_notify_committed_through_pgbouncer(
    engines: tuple[AsyncEngine, AsyncEngine],
) -> None:
    engine, session = engines
    assert session.url.port != engine.url.port
    heard = asyncio.Event()
    listener = Listener(session, heard.set, channel="wa_test_bouncer")
    task = asyncio.create_task(listener.run())
    try:
        await asyncio.wait_for(heard.wait(), 10)  # once on connect
        heard.clear()
        async with engine.begin() as conn:
            await notify(conn, "wa_test_bouncer")
        await asyncio.wait_for(heard.wait(), 10)
    finally:
        await listener.stop()
        await task


async def test_one_leader_on_session_engines_where_pgbouncer_would_let_both_lead(
    engines: tuple[AsyncEngine, AsyncEngine], postgres_url: str
) -> None:
    engine, session = engines
    other = create_engine(make_settings(postgres_url))  # another replica's session engine
    leaders = [Leadership(session, key=KEY, job="a"), Leadership(other, key=KEY, job="b")]
    through_bouncer = [Leadership(engine, key=KEY + 1, job=j) for j in ("c", "d")]
    try:
        led = [await _leads(leader) for leader in leaders]
        # The lock is the server session's: PgBouncer hands that session to the next client,
        # which "takes" the lock it already holds.
        led_through_bouncer = [await _leads(leader) for leader in through_bouncer]
    finally:
        for leader in (*leaders, *through_bouncer):
            await leader.release()
        await other.dispose()
    assert led == [True, False]
    assert led_through_bouncer == [True, True]


async def _leads(leadership: Leadership) -> bool:
    async with leadership.round() as conn:
        return conn is not None


async def test_pgbouncer_passes_the_role_s_statement_timeout_to_pooled_statements(
    one_server_connection: PrivatePgBouncer,
    empty_postgres_url: str,
    caplog: pytest.LogCaptureFixture,
) -> None:
    """The timeout the pool cannot send at connect comes from the server (docs/operations.md):
    a database (or role) setting reaches every server session PgBouncer opens."""
    name = empty_postgres_url.rpartition("/")[2]
    admin = await asyncpg.connect(empty_postgres_url.replace("+asyncpg", ""), timeout=5)
    try:
        await admin.execute(f'ALTER DATABASE "{name}" SET statement_timeout = 200')
    finally:
        await admin.close()
    settings = pooled_settings(one_server_connection, empty_postgres_url)
    engine = create_engine(settings)
    try:
        with caplog.at_level(logging.WARNING, logger="wa_outbound.db.engine"):
            await warn_if_pooled_without_timeout(engine, settings)
        assert caplog.text == "", "200 ms is within WA_DATABASE_STATEMENT_TIMEOUT_SECONDS"
        async with engine.connect() as conn:
            with pytest.raises(sa.exc.DBAPIError, match="statement timeout"):
                await conn.execute(sa.text("SELECT pg_sleep(2)"))
    finally:
        await engine.dispose()


async def test_start_up_warns_while_the_server_sets_no_statement_timeout_for_the_pool(
    engines: tuple[AsyncEngine, AsyncEngine],
    one_server_connection: PrivatePgBouncer,
    postgres_url: str,
    caplog: pytest.LogCaptureFixture,
) -> None:
    engine, _ = engines
    with caplog.at_level(logging.WARNING, logger="wa_outbound.db.engine"):
        await warn_if_pooled_without_timeout(
            engine, pooled_settings(one_server_connection, postgres_url)
        )
    assert "the statement timeout is the server's, and it is off" in caplog.text
    assert "SET statement_timeout = '30000ms'" in caplog.text
