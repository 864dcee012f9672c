"""Migrations run up and down on both databases, and leave the schema the code expects."""

from __future__ import annotations

import sqlalchemy as sa

from helpers import make_settings
from wa_outbound.db import migrate
from wa_outbound.db.engine import create_engine
from wa_outbound.db.schema import metadata


async def _tables(url: str) -> set[str]:
    engine = create_engine(make_settings(url))
    try:
        async with engine.connect() as conn:
            return set(await conn.run_sync(lambda c: sa.inspect(c).get_table_names()))
    finally:
        await engine.dispose()


async def test_migrations_down_and_up_again(database_url: str) -> None:
    engine = create_engine(make_settings(database_url))
    try:
        assert await migrate.current(engine) is not None
        expected = set(metadata.tables)
        assert expected <= await _tables(database_url)

        await migrate.downgrade(engine, "base")
        assert await migrate.current(engine) is None
        assert not (expected & await _tables(database_url))

        await migrate.upgrade(engine)
        assert expected <= await _tables(database_url)
    finally:
        await engine.dispose()


async def test_schema_matches_the_code(database_url: str) -> None:
    """What autogenerate would emit must be empty: migrations and schema.py agree."""
    from alembic.autogenerate import compare_metadata
    from alembic.migration import MigrationContext

    engine = create_engine(make_settings(database_url))
    try:
        async with engine.connect() as conn:
            diff = await conn.run_sync(
                lambda c: compare_metadata(MigrationContext.configure(c), metadata)
            )
    finally:
        await engine.dispose()
    assert diff == []


async def test_the_outbox_is_vacuumed_after_two_percent_of_dead_rows_on_postgres(
    postgres_url: str,
) -> None:
    engine = create_engine(make_settings(postgres_url))
    try:
        async with engine.connect() as conn:
            options = await conn.scalar(
                sa.text("SELECT reloptions FROM pg_class WHERE relname = 'outbound_message'")
            )
    finally:
        await engine.dispose()
    assert "autovacuum_vacuum_scale_factor=0.02" in options
