"""The claim's first statement is planned for each call on PostgreSQL. It is prepared once per
connection, and PostgreSQL may switch a prepared statement to a generic plan after five runs.
Such a plan cannot see `:now`: with a backlog of messages waiting for a later time, it joined
every queued row before filtering (4 s a claim for 20,000 rows, bench/claim_backlog.py).
Nor may its plan hang on the outbox's statistics, stale after a burst of enqueues until
autovacuum analyses the table."""

from __future__ import annotations

from collections.abc import AsyncIterator

import pytest
import sqlalchemy as sa
from sqlalchemy.ext.asyncio import AsyncEngine

from helpers import analysed_engine, make_settings
from wa_outbound.db.engine import create_engine
from wa_outbound.db.types import utcnow
from wa_outbound.dispatch.due import lock_due

WAITING = 3_000
DUE = 50

# One org, a sender whose backlog waits for a pair slot five minutes ahead, and another sender
# whose few messages are due behind that backlog.
_FILL = [
    "INSERT INTO organization (id, name, created_at) VALUES ('org', 'org', now())",
    "INSERT INTO sender (id, org_id, phone_number_id, is_default, messages_per_second, "
    "paused_reasons, created_at, updated_at) "
    "SELECT md5('sender' || i)::uuid, 'org', '10000000000' || i, i = 1, 80, '[]', now(), now() "
    "FROM generate_series(0, 1) AS i",
    f"""INSERT INTO outbound_message (id, org_id, channel, to_phone, kind, payload,
        message_metadata, status, attempts, max_attempts, next_attempt_at, dead_lettered,
        created_at, updated_at, sender_id, waiting_reason)
    SELECT md5('waiting' || g)::uuid, 'org', 'WHATSAPP', '+3361' || lpad(g::text, 7, '0'),
           'template', '{{"name": "order_update", "language": "en_US"}}', '{{}}', 'QUEUED', 0, 5,
           now() + interval '5 minutes', false, now() - interval '1 hour' + g * interval '1 ms',
           now(), md5('sender0')::uuid, 'pair_interval'
    FROM generate_series(1, {WAITING}) AS g""",
    f"""INSERT INTO outbound_message (id, org_id, channel, to_phone, kind, payload,
        message_metadata, status, attempts, max_attempts, next_attempt_at, dead_lettered,
        created_at, updated_at, sender_id)
    SELECT md5('due' || g)::uuid, 'org', 'WHATSAPP', '+3362' || lpad(g::text, 7, '0'),
           'template', '{{"name": "order_update", "language": "en_US"}}', '{{}}', 'QUEUED', 0, 5,
           now() - interval '1 second', false, now(), now(), md5('sender1')::uuid
    FROM generate_series(1, {DUE}) AS g""",
]


@pytest.fixture
async def engine(postgres_url: str) -> AsyncIterator[AsyncEngine]:
    async with analysed_engine(postgres_url, *_FILL) as made:
        yield made


async def test_every_claim_plans_its_first_statement_for_its_own_values(
    engine: AsyncEngine,
) -> None:
    async with engine.connect() as conn:
        for _ in range(12):
            async with conn.begin():
                due = await lock_due(conn, limit=100, now=utcnow())
                assert len(due) == DUE
        plans = (
            await conn.execute(
                sa.text(
                    "SELECT generic_plans, custom_plans FROM pg_prepared_statements "
                    "WHERE statement LIKE '%FOR UPDATE OF o SKIP LOCKED%' "
                    "AND statement NOT LIKE '%pg_prepared_statements%'"
                )
            )
        ).one()
    assert plans.generic_plans == 0
    assert plans.custom_plans == 12


BURST = 20_000
_BURST = f"""INSERT INTO outbound_message (id, org_id, channel, to_phone, kind, payload,
        message_metadata, status, attempts, max_attempts, next_attempt_at, dead_lettered,
        created_at, updated_at, sender_id)
    SELECT md5('burst' || g)::uuid, 'org', 'WHATSAPP', '+3363' || lpad(g::text, 7, '0'),
           'text', '{{"body": "hi"}}', '{{}}', 'QUEUED', 0, 5,
           now() - interval '1 minute' + g * interval '1 ms', false, now(), now(),
           md5('sender1')::uuid
    FROM generate_series(1, {BURST}) AS g"""


async def test_a_claim_reads_the_head_of_the_queue_only_before_the_table_is_analysed(
    postgres_url: str,
) -> None:
    # A burst just enqueued: no statistics of these rows yet (autovacuum off for the table, so
    # it cannot analyse them during the test). Joined to the limits' tables before the LIMIT,
    # the claim read and sorted all 20,000 rows (100-130 ms a claim).
    engine = create_engine(make_settings(postgres_url))
    try:
        async with engine.begin() as conn:
            await conn.execute(
                sa.text("ALTER TABLE outbound_message SET (autovacuum_enabled = false)")
            )
            for statement in _FILL[:2]:
                await conn.execute(sa.text(statement))
            await conn.execute(sa.text(_BURST))
        async with engine.connect() as conn:
            async with conn.begin():
                due = await lock_due(conn, limit=100, now=utcnow())
                await conn.execute(sa.text("SELECT pg_stat_force_next_flush()"))
            assert len(due) == 100
            async with conn.begin():
                read = (
                    await conn.execute(
                        sa.text(
                            "SELECT idx_tup_read FROM pg_stat_user_indexes "
                            "WHERE indexrelname = 'ix_outbound_message_claim_ready'"
                        )
                    )
                ).scalar_one()
        assert read <= 2 * 100, f"the claim read {read} entries of the queue for 100 rows"
    finally:
        await engine.dispose()
