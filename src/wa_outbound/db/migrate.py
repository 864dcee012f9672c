"""Run Alembic migrations from the service, wherever it is installed.

On PostgreSQL a migration runs on a connection of its own, without the service's statement
timeout (`SET statement_timeout = 0`: an index build may rightly take minutes), and under a
session-level advisory lock held on that connection: replicas that start together migrate one
after the other, and the later ones find the schema at head and do nothing.
"""

from __future__ import annotations

import logging
from collections.abc import AsyncIterator
from contextlib import asynccontextmanager
from importlib import resources
from pathlib import Path

import sqlalchemy as sa
from alembic import command
from alembic.config import Config
from alembic.runtime.migration import MigrationContext
from alembic.script import ScriptDirectory
from sqlalchemy.engine import Connection
from sqlalchemy.ext.asyncio import AsyncConnection, AsyncEngine

from wa_outbound.db.engine import create_migration_engine

log = logging.getLogger(__name__)

# Any fixed bigint shared by every replica: "wa-migr" in ASCII.
MIGRATION_LOCK_KEY = int.from_bytes(b"wa-migr", "big")


def migrations_dir() -> Path:
    """The wheel carries them as `wa_outbound/migrations`; a source checkout keeps them on top."""
    packaged = Path(str(resources.files("wa_outbound"))) / "migrations"
    if (packaged / "env.py").is_file():
        return packaged
    checkout = Path(__file__).resolve().parents[3] / "migrations"
    if (checkout / "env.py").is_file():
        return checkout
    raise RuntimeError("migrations not found next to the package or in the source checkout")


def _config(connection: Connection | None = None) -> Config:
    config = Config()
    config.set_main_option("script_location", str(migrations_dir()))
    if connection is not None:
        config.attributes["connection"] = connection
    return config


def scripts() -> ScriptDirectory:
    return ScriptDirectory.from_config(_config())


def head() -> str:
    """The revision this code's schema is at."""
    revision = scripts().get_current_head()
    if revision is None:
        raise RuntimeError("the migrations have no head revision")
    return revision


@asynccontextmanager
async def migration_connection(engine: AsyncEngine) -> AsyncIterator[AsyncConnection]:
    """A connection fit for schema changes on `engine`'s database, holding the migration lock.

    PostgreSQL: a new connection (not one of `engine`'s pool, whose statements time out), with
    `statement_timeout` 0 and the session-level advisory lock. The connection is closed when the
    block ends (it belongs to no pool), and the lock goes with it, as it would if the process
    died mid-migration. SQLite: one process only, no lock."""
    if engine.dialect.name != "postgresql":
        async with engine.connect() as conn:
            yield conn
        return
    own = create_migration_engine(engine.url)
    try:
        async with own.connect() as conn:
            await conn.execute(sa.text("SET statement_timeout = 0"))
            locked = await conn.scalar(
                sa.text("SELECT pg_try_advisory_lock(:key)"), {"key": MIGRATION_LOCK_KEY}
            )
            if not locked:
                log.info("another process is migrating the database; waiting for it")
                await conn.execute(
                    sa.text("SELECT pg_advisory_lock(:key)"), {"key": MIGRATION_LOCK_KEY}
                )
            await conn.commit()
            yield conn
    finally:
        await own.dispose()


async def upgrade(engine: AsyncEngine, revision: str = "head") -> None:
    async with migration_connection(engine) as conn, conn.begin():
        await conn.run_sync(lambda sync_conn: command.upgrade(_config(sync_conn), revision))


async def downgrade(engine: AsyncEngine, revision: str) -> None:
    async with migration_connection(engine) as conn, conn.begin():
        await conn.run_sync(lambda sync_conn: command.downgrade(_config(sync_conn), revision))


async def current(engine: AsyncEngine) -> str | None:
    async with engine.connect() as conn:
        return await conn.run_sync(
            lambda sync_conn: MigrationContext.configure(sync_conn).get_current_revision()
        )
