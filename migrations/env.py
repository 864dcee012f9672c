"""Alembic environment: async engines, PostgreSQL and SQLite (batch mode for SQLite's ALTERs)."""

from __future__ import annotations

import asyncio

import sqlalchemy as sa
from alembic import context
from sqlalchemy.engine import Connection

from wa_outbound.config import Settings
from wa_outbound.db.callback_schema import metadata
from wa_outbound.db.console_schema import console_session  # noqa: F401  (its table in metadata)
from wa_outbound.db.engine import create_migration_engine

config = context.config


def _configure(connection: Connection) -> None:
    context.configure(
        connection=connection,
        target_metadata=metadata,
        render_as_batch=connection.dialect.name == "sqlite",
        compare_type=True,
    )
    with context.begin_transaction():
        context.run_migrations()


async def _run_with_own_engine() -> None:
    url = config.get_main_option("sqlalchemy.url") or Settings().database_url
    engine = create_migration_engine(url)
    try:
        async with engine.connect() as connection:
            if connection.dialect.name == "postgresql":
                await connection.execute(sa.text("SET statement_timeout = 0"))
            await connection.run_sync(_configure)
            await connection.commit()
    finally:
        await engine.dispose()


def run() -> None:
    # The service passes its own connection (see wa_outbound.db.migrate: no statement timeout,
    # the migration lock held); Alembic's own CLI, for developers, makes one.
    connection = config.attributes.get("connection")
    if connection is not None:
        _configure(connection)
    else:
        asyncio.run(_run_with_own_engine())


if context.is_offline_mode():
    raise SystemExit("offline (--sql) migrations are not supported")
run()
