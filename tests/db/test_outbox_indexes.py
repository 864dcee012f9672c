"""The outbox's hot queries read their partial indexes, not the table (issue #21, "flat with
size"): on PostgreSQL after the migrations, with 20,000 messages (90 % finished, 10 orgs) and the
planner's statistics gathered by ANALYZE, the claim reads the head of the queue in order up to
its limit, the first page of GET /v1/messages reads one page of the org's index, and the
dead-letter report reads its counters and the last day's dead letters."""

from __future__ import annotations

import json
from collections.abc import AsyncIterator, Awaitable, Callable, Iterator
from typing import Any

import pytest
import sqlalchemy as sa
from sqlalchemy import event
from sqlalchemy.ext.asyncio import AsyncConnection, AsyncEngine

from helpers import analysed_engine
from wa_outbound.db.types import utcnow
from wa_outbound.dispatch.claims import claim, lock_due
from wa_outbound.dlq.report import report
from wa_outbound.outbox.messages import list_messages

ROWS = 20_000
ORG = "org3"

# Ten orgs with a sender each; every tenth message waiting (due), one in 33 dead-lettered, the
# rest delivered, created over the last 28 days.
_FILL = [
    "INSERT INTO organization (id, name, created_at) "
    "SELECT 'org' || i, 'org' || i, now() FROM generate_series(0, 9) AS i",
    "INSERT INTO sender (id, org_id, phone_number_id, is_default, messages_per_second, "
    "paused_reasons, created_at, updated_at) "
    "SELECT md5('sender' || i)::uuid, 'org' || i, '10000000000' || i, true, 80, '[]', now(), now() "
    "FROM generate_series(0, 9) AS i",
    f"""INSERT INTO outbound_message (id, org_id, channel, to_phone, kind, payload,
        message_metadata, status, attempts, max_attempts, next_attempt_at, dead_lettered,
        error_code, failed_at, created_at, updated_at, sender_id)
    SELECT md5('message' || g)::uuid, 'org' || (g % 10), 'WHATSAPP',
           '+3361' || lpad((g % 3000)::text, 7, '0'), 'template',
           '{{"name": "order_update", "language": "en_US"}}', '{{}}',
           CASE WHEN g % 10 = 0 THEN 'QUEUED' WHEN g % 33 = 1 THEN 'FAILED' ELSE 'DELIVERED' END,
           1, 5, now() - g * interval '1 second', g % 10 <> 0 AND g % 33 = 1,
           CASE WHEN g % 10 <> 0 AND g % 33 = 1 THEN '131026' END,
           CASE WHEN g % 10 <> 0 AND g % 33 = 1 THEN now() - g * interval '2 minutes' END,
           now() - g * interval '2 minutes', now(), md5('sender' || (g % 10))::uuid
    FROM generate_series(1, {ROWS}) AS g""",
]


@pytest.fixture
async def engine(postgres_url: str) -> AsyncIterator[AsyncEngine]:
    async with analysed_engine(postgres_url, *_FILL) as made:
        yield made


def _nodes(plan: dict[str, Any]) -> Iterator[dict[str, Any]]:
    yield plan
    for child in plan.get("Plans", []):
        yield from _nodes(child)


async def _plans(
    engine: AsyncEngine, call: Callable[[AsyncConnection], Awaitable[object]]
) -> list[list[dict[str, Any]]]:
    """The nodes of each statement `call` sends, as EXPLAIN (ANALYZE) runs it, rolled back."""
    sent: list[tuple[str, Any]] = []
    settings: list[tuple[str, Any]] = []

    def seen(_c: Any, _cur: Any, statement: str, params: Any, _ctx: Any, _many: Any) -> None:
        # The claim's planner settings have no plan of their own: each statement is explained
        # with them in force, as it ran.
        setting = statement.startswith(("SET ", "SELECT set_config("))
        (settings if setting else sent).append((statement, params))

    async with engine.connect() as conn:
        await conn.begin()
        event.listen(engine.sync_engine, "before_cursor_execute", seen)
        try:
            await call(conn)
        finally:
            event.remove(engine.sync_engine, "before_cursor_execute", seen)
        await conn.rollback()
        plans = []
        for statement, params in sent:
            await conn.begin()
            for setting, values in settings:
                await conn.exec_driver_sql(setting, values)
            explained = await conn.exec_driver_sql(
                f"EXPLAIN (ANALYZE, FORMAT JSON) {statement}", params
            )
            document = explained.scalar_one()
            document = json.loads(document) if isinstance(document, str) else document
            plans.append(list(_nodes(document[0]["Plan"])))
            await conn.rollback()
    return plans


def _read(nodes: list[dict[str, Any]], index: str) -> int:
    """How many rows the plan's scans of `index` returned (fails if none reads it)."""
    scans = [n for n in nodes if n.get("Index Name") == index]
    assert scans, f"{index} not used: {[n['Node Type'] for n in nodes]}"
    return sum(int(n["Actual Rows"]) * int(n["Actual Loops"]) for n in scans)


def _outbox_scans(nodes: list[dict[str, Any]]) -> list[str]:
    return [
        n.get("Index Name", n["Node Type"])
        for n in nodes
        if n.get("Relation Name") == "outbound_message" and "Scan" in n["Node Type"]
    ]


async def test_the_migrated_outbox_has_the_partial_indexes_the_hot_queries_need(
    engine: AsyncEngine,
) -> None:
    async with engine.connect() as conn:
        rows = await conn.execute(
            sa.text("SELECT indexname, indexdef FROM pg_indexes WHERE tablename = :t"),
            {"t": "outbound_message"},
        )
        indexes = {str(row[0]): str(row[1]) for row in rows}
    dlq = indexes["ix_outbound_message_dlq"]
    assert "(org_id, failed_at, channel, error_code)" in dlq
    assert "WHERE (dead_lettered IS TRUE)" in dlq
    failed = indexes["ix_outbound_message_dlq_failed"]
    assert "(failed_at, org_id, error_code, error_title) WHERE (dead_lettered IS TRUE)" in failed
    assert "WHERE (((status)::text = ANY" in indexes["ix_outbound_message_claim_ready"]
    assert "(org_id, created_at, id)" in indexes["ix_outbound_message_org_created"]


async def test_a_claim_reads_the_head_of_the_queue_in_order_not_the_whole_queue(
    engine: AsyncEngine,
) -> None:
    """2,000 messages are due; a claim of 50 reads about 50 of them through the claim index
    (a plan that joins the whole queue and sorts it reads 2,000), then those 50 by id, and its
    update finds them by id."""

    async def claim_50(conn: AsyncConnection) -> None:
        now = utcnow()
        due = await lock_due(conn, limit=50, now=now)
        assert len(due) == 50
        await claim(conn, [d.id for d in due], worker="w", lease_s=60, now=now)

    lock, update = await _plans(engine, claim_50)
    assert _read(lock, "ix_outbound_message_claim_ready") <= 60
    # The queue in order through the claim index, the pair check's probes, and the outer level
    # reading the 50 locked rows by id.
    scans = _outbox_scans(lock)
    assert scans[0] == "ix_outbound_message_claim_ready"
    assert set(scans[1:]) <= {"ix_outbound_message_pair_waiting", "pk_outbound_message"}
    assert _read(lock, "pk_outbound_message") <= 60
    # Nothing sorts the queue: only the 50 locked rows are put back in queue order.
    assert all(int(n["Actual Rows"]) <= 50 for n in lock if n["Node Type"] == "Sort")
    assert _read(update, "pk_outbound_message") <= 150
    assert "ix_outbound_message_sender_waiting" not in _outbox_scans(update)


async def test_the_first_page_of_messages_reads_one_page_of_the_orgs_index(
    engine: AsyncEngine,
) -> None:
    async def first_page(conn: AsyncConnection) -> None:
        rows, cursor = await list_messages(conn, org_id=ORG, limit=50)
        assert len(rows) == 50
        assert cursor is not None

    (nodes,) = await _plans(engine, first_page)
    assert _outbox_scans(nodes) == ["ix_outbound_message_org_created"]
    assert _read(nodes, "ix_outbound_message_org_created") == 51


# Dead letters that failed in the last 24 hours: failed_at is g * 2 minutes ago.
_DEAD_TODAY = [g for g in range(1, 720) if g % 10 != 0 and g % 33 == 1]


async def test_the_dead_letter_report_reads_its_counter_and_the_last_days_dead_letters(
    engine: AsyncEngine,
) -> None:
    """Its totals read `dlq_count`, not the outbox; its top codes read only dead letters of the
    last 24 hours (61 in the DLQ, 2 of them today), a range of a dead-letter index."""

    async def dlq_report(conn: AsyncConnection) -> None:
        body = await report(conn, org_id=ORG, now=utcnow())
        assert body["total_failed"] == 61  # g % 10 = 3 and g % 33 = 1 among 1..20,000

    totals, by_code = await _plans(engine, dlq_report)
    assert _outbox_scans(totals) == []
    assert {n.get("Relation Name") for n in totals} - {None} == {"dlq_count"}
    # Either range is bounded by the last day's failures (the planner picks the smaller).
    (scan,) = _outbox_scans(by_code)
    assert scan in {"ix_outbound_message_dlq", "ix_outbound_message_dlq_failed"}
    assert sum(g % 10 == 3 for g in _DEAD_TODAY) <= _read(by_code, scan) <= len(_DEAD_TODAY)


async def test_the_report_of_every_org_reads_the_last_days_dead_letters_by_failure_time(
    engine: AsyncEngine,
) -> None:
    async def dlq_report(conn: AsyncConnection) -> None:
        body = await report(conn, org_id=None, now=utcnow())
        assert body["total_failed"] == sum(g % 10 != 0 and g % 33 == 1 for g in range(1, ROWS + 1))

    totals, by_code = await _plans(engine, dlq_report)
    assert _outbox_scans(totals) == []
    assert _outbox_scans(by_code) == ["ix_outbound_message_dlq_failed"]
    assert _read(by_code, "ix_outbound_message_dlq_failed") == len(_DEAD_TODAY)
