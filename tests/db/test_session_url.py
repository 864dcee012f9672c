"""WA_DATABASE_SESSION_URL: unset, sessions are held on WA_DATABASE_URL; set to another URL,
WA_DATABASE_URL is taken for a transaction pooler and sessions (and migrations) go there."""

from __future__ import annotations

import asyncio
from pathlib import Path

import asyncpg
import pytest
from pydantic import ValidationError

from conftest import _dsn
from helpers import free_port, make_settings
from test_cli import CLI, _env
from wa_outbound.db import migrate
from wa_outbound.db.engine import create_engine, create_session_engine

DIRECT = "postgresql+asyncpg://wa@db.internal:5432/wa"
BOUNCER = "postgresql+asyncpg://wa@pgbouncer.internal:6432/wa"


async def test_without_a_session_url_the_pool_is_direct_and_holds_the_sessions_too() -> None:
    settings = make_settings(DIRECT)
    assert settings.session_database_url == DIRECT
    assert not settings.database_pooled
    engine = create_engine(settings)
    try:
        assert create_session_engine(settings, engine) is engine
    finally:
        await engine.dispose()


async def test_a_session_url_of_its_own_makes_the_pool_pooler_safe_and_sessions_direct() -> None:
    settings = make_settings(BOUNCER, database_session_url=DIRECT)
    assert settings.database_pooled
    engine = create_engine(settings)
    session = create_session_engine(settings, engine)
    try:
        assert session is not engine
        assert str(session.url) == DIRECT
        assert str(engine.url) == BOUNCER
    finally:
        await session.dispose()
        await engine.dispose()


def test_the_same_url_twice_is_not_a_pooler() -> None:
    assert not make_settings(DIRECT, database_session_url=DIRECT).database_pooled


@pytest.mark.parametrize(
    ("database_url", "session_url"),
    [
        (BOUNCER, "postgresql://wa@db.internal/wa"),  # not the asyncpg driver
        ("sqlite+aiosqlite:///./wa.db", DIRECT),  # SQLite has no pooler
    ],
)
def test_a_session_url_the_service_cannot_use_is_refused(
    database_url: str, session_url: str
) -> None:
    with pytest.raises(ValidationError, match=r"WA_DATABASE|postgresql\+asyncpg"):
        make_settings(database_url, database_session_url=session_url)


async def test_migrate_runs_on_the_session_url(tmp_path: Path, empty_postgres_url: str) -> None:
    """Nothing listens at WA_DATABASE_URL here: the migration succeeds only on the session URL."""
    unreachable = f"postgresql+asyncpg://postgres@127.0.0.1:{free_port()}/nowhere"
    env = _env(
        tmp_path,
        WA_DATABASE_URL=unreachable,
        WA_DATABASE_SESSION_URL=empty_postgres_url,
        WA_PROVIDER="sandbox",
    )
    process = await asyncio.create_subprocess_exec(
        *CLI,
        "migrate",
        cwd=tmp_path,
        env=env,
        stdout=asyncio.subprocess.PIPE,
        stderr=asyncio.subprocess.STDOUT,
    )
    async with asyncio.timeout(120):
        output, _ = await process.communicate()
    assert process.returncode == 0, output.decode()
    conn = await asyncpg.connect(_dsn(empty_postgres_url), timeout=5)
    try:
        version = await conn.fetchval("SELECT version_num FROM alembic_version")
    finally:
        await conn.close()
    assert version == migrate.head()
