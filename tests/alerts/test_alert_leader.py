"""One alert leader at a time on PostgreSQL, for as long as its connection lives: the other
replicas never evaluate meanwhile; a leader whose connection is killed is replaced at the
other's next round, and a leader that stops hands over at once."""

from __future__ import annotations

import asyncio
from collections.abc import AsyncIterator
from datetime import datetime, timedelta

import asyncpg
import pytest
from sqlalchemy.ext.asyncio import AsyncConnection

from alert_factories import NOW, add_dead
from helpers import eventually, make_settings
from wa_outbound.alerts import AlertEvaluator, Finding, Notice
from wa_outbound.alerts.leader import LEADER_LOCK_KEY
from wa_outbound.alerts.rules import RULES, Rule
from wa_outbound.config import Settings
from wa_outbound.db.engine import create_engine
from wa_outbound.metrics import Metrics


class Recorder:
    name = "recorder"

    def __init__(self) -> None:
        self.notices: list[Notice] = []

    async def send(self, notice: Notice) -> None:
        self.notices.append(notice)


class Replica:
    """An evaluator with an engine of its own (a replica), counting the rounds it evaluated."""

    def __init__(self, settings: Settings) -> None:
        self.engine = create_engine(settings)
        self.recorder = Recorder()
        self.rounds = 0

        async def count(conn: AsyncConnection, settings: Settings, now: datetime) -> list[Finding]:
            self.rounds += 1
            return []

        rules: dict[str, Rule] = {**RULES, "count": count}
        self.evaluator = AlertEvaluator(
            settings, self.engine, Metrics(), [self.recorder], rules=rules
        )

    async def close(self) -> None:
        await self.evaluator.close()
        await self.engine.dispose()


@pytest.fixture
async def replicas(postgres_url: str) -> AsyncIterator[list[Replica]]:
    settings = make_settings(postgres_url, alert_dlq_threshold=2, alert_interval_seconds=0.05)
    pair = [Replica(settings), Replica(settings)]
    await add_dead(pair[0].engine, 2)
    yield pair
    for replica in pair:
        await replica.close()


def _dsn(url: str) -> str:
    return url.replace("postgresql+asyncpg://", "postgresql://")


async def leader_pid(postgres_url: str) -> int | None:
    """The server process holding the alert leader lock (a bigint key: two 32-bit halves)."""
    conn = await asyncpg.connect(_dsn(postgres_url), timeout=5)
    try:
        pid: int | None = await conn.fetchval(
            "SELECT pid FROM pg_locks WHERE locktype = 'advisory' AND granted "
            "AND classid::bigint = $1 AND objid::bigint = $2 AND objsubid = 1",
            LEADER_LOCK_KEY >> 32,
            LEADER_LOCK_KEY & 0xFFFFFFFF,
        )
        return pid
    finally:
        await conn.close()


async def test_over_several_intervals_only_the_leader_evaluates_and_pages(
    replicas: list[Replica],
) -> None:
    first, second = replicas
    tasks = [asyncio.create_task(first.evaluator.run(), name="replica-1")]
    # Half an interval later: with a lock per evaluation, this one would find it free.
    await asyncio.sleep(0.025)
    tasks.append(asyncio.create_task(second.evaluator.run(), name="replica-2"))
    try:
        await eventually(lambda: first.rounds >= 10)
    finally:
        for replica in replicas:
            await replica.evaluator.stop()
        await asyncio.gather(*tasks)
    assert second.rounds == 0
    assert [n.type for n in first.recorder.notices] == ["dlq_growth"]
    assert second.recorder.notices == []


async def test_the_other_replica_takes_over_when_the_leaders_connection_is_killed(
    postgres_url: str, replicas: list[Replica]
) -> None:
    first, second = replicas
    assert (await first.evaluator.run_once(NOW)).leader
    assert not (await second.evaluator.run_once(NOW)).leader
    pid = await leader_pid(postgres_url)
    assert pid is not None

    admin = await asyncpg.connect(_dsn(postgres_url), timeout=5)
    try:
        assert await admin.fetchval("SELECT pg_terminate_backend($1)", pid)
    finally:
        await admin.close()

    async def second_leads() -> bool:
        return (await second.evaluator.run_once(NOW + timedelta(minutes=1))).leader

    await eventually(second_leads)
    # The old leader notices its connection is gone, steps down, and finds the lock taken.
    assert not (await first.evaluator.run_once(NOW + timedelta(minutes=2))).leader
    assert await leader_pid(postgres_url) not in (None, pid)
    # The alert already fired: the new leader does not page it again.
    assert len(first.recorder.notices) == 1
    assert second.recorder.notices == []

    # Leadership is not for life: when the new leader stops, the old one leads again.
    await second.evaluator.close()
    assert (await first.evaluator.run_once(NOW + timedelta(minutes=3))).leader


async def test_a_leader_alone_whose_connection_was_cut_leads_again(
    postgres_url: str, replicas: list[Replica]
) -> None:
    first, _ = replicas
    assert (await first.evaluator.run_once(NOW)).leader
    pid = await leader_pid(postgres_url)
    admin = await asyncpg.connect(_dsn(postgres_url), timeout=5)
    try:
        await admin.fetchval("SELECT pg_terminate_backend($1)", pid)
    finally:
        await admin.close()

    async def leads() -> bool:
        return (await first.evaluator.run_once(NOW + timedelta(minutes=1))).leader

    await eventually(leads)
    assert await leader_pid(postgres_url) not in (None, pid)


async def test_on_sqlite_the_only_process_always_leads(sqlite_url: str) -> None:
    settings = make_settings(sqlite_url, alert_dlq_threshold=2)
    engine = create_engine(settings)
    evaluators = [AlertEvaluator(settings, engine, Metrics(), [Recorder()]) for _ in range(2)]
    try:
        evaluations = [await e.run_once(NOW) for e in evaluators]
    finally:
        for evaluator in evaluators:
            await evaluator.close()
        await engine.dispose()
    assert [e.leader for e in evaluations] == [True, True]
