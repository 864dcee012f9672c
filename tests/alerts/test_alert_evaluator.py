"""The evaluator end to end: real email and Slack, one leader on PostgreSQL that holds until its
connection goes, notices retried until delivered, the loop."""

from __future__ import annotations

import asyncio
from datetime import datetime, timedelta
from pathlib import Path
from typing import Any

import sqlalchemy as sa
from sqlalchemy.ext.asyncio import AsyncConnection, AsyncEngine

from alert_factories import NOW, add_dead
from alert_servers import free_port, slack_server, smtp_sink
from helpers import ADMIN, app_client, make_settings
from wa_outbound.alerts import AlertEvaluator, Finding, Notice
from wa_outbound.alerts.leader import LEADER_LOCK_KEY
from wa_outbound.alerts.rules import RULES
from wa_outbound.app import create_app
from wa_outbound.config import Settings
from wa_outbound.db import migrate
from wa_outbound.db.engine import create_engine
from wa_outbound.db.schema import alert
from wa_outbound.metrics import Metrics


class Recorder:
    name = "recorder"

    def __init__(self) -> None:
        self.notices: list[Notice] = []
        self.arrived = asyncio.Event()

    async def send(self, notice: Notice) -> None:
        self.notices.append(notice)
        self.arrived.set()


def alerting_settings(database_url: str, *, smtp_port: int, slack_url: str) -> Settings:
    """Email to ops@example.com through a loopback SMTP server, Slack to a loopback webhook; an
    alert when three messages are dead-lettered."""
    return make_settings(
        database_url,
        alert_dlq_threshold=3,
        smtp_host="127.0.0.1",
        smtp_port=smtp_port,
        smtp_starttls=False,
        alert_email_recipients="ops@example.com",
        alert_slack_webhook_url=slack_url,
    )


async def test_a_dlq_alert_reaches_email_and_slack_with_the_dlq_report(
    database_url: str, db_engine: AsyncEngine
) -> None:
    await add_dead(db_engine, 3, code="132001", title="Template name does not exist")
    metrics = Metrics()
    async with smtp_sink() as mailbox, slack_server() as slack:
        settings = alerting_settings(database_url, smtp_port=mailbox.port, slack_url=slack.url)
        evaluator = AlertEvaluator(settings, db_engine, metrics)
        evaluation = await evaluator.run_once(NOW)
        await evaluator.close()
    assert [n.type for n in evaluation.notices] == ["dlq_growth"]

    [message] = mailbox.messages
    assert message["Subject"] == "[wa-outbound] WARNING dlq_growth"
    text_part = message.get_body(("plain",))
    assert text_part is not None
    text = text_part.get_content()
    assert "3 messages in the dead-letter queue (threshold 3)" in text
    assert "top_error_codes_24h: 132001: 3" in text
    assert "check the template name and language" in text

    [post] = slack.posts
    [attachment] = post["attachments"]
    assert attachment["color"] == "#f29900"
    fields = {f["title"]: f["value"] for f in attachment["fields"]}
    assert fields["dlq_size"] == "3"
    assert fields["by_channel"] == "WHATSAPP: 3"

    sample = metrics.registry.get_sample_value
    assert sample("outbound_alert_email_sent_total", {"severity": "warning"}) == 1
    assert sample("outbound_alert_slack_sent_total", {"severity": "warning"}) == 1

    async with db_engine.connect() as conn:
        details = await conn.scalar(sa.select(alert.c.details))
    assert details is not None
    assert details["report"]["total_failed"] == 3


async def test_smtp_down_still_lets_slack_through_and_is_counted(
    database_url: str, db_engine: AsyncEngine
) -> None:
    await add_dead(db_engine, 3)
    metrics = Metrics()
    async with slack_server() as slack:
        settings = alerting_settings(database_url, smtp_port=free_port(), slack_url=slack.url)
        evaluator = AlertEvaluator(settings, db_engine, metrics)
        await evaluator.run_once(NOW)
        await evaluator.close()
    assert len(slack.posts) == 1
    sample = metrics.registry.get_sample_value
    assert sample("outbound_alert_notification_failures_total", {"notifier": "email"}) == 1
    assert sample("outbound_alert_slack_sent_total", {"severity": "warning"}) == 1


async def test_slack_failing_still_lets_the_email_through(
    database_url: str, db_engine: AsyncEngine
) -> None:
    await add_dead(db_engine, 3)
    metrics = Metrics()
    async with smtp_sink() as mailbox, slack_server(status=500) as slack:
        settings = alerting_settings(database_url, smtp_port=mailbox.port, slack_url=slack.url)
        evaluator = AlertEvaluator(settings, db_engine, metrics)
        await evaluator.run_once(NOW)
        await evaluator.close()
    assert len(mailbox.messages) == 1
    assert len(slack.posts) == 1
    sample = metrics.registry.get_sample_value
    assert sample("outbound_alert_notification_failures_total", {"notifier": "slack"}) == 1


async def test_two_evaluators_on_one_postgres_database_notify_once(postgres_url: str) -> None:
    settings = make_settings(postgres_url, alert_dlq_threshold=2)
    engines = [create_engine(settings) for _ in range(2)]
    recorders = [Recorder(), Recorder()]
    evaluators = [
        AlertEvaluator(settings, engine, Metrics(), [recorder])
        for engine, recorder in zip(engines, recorders, strict=True)
    ]
    try:
        await add_dead(engines[0], 2)
        for round_ in range(3):
            now = NOW + timedelta(seconds=round_)
            await asyncio.gather(*(e.run_once(now) for e in evaluators))
    finally:
        for evaluator in evaluators:
            await evaluator.close()
        for engine in engines:
            await engine.dispose()
    assert sum(len(r.notices) for r in recorders) == 1


async def test_an_evaluator_without_the_leader_lock_does_nothing(postgres_url: str) -> None:
    settings = make_settings(postgres_url, alert_dlq_threshold=2)
    engine = create_engine(settings)
    recorder = Recorder()
    evaluator = AlertEvaluator(settings, engine, Metrics(), [recorder])
    try:
        await add_dead(engine, 2)
        async with engine.begin() as other_replica:
            await other_replica.execute(
                sa.text("SELECT pg_advisory_xact_lock(:key)"), {"key": LEADER_LOCK_KEY}
            )
            follower = await evaluator.run_once(NOW)
        leader = await evaluator.run_once(NOW)
    finally:
        await evaluator.close()
        await engine.dispose()
    assert (follower.leader, follower.notices) == (False, [])
    assert leader.leader is True
    assert [n.type for n in recorder.notices] == ["dlq_growth"]


async def test_the_loop_survives_a_failing_evaluation_and_stops_when_asked(
    tmp_path: Path,
) -> None:
    # An empty database: every round fails (no alert table) until the schema appears.
    settings = make_settings(
        f"sqlite+aiosqlite:///{tmp_path / 'late.db'}",
        alert_dlq_threshold=1,
        alert_interval_seconds=0.01,
    )
    rounds = 0
    second_round = asyncio.Event()

    async def probe(conn: AsyncConnection, settings: Settings, now: datetime) -> list[Finding]:
        nonlocal rounds
        rounds += 1
        if rounds == 2:
            second_round.set()
        return []

    engine = create_engine(settings)
    recorder = Recorder()
    evaluator = AlertEvaluator(
        settings, engine, Metrics(), [recorder], rules={**RULES, "probe": probe}
    )
    task = asyncio.create_task(evaluator.run(), name="alert-evaluator-test")
    try:
        async with asyncio.timeout(30):
            await second_round.wait()
            await migrate.upgrade(engine)
            await add_dead(engine, 1)
            await recorder.arrived.wait()
        await evaluator.stop()
        await task
    finally:
        task.cancel()
        await engine.dispose()
    assert recorder.notices[0].type == "dlq_growth"


async def test_the_app_starts_the_evaluator_when_alerts_are_enabled(sqlite_url: str) -> None:
    settings = make_settings(sqlite_url, alert_enabled=True, alert_dlq_threshold=1)
    engine = create_engine(settings)
    try:
        await add_dead(engine, 1)
    finally:
        await engine.dispose()
    async with app_client(create_app(settings)) as client, asyncio.timeout(30):
        items: list[dict[str, Any]] = []
        while not items:
            response = await client.get("/v1/alerts", headers=ADMIN)
            items = response.json()["items"]
            await asyncio.sleep(0.05)
    assert items[0]["type"] == "dlq_growth"
    assert items[0]["state"] == "firing"
