"""Alert state through the evaluator: fire once, cooldown, escalation, resolution."""

from __future__ import annotations

from collections.abc import AsyncIterator
from datetime import datetime, timedelta
from typing import Any

import pytest
import sqlalchemy as sa
from sqlalchemy.ext.asyncio import AsyncConnection, AsyncEngine

from alert_factories import NOW, add_dead
from helpers import make_settings
from wa_outbound.alerts import AlertEvaluator, Finding, Notice
from wa_outbound.alerts.rules import RULES
from wa_outbound.config import Settings
from wa_outbound.db.schema import alert, outbound_message
from wa_outbound.metrics import Metrics

COOLDOWN = timedelta(minutes=30)


class Recorder:
    """A notifier that keeps what it was given."""

    name = "recorder"

    def __init__(self) -> None:
        self.notices: list[Notice] = []

    async def send(self, notice: Notice) -> None:
        self.notices.append(notice)

    def kinds(self) -> list[tuple[str, str, str]]:
        return [(n.type, n.kind, n.severity) for n in self.notices]


@pytest.fixture
def settings(database_url: str) -> Settings:
    return make_settings(
        database_url, alert_dlq_threshold=2, alert_cooldown_seconds=COOLDOWN.total_seconds()
    )


@pytest.fixture
def recorder() -> Recorder:
    return Recorder()


@pytest.fixture
async def evaluator(
    db_engine: AsyncEngine, settings: Settings, recorder: Recorder
) -> AsyncIterator[AlertEvaluator]:
    evaluator = AlertEvaluator(settings, db_engine, Metrics(), [recorder])
    yield evaluator
    await evaluator.close()


async def alert_rows(engine: AsyncEngine) -> list[dict[str, Any]]:
    async with engine.connect() as conn:
        rows = await conn.execute(sa.select(alert).order_by(alert.c.first_fired_at))
        return [dict(row._mapping) for row in rows]


async def clear_dlq(engine: AsyncEngine) -> None:
    async with engine.begin() as conn:
        await conn.execute(outbound_message.delete())


async def test_a_firing_alert_notifies_once(
    db_engine: AsyncEngine, evaluator: AlertEvaluator, recorder: Recorder
) -> None:
    await add_dead(db_engine, 2)
    await evaluator.run_once(NOW)
    await evaluator.run_once(NOW + timedelta(minutes=1))
    await evaluator.run_once(NOW + COOLDOWN - timedelta(seconds=1))
    assert recorder.kinds() == [("dlq_growth", "firing", "warning")]
    [row] = await alert_rows(db_engine)
    assert row["state"] == "firing"
    assert row["notifications"] == 1
    assert row["first_fired_at"] == NOW
    assert row["last_notified_at"] == NOW


async def test_a_firing_alert_notifies_again_after_the_cooldown(
    db_engine: AsyncEngine, evaluator: AlertEvaluator, recorder: Recorder
) -> None:
    await add_dead(db_engine, 2)
    await evaluator.run_once(NOW)
    await evaluator.run_once(NOW + COOLDOWN)
    await evaluator.run_once(NOW + COOLDOWN + timedelta(minutes=1))
    assert len(recorder.notices) == 2
    [row] = await alert_rows(db_engine)
    assert row["notifications"] == 2
    assert row["last_notified_at"] == NOW + COOLDOWN


async def test_rising_severity_notifies_at_once_but_flapping_back_does_not(
    db_engine: AsyncEngine, evaluator: AlertEvaluator, recorder: Recorder
) -> None:
    await add_dead(db_engine, 2)
    await evaluator.run_once(NOW)
    await add_dead(db_engine, 8)  # 10 = 5 times the threshold: critical
    await evaluator.run_once(NOW + timedelta(minutes=1))
    assert recorder.kinds() == [
        ("dlq_growth", "firing", "warning"),
        ("dlq_growth", "firing", "critical"),
    ]
    # Back to warning, then critical again within the cooldown: the incident already paged.
    await clear_dlq(db_engine)
    await add_dead(db_engine, 3)
    await evaluator.run_once(NOW + timedelta(minutes=2))
    await add_dead(db_engine, 9)
    await evaluator.run_once(NOW + timedelta(minutes=3))
    assert len(recorder.notices) == 2
    [row] = await alert_rows(db_engine)
    assert row["severity"] == "critical"
    assert row["summary"].startswith("12 messages")


async def test_a_cleared_condition_sends_one_resolution(
    db_engine: AsyncEngine, evaluator: AlertEvaluator, recorder: Recorder
) -> None:
    await add_dead(db_engine, 2)
    await evaluator.run_once(NOW)
    await clear_dlq(db_engine)
    await evaluator.run_once(NOW + timedelta(minutes=5))
    await evaluator.run_once(NOW + timedelta(hours=2))
    assert recorder.kinds() == [
        ("dlq_growth", "firing", "warning"),
        ("dlq_growth", "resolved", "warning"),
    ]
    assert recorder.notices[1].label == "RESOLVED"
    assert recorder.notices[1].summary.startswith("resolved after 5 min")
    [row] = await alert_rows(db_engine)
    assert row["state"] == "resolved"
    assert row["resolved_at"] == NOW + timedelta(minutes=5)
    assert row["notifications"] == 2


async def test_a_new_incident_after_the_cooldown_since_resolution_is_a_new_alert(
    db_engine: AsyncEngine, evaluator: AlertEvaluator, recorder: Recorder
) -> None:
    await add_dead(db_engine, 2)
    await evaluator.run_once(NOW)
    await clear_dlq(db_engine)
    resolved_at = NOW + timedelta(minutes=5)
    await evaluator.run_once(resolved_at)
    await add_dead(db_engine, 2)
    await evaluator.run_once(resolved_at + COOLDOWN)
    assert [n.kind for n in recorder.notices] == ["firing", "resolved", "firing"]
    rows = await alert_rows(db_engine)
    assert [(r["state"], r["first_fired_at"]) for r in rows] == [
        ("resolved", NOW),
        ("firing", resolved_at + COOLDOWN),
    ]


async def test_a_flapping_rule_pages_once_within_the_cooldown(
    db_engine: AsyncEngine, evaluator: AlertEvaluator, recorder: Recorder
) -> None:
    """Fires, clears, fires again, every minute: one page and one resolution; the incident is
    reopened rather than a new one opened each time."""
    for minute in range(0, 10, 2):
        await add_dead(db_engine, 2)
        await evaluator.run_once(NOW + timedelta(minutes=minute))
        await clear_dlq(db_engine)
        await evaluator.run_once(NOW + timedelta(minutes=minute + 1))
    assert recorder.kinds() == [
        ("dlq_growth", "firing", "warning"),
        ("dlq_growth", "resolved", "warning"),
    ]
    [row] = await alert_rows(db_engine)
    assert row["state"] == "resolved"
    assert row["first_fired_at"] == NOW
    assert row["resolved_at"] == NOW + timedelta(minutes=9)
    assert row["notifications"] == 2


async def test_a_reopened_alert_still_firing_after_the_cooldown_pages_and_then_resolves_aloud(
    db_engine: AsyncEngine, evaluator: AlertEvaluator, recorder: Recorder
) -> None:
    await add_dead(db_engine, 2)
    await evaluator.run_once(NOW)
    await clear_dlq(db_engine)
    await evaluator.run_once(NOW + timedelta(minutes=1))
    await add_dead(db_engine, 2)
    await evaluator.run_once(NOW + timedelta(minutes=2))  # reopened, silently
    [row] = await alert_rows(db_engine)
    assert (row["state"], row["resolved_at"]) == ("firing", NOW + timedelta(minutes=1))
    await evaluator.run_once(NOW + timedelta(minutes=1) + COOLDOWN)  # still firing: a reminder
    await clear_dlq(db_engine)
    await evaluator.run_once(NOW + timedelta(minutes=2) + COOLDOWN)
    assert [n.kind for n in recorder.notices] == ["firing", "resolved", "firing", "resolved"]


async def test_a_reopened_alert_that_gets_worse_pages_at_once(
    db_engine: AsyncEngine, evaluator: AlertEvaluator, recorder: Recorder
) -> None:
    await add_dead(db_engine, 2)
    await evaluator.run_once(NOW)
    await clear_dlq(db_engine)
    await evaluator.run_once(NOW + timedelta(minutes=1))
    await add_dead(db_engine, 10)  # five times the threshold: critical
    await evaluator.run_once(NOW + timedelta(minutes=2))
    assert recorder.kinds() == [
        ("dlq_growth", "firing", "warning"),
        ("dlq_growth", "resolved", "warning"),
        ("dlq_growth", "firing", "critical"),
    ]
    [row] = await alert_rows(db_engine)
    assert (row["state"], row["severity"]) == ("firing", "critical")


async def test_a_failing_rule_neither_resolves_its_alert_nor_stops_the_others(
    db_engine: AsyncEngine, settings: Settings, recorder: Recorder
) -> None:
    async def broken(conn: AsyncConnection, settings: Settings, now: datetime) -> list[Finding]:
        await conn.execute(sa.text("SELECT * FROM no_such_table"))
        return []

    await add_dead(db_engine, 2)
    healthy = AlertEvaluator(settings, db_engine, Metrics(), [recorder])
    await healthy.run_once(NOW)
    await healthy.close()  # steps down: the next evaluator leads
    rules = {**RULES, "dlq_growth": broken}
    sick = AlertEvaluator(settings, db_engine, Metrics(), [recorder], rules=rules)
    await add_dead(db_engine, 2, status="RETRYING", attempts=5, dead_lettered=False)
    evaluation = await sick.run_once(NOW + timedelta(minutes=1))
    await sick.close()
    assert evaluation.failed_rules == ["dlq_growth"]
    assert recorder.kinds() == [
        ("dlq_growth", "firing", "warning"),
        ("escalation", "firing", "critical"),
    ]
    states = {row["type"]: row["state"] for row in await alert_rows(db_engine)}
    assert states == {"dlq_growth": "firing", "escalation": "firing"}
