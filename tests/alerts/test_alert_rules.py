"""Each alert rule fires at its threshold and not just below it, on SQLite and PostgreSQL."""

from __future__ import annotations

from datetime import timedelta
from typing import Any

import pytest
from sqlalchemy.ext.asyncio import AsyncEngine

from alert_factories import NOW, add, add_dead
from helpers import make_settings
from wa_outbound.alerts import rules
from wa_outbound.alerts.model import Finding
from wa_outbound.config import Settings

HOUR = timedelta(hours=1)


@pytest.fixture
def settings(database_url: str) -> Settings:
    return make_settings(
        database_url,
        alert_dlq_threshold=4,
        alert_queue_depth_threshold=5,
        alert_failure_rate_threshold=0.3,
        alert_stuck_attempts=3,
        alert_stuck_age_seconds=7200,
        alert_escalation_attempts=5,
        max_attempts=10,
        lease_seconds=60,
    )


async def run(engine: AsyncEngine, settings: Settings, rule: rules.Rule) -> list[Finding]:
    async with engine.connect() as conn:
        return await rule(conn, settings, NOW)


async def test_dlq_growth_is_quiet_below_the_threshold(
    db_engine: AsyncEngine, settings: Settings
) -> None:
    await add_dead(db_engine, 3)
    assert await run(db_engine, settings, rules.dlq_growth) == []


async def test_dlq_growth_warns_at_the_threshold_and_carries_the_report(
    db_engine: AsyncEngine, settings: Settings
) -> None:
    await add_dead(db_engine, 4, code="190", title="Access token expired")
    [finding] = await run(db_engine, settings, rules.dlq_growth)
    assert (finding.type, finding.subject, finding.severity) == ("dlq_growth", "all", "warning")
    assert finding.figures["dlq_size"] == 4
    assert finding.report is not None
    assert finding.report["total_failed"] == 4
    assert finding.report["top_error_codes"][0]["code"] == "190"
    assert "rotate" in finding.report["recommendations"][0]


async def test_dlq_growth_is_critical_at_five_times_the_threshold(
    db_engine: AsyncEngine, settings: Settings
) -> None:
    await add_dead(db_engine, 20)
    [finding] = await run(db_engine, settings, rules.dlq_growth)
    assert finding.severity == "critical"


async def test_queue_depth_fires_at_the_threshold_only(
    db_engine: AsyncEngine, settings: Settings
) -> None:
    await add(db_engine, 2, status="QUEUED")
    await add(db_engine, 1, status="RETRYING")
    await add(db_engine, 1, status="SENDING")
    await add(db_engine, 3, status="DELIVERED")
    assert await run(db_engine, settings, rules.queue_depth) == []
    await add(db_engine, 1, status="QUEUED", next_attempt_at=NOW + HOUR)
    [finding] = await run(db_engine, settings, rules.queue_depth)
    assert finding.severity == "warning"
    assert finding.figures["queue_depth"] == 5
    assert finding.figures["due_now"] == 3


async def test_queue_depth_is_critical_at_five_times_the_threshold(
    db_engine: AsyncEngine, settings: Settings
) -> None:
    await add(db_engine, 25, status="QUEUED")
    [finding] = await run(db_engine, settings, rules.queue_depth)
    assert finding.severity == "critical"


async def test_old_messages_retried_many_times_are_stuck(
    db_engine: AsyncEngine, settings: Settings
) -> None:
    # Each misses one condition: too few attempts, too young, or already delivered.
    await add(db_engine, 1, status="RETRYING", attempts=2, age=3 * HOUR)
    await add(db_engine, 1, status="RETRYING", attempts=3, age=HOUR)
    await add(db_engine, 1, status="DELIVERED", attempts=3, age=3 * HOUR)
    assert await run(db_engine, settings, rules.stuck_messages) == []

    await add(db_engine, 2, status="RETRYING", attempts=3, age=3 * HOUR)
    [finding] = await run(db_engine, settings, rules.stuck_messages)
    assert finding.severity == "warning"
    assert finding.figures["stuck"] == 2
    assert finding.figures["retried_too_long"] == 2


async def test_sending_past_its_lease_is_stuck(db_engine: AsyncEngine, settings: Settings) -> None:
    # Within one lease of grace after expiry: a dispatcher may still reclaim it.
    await add(db_engine, 1, status="SENDING", attempts=1, lease_until=NOW - timedelta(seconds=30))
    assert await run(db_engine, settings, rules.stuck_messages) == []
    await add(db_engine, 1, status="SENDING", attempts=1, lease_until=NOW - timedelta(seconds=61))
    [finding] = await run(db_engine, settings, rules.stuck_messages)
    assert finding.figures["sending_past_lease"] == 1


async def test_accepted_without_a_status_for_hours_is_stuck(
    db_engine: AsyncEngine, settings: Settings
) -> None:
    await add(db_engine, 1, status="ACCEPTED", attempts=1, accepted_at=NOW - HOUR)
    await add(db_engine, 1, status="SENT", attempts=1, accepted_at=NOW - 5 * HOUR)
    assert await run(db_engine, settings, rules.stuck_messages) == []
    await add(db_engine, 1, status="ACCEPTED", attempts=1, accepted_at=NOW - 3 * HOUR)
    [finding] = await run(db_engine, settings, rules.stuck_messages)
    assert finding.figures["accepted_without_status"] == 1


def outcomes(failed: int, accepted: int, **extra: Any) -> list[dict[str, Any]]:
    recent = NOW - timedelta(minutes=10)
    return [
        {"status": "FAILED", "failed_at": recent, "error_code": "131026", **extra}
        for _ in range(failed)
    ] + [{"status": "DELIVERED", "accepted_at": recent, **extra} for _ in range(accepted)]


async def add_outcomes(engine: AsyncEngine, failed: int, accepted: int) -> None:
    for columns in outcomes(failed, accepted):
        await add(engine, 1, **columns)


async def test_failure_rate_needs_a_minimum_volume(
    db_engine: AsyncEngine, settings: Settings
) -> None:
    # 1 failure of 2 is 50%, but too few messages to mean anything.
    await add_outcomes(db_engine, failed=1, accepted=1)
    assert await run(db_engine, settings, rules.failure_rate) == []


async def test_failure_rate_fires_per_channel_at_the_threshold(
    db_engine: AsyncEngine, settings: Settings
) -> None:
    await add_outcomes(db_engine, failed=5, accepted=15)  # 25%: below 30%
    assert await run(db_engine, settings, rules.failure_rate) == []
    await add_outcomes(db_engine, failed=1, accepted=0)  # 6 of 21: 28.6%
    assert await run(db_engine, settings, rules.failure_rate) == []
    await add_outcomes(db_engine, failed=1, accepted=0)  # 7 of 22: 31.8%
    [finding] = await run(db_engine, settings, rules.failure_rate)
    assert (finding.type, finding.subject, finding.severity) == (
        "failure_rate",
        "WHATSAPP",
        "warning",
    )
    assert finding.figures["failed_1h"] == 7
    assert finding.figures["outcomes_1h"] == 22


async def test_failure_rate_is_critical_at_twice_the_threshold(
    db_engine: AsyncEngine, settings: Settings
) -> None:
    await add_outcomes(db_engine, failed=12, accepted=8)
    [finding] = await run(db_engine, settings, rules.failure_rate)
    assert finding.severity == "critical"


async def test_failure_rate_ignores_old_failures_and_revoked_consents(
    db_engine: AsyncEngine, settings: Settings
) -> None:
    await add_outcomes(db_engine, failed=0, accepted=20)
    await add(db_engine, 20, status="FAILED", error_code="131026", failed_at=NOW - 2 * HOUR)
    await add(db_engine, 20, status="FAILED", error_code="consent_revoked", failed_at=NOW)
    assert await run(db_engine, settings, rules.failure_rate) == []


async def test_escalation_fires_for_messages_still_retried_after_many_attempts(
    db_engine: AsyncEngine, settings: Settings
) -> None:
    await add(db_engine, 1, status="RETRYING", attempts=4)
    await add(db_engine, 1, status="SENDING", attempts=6)  # in flight: may still succeed
    await add(db_engine, 1, status="FAILED", attempts=5, dead_lettered=True)
    assert await run(db_engine, settings, rules.escalation) == []
    await add(db_engine, 1, status="RETRYING", attempts=5)
    await add(db_engine, 1, status="QUEUED", attempts=7)
    [finding] = await run(db_engine, settings, rules.escalation)
    assert finding.severity == "critical"
    assert finding.figures == {"messages": 2, "escalation_attempts": 5, "most_attempts": 7}


async def test_oldest_message_age_counts_only_due_messages(
    db_engine: AsyncEngine, settings: Settings
) -> None:
    waited = timedelta(seconds=rules.OLDEST_WAIT_WARNING_S)
    await add(db_engine, 1, status="QUEUED", next_attempt_at=NOW - waited + timedelta(seconds=1))
    # Scheduled for later: old, but not due, so not late.
    await add(db_engine, 1, status="QUEUED", age=5 * HOUR, next_attempt_at=NOW + HOUR)
    # Held by a paused sender: the sender_paused alert speaks for it.
    await add(db_engine, 1, status="QUEUED", age=5 * HOUR, waiting_reason="sender_paused")
    assert await run(db_engine, settings, rules.oldest_message_age) == []
    await add(db_engine, 1, status="RETRYING", age=2 * HOUR, next_attempt_at=NOW - waited)
    [finding] = await run(db_engine, settings, rules.oldest_message_age)
    assert finding.severity == "warning"
    assert finding.figures["oldest_wait_seconds"] == rules.OLDEST_WAIT_WARNING_S
    assert finding.figures["oldest_age_seconds"] == 7200


async def test_oldest_message_age_is_critical_after_an_hour(
    db_engine: AsyncEngine, settings: Settings
) -> None:
    await add(db_engine, 1, status="QUEUED", age=timedelta(seconds=rules.OLDEST_WAIT_CRITICAL_S))
    [finding] = await run(db_engine, settings, rules.oldest_message_age)
    assert finding.severity == "critical"
