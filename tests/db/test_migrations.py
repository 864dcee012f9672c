"""Migrations run up and down on both databases, and leave the schema the code expects; on
PostgreSQL replicas that migrate at once take turns, and no statement timeout cuts a step; the
DLQ's counters are backfilled."""

from __future__ import annotations

import asyncio

import pytest
import sqlalchemy as sa
from sqlalchemy.exc import DBAPIError
from sqlalchemy.ext.asyncio import AsyncEngine

from alert_factories import add_messages, dead_row, message_row
from helpers import make_settings
from wa_outbound.db import migrate
from wa_outbound.db.console_schema import console_session  # noqa: F401  (its table in metadata)
from wa_outbound.db.engine import create_engine
from wa_outbound.db.schema import dlq_count
from wa_outbound.db.template_schema import metadata


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


async def test_replicas_migrating_one_fresh_database_at_once_all_succeed(
    empty_postgres_url: str,
) -> None:
    """Each replica on its own engine and connection, all at once: they take turns on the
    migration lock, the first migrates and the others find the schema at head."""
    engines = [create_engine(make_settings(empty_postgres_url)) for _ in range(3)]
    try:
        await asyncio.gather(*(migrate.upgrade(engine) for engine in engines))
        async with engines[0].connect() as conn:
            versions = (
                await conn.scalars(sa.text("SELECT version_num FROM alembic_version"))
            ).all()
    finally:
        for engine in engines:
            await engine.dispose()
    assert versions == [migrate.head()]
    assert set(metadata.tables) <= await _tables(empty_postgres_url)


async def test_a_migration_step_is_not_cut_by_the_statement_timeout(postgres_url: str) -> None:
    engine = create_engine(make_settings(postgres_url, database_statement_timeout_seconds=1))
    try:
        async with engine.connect() as conn:
            assert await conn.scalar(sa.text("SHOW statement_timeout")) == "1s"
            with pytest.raises(DBAPIError) as info:
                await conn.execute(sa.text("SELECT pg_sleep(1.5)"))
            assert "statement timeout" in str(info.value)
        async with migrate.migration_connection(engine) as conn:
            assert await conn.scalar(sa.text("SHOW statement_timeout")) == "0"
            # Longer than the server's timeout and than the client's (1 s later) on the pool.
            await conn.execute(sa.text("SELECT pg_sleep(2.2)"))
    finally:
        await engine.dispose()


async def test_the_dlq_counters_are_backfilled_from_the_outbox_and_kept_after(
    database_url: str,
) -> None:
    """Migration 0014 counts the dead letters already there (two orgs, two channels, a row not
    dead-lettered), then its triggers keep the count; its downgrade leaves no trigger behind."""
    engine = create_engine(make_settings(database_url))
    try:
        await migrate.downgrade(engine, "0013")
        assert "dlq_count" not in await _tables(database_url)
        await add_messages(
            engine,
            [dead_row(org_id="acme") for _ in range(3)]
            + [dead_row(org_id="acme", channel="SMS"), dead_row(org_id="globex")]
            + [message_row(org_id="globex", status="DELIVERED")],
        )
        await migrate.upgrade(engine)
        assert await _dlq_counts(engine) == {
            ("acme", "SMS"): 1,
            ("acme", "WHATSAPP"): 3,
            ("globex", "WHATSAPP"): 1,
        }
        await add_messages(engine, [dead_row(org_id="globex")])
        assert (await _dlq_counts(engine))[("globex", "WHATSAPP")] == 2

        await migrate.downgrade(engine, "0013")  # no trigger left writing to a dropped table
        await add_messages(engine, [dead_row(org_id="globex")])
    finally:
        await engine.dispose()


async def _dlq_counts(engine: AsyncEngine) -> dict[tuple[str, str], int]:
    async with engine.connect() as conn:
        rows = await conn.execute(sa.select(dlq_count))
        return {(r.org_id, r.channel): int(r.messages) for r in rows}
