"""Fixtures: real PostgreSQL (a fresh database per test, cloned from a migrated template) and real
SQLite (a fresh file per test, copied from a migrated template), the app with its lifespan, and an
HTTP client. Service-backed tests are skipped when PostgreSQL is absent, unless
WA_TEST_REQUIRE_SERVICES=1 (CI), which turns the skip into a failure."""

from __future__ import annotations

import asyncio
import os
import shutil
import uuid
from collections.abc import AsyncIterator, Iterator
from pathlib import Path
from typing import TYPE_CHECKING, NoReturn
from urllib.parse import urlsplit

import asyncpg
import httpx
import pytest
from hypothesis import settings as hypothesis_settings
from redis.asyncio import Redis
from redis.exceptions import RedisError
from sqlalchemy.ext.asyncio import AsyncEngine

from browser import browser_unavailable, chromium
from factories import insert_org
from helpers import ADMIN_TOKEN, PrivateRedis, app_client, create_org_with_key, make_settings
from private_pgbouncer import PrivatePgBouncer
from private_pgbouncer import binary as pgbouncer_binary
from private_postgres import PrivatePostgres
from redis_engines import Cluster, SentinelGroup
from wa_outbound.app import create_app
from wa_outbound.config import Settings
from wa_outbound.db import migrate
from wa_outbound.db.engine import create_engine

if TYPE_CHECKING:
    from playwright.async_api import Browser

PG_URL = os.environ.get(
    "WA_TEST_DATABASE_URL", "postgresql+asyncpg://postgres@127.0.0.1:5432/postgres"
)
REDIS_URL = os.environ.get("WA_TEST_REDIS_URL", "redis://127.0.0.1:6379/0")
REQUIRE_SERVICES = os.environ.get("WA_TEST_REQUIRE_SERVICES") == "1"

# CI replays the same generated examples on every run: a red build is then reproducible, and a
# build is never red by the luck of the draw. Developers' runs keep exploring new examples.
hypothesis_settings.register_profile("ci", derandomize=True, print_blob=True)
if os.environ.get("CI"):
    hypothesis_settings.load_profile("ci")


def _dsn(url: str, database: str | None = None) -> str:
    """asyncpg's DSN for a SQLAlchemy URL, optionally pointing at another database."""
    dsn = url.replace("postgresql+asyncpg://", "postgresql://")
    if database is None:
        return dsn
    base, _, _ = dsn.rpartition("/")
    return f"{base}/{database}"


def _sa_url(database: str) -> str:
    base, _, _ = PG_URL.rpartition("/")
    return f"{base}/{database}"


async def _admin_execute(*statements: str) -> None:
    conn = await asyncpg.connect(_dsn(PG_URL), timeout=5)
    try:
        for statement in statements:
            await conn.execute(statement)
    finally:
        await conn.close()


def services_unavailable(reason: str) -> NoReturn:
    if REQUIRE_SERVICES:
        pytest.fail(f"{reason} (WA_TEST_REQUIRE_SERVICES=1)")
    pytest.skip(reason)


@pytest.fixture(scope="session")
def promtool() -> str:
    """Prometheus's promtool (Debian's `prometheus` package), for the deployment kit's rules."""
    path = shutil.which("promtool")
    if path is None:
        services_unavailable("promtool is not installed (apt-get install prometheus)")
    return path


@pytest.fixture(scope="session")
def pg_template() -> Iterator[str]:
    """A migrated template database; each test clones it (CREATE DATABASE ... TEMPLATE)."""
    name = f"wa_tmpl_{uuid.uuid4().hex[:10]}"

    async def setup() -> None:
        await _admin_execute(f'CREATE DATABASE "{name}"')
        engine = create_engine(make_settings(_sa_url(name)))
        try:
            await migrate.upgrade(engine)
        finally:
            await engine.dispose()

    try:
        asyncio.run(setup())
    except (OSError, asyncpg.PostgresError) as exc:
        services_unavailable(f"PostgreSQL not reachable at {PG_URL}: {exc}")
    yield name
    asyncio.run(_admin_execute(f'DROP DATABASE IF EXISTS "{name}" WITH (FORCE)'))


@pytest.fixture(scope="session")
def sqlite_template(tmp_path_factory: pytest.TempPathFactory) -> Path:
    path = tmp_path_factory.mktemp("sqlite") / "template.db"

    async def setup() -> None:
        engine = create_engine(make_settings(f"sqlite+aiosqlite:///{path}"))
        try:
            await migrate.upgrade(engine)
        finally:
            await engine.dispose()

    asyncio.run(setup())
    return path


@pytest.fixture
async def postgres_url(pg_template: str) -> AsyncIterator[str]:
    name = f"wa_test_{uuid.uuid4().hex[:12]}"
    await _admin_execute(f'CREATE DATABASE "{name}" TEMPLATE "{pg_template}"')
    yield _sa_url(name)
    await _admin_execute(f'DROP DATABASE IF EXISTS "{name}" WITH (FORCE)')


@pytest.fixture
async def empty_postgres_url(pg_template: str) -> AsyncIterator[str]:
    """A PostgreSQL database with nothing in it, not even the schema (for migration tests)."""
    name = f"wa_test_{uuid.uuid4().hex[:12]}"
    await _admin_execute(f'CREATE DATABASE "{name}"')
    yield _sa_url(name)
    await _admin_execute(f'DROP DATABASE IF EXISTS "{name}" WITH (FORCE)')


@pytest.fixture
def sqlite_url(sqlite_template: Path, tmp_path: Path) -> str:
    path = tmp_path / "test.db"
    shutil.copy(sqlite_template, path)
    return f"sqlite+aiosqlite:///{path}"


@pytest.fixture(params=["sqlite", "postgres"])
def database_url(request: pytest.FixtureRequest) -> str:
    """Runs a test once on SQLite and once on PostgreSQL."""
    name = "sqlite_url" if request.param == "sqlite" else "postgres_url"
    url: str = request.getfixturevalue(name)
    return url


@pytest.fixture
def settings(database_url: str) -> Settings:
    return make_settings(database_url)


@pytest.fixture
async def client(settings: Settings) -> AsyncIterator[httpx.AsyncClient]:
    async with app_client(create_app(settings)) as c:
        yield c


@pytest.fixture
def admin() -> dict[str, str]:
    return {"Authorization": f"Bearer {ADMIN_TOKEN}"}


@pytest.fixture
async def org(client: httpx.AsyncClient) -> tuple[str, dict[str, str]]:
    """(org id, auth headers) of a fresh organisation."""
    return await create_org_with_key(client)


@pytest.fixture
async def db_engine(database_url: str) -> AsyncIterator[AsyncEngine]:
    """An engine on a fresh migrated database (SQLite and PostgreSQL), for data-level tests."""
    engine = create_engine(make_settings(database_url))
    yield engine
    await engine.dispose()


@pytest.fixture
async def pg_engine(postgres_url: str) -> AsyncIterator[AsyncEngine]:
    """An engine on a fresh migrated PostgreSQL database, for what only PostgreSQL has."""
    engine = create_engine(make_settings(postgres_url))
    yield engine
    await engine.dispose()


@pytest.fixture
async def org_id(db_engine: AsyncEngine) -> str:
    """A fresh organisation, inserted directly (no API key), for data-level tests."""
    async with db_engine.begin() as conn:
        return await insert_org(conn)


@pytest.fixture
async def redis_url() -> str:
    """The machine's Redis (shared with other test runs: never flush it, delete only your keys)."""
    client = Redis.from_url(REDIS_URL, socket_connect_timeout=2)
    try:
        await client.ping()
    except (RedisError, OSError) as exc:
        services_unavailable(f"Redis not reachable at {REDIS_URL}: {exc}")
    finally:
        await client.aclose()
    return REDIS_URL


@pytest.fixture
def private_redis(tmp_path: Path) -> Iterator[PrivateRedis]:
    """A Redis server of this test's own, which the test may stop, restart and flush."""
    if shutil.which("redis-server") is None:
        services_unavailable("redis-server is not installed")
    server = PrivateRedis(tmp_path)
    server.start()
    try:
        yield server
    finally:
        server.stop()


@pytest.fixture(scope="session")
def redis_cluster(tmp_path_factory: pytest.TempPathFactory) -> Iterator[Cluster]:
    """A Redis Cluster of the session's own (3 masters, 3 replicas, ports 7100-7105), which a
    test may fail over: `master_of` finds the current layout, `wait_healthy` its recovery."""
    if shutil.which("redis-server") is None or shutil.which("redis-cli") is None:
        services_unavailable("redis-server or redis-cli is not installed")
    cluster = Cluster(tmp_path_factory.mktemp("redis-cluster"))
    try:
        cluster.start()
        yield cluster
    finally:
        cluster.stop()


@pytest.fixture(scope="session")
def redis_sentinel(tmp_path_factory: pytest.TempPathFactory) -> Iterator[SentinelGroup]:
    """A Sentinel group of the session's own (a master, a replica, three sentinels with quorum
    2, ports 7110-7122), which a test may fail over."""
    if shutil.which("redis-server") is None or shutil.which("redis-sentinel") is None:
        services_unavailable("redis-server or redis-sentinel is not installed")
    group = SentinelGroup(tmp_path_factory.mktemp("redis-sentinel"))
    try:
        group.start()
        yield group
    finally:
        group.stop()


@pytest.fixture
def private_postgres() -> Iterator[PrivatePostgres]:
    """A PostgreSQL cluster of this test's own, which the test may stop, start or hang."""
    pg = PrivatePostgres()
    try:
        pg.start()
        yield pg
    finally:
        pg.destroy()


@pytest.fixture
def pgbouncer(pg_template: str) -> Iterator[PrivatePgBouncer]:
    """A PgBouncer of this test's own in transaction mode (`default_pool_size` 5) in front of
    the machine's PostgreSQL; `pgbouncer.url(postgres_url)` reaches a test database through it."""
    if pgbouncer_binary() is None:
        services_unavailable("pgbouncer is not installed (apt-get install pgbouncer)")
    bouncer = PrivatePgBouncer(server_port=urlsplit(PG_URL).port or 5432)
    try:
        bouncer.start()
        yield bouncer
    finally:
        bouncer.destroy()


@pytest.fixture
async def browser() -> AsyncIterator[Browser]:
    """Debian's Chromium, headless, driven by Playwright (tests/browser.py: its page watch, and
    the host name under which it reaches a served app). Skipped when either is missing."""
    reason = browser_unavailable()
    if reason is not None:
        services_unavailable(reason)
    async with chromium() as launched:
        yield launched
