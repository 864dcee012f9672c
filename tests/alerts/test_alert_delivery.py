"""Notices a notifier failed to take are sent again at later rounds, to that notifier only,
until it takes them or the incident moves on; a leader that dies mid-send leaves them to the
next one."""

from __future__ import annotations

import asyncio
from datetime import timedelta
from typing import Any

import sqlalchemy as sa
from sqlalchemy.ext.asyncio import AsyncEngine

from alert_factories import NOW, add_dead
from alert_servers import free_port, slack_server, smtp_sink
from helpers import make_settings
from wa_outbound.alerts import AlertEvaluator, Notice
from wa_outbound.config import Settings
from wa_outbound.db.schema import alert, outbound_message
from wa_outbound.metrics import Metrics

MINUTE = timedelta(minutes=1)


def alerting_settings(database_url: str, *, smtp_port: int, slack_url: str) -> Settings:
    return make_settings(
        database_url,
        alert_dlq_threshold=3,
        smtp_host="127.0.0.1",
        smtp_port=smtp_port,
        smtp_starttls=False,
        alert_email_recipients="ops@example.com",
        alert_slack_webhook_url=slack_url,
    )


async def alert_details(engine: AsyncEngine) -> dict[str, Any]:
    async with engine.connect() as conn:
        details = await conn.scalar(sa.select(alert.c.details))
    assert isinstance(details, dict)
    return details


async def test_smtp_down_then_up_the_notification_arrives_once_after_it_returns(
    database_url: str, db_engine: AsyncEngine
) -> None:
    await add_dead(db_engine, 3)
    smtp_port = free_port()  # nothing listens there yet
    metrics = Metrics()
    async with slack_server() as slack:
        settings = alerting_settings(database_url, smtp_port=smtp_port, slack_url=slack.url)
        evaluator = AlertEvaluator(settings, db_engine, metrics)
        try:
            first = await evaluator.run_once(NOW)
            assert [n.kind for n in first.notices] == ["firing"]
            assert (await alert_details(db_engine))["undelivered"] == ["email"]

            still_down = await evaluator.run_once(NOW + MINUTE)
            assert [(n.kind, sorted(only)) for n, only in still_down.retries] == [
                ("firing", ["email"])
            ]

            async with smtp_sink(port=smtp_port) as mailbox:
                back = await evaluator.run_once(NOW + 2 * MINUTE)
                after = await evaluator.run_once(NOW + 3 * MINUTE)
        finally:
            await evaluator.close()
    assert len(back.retries) == 1
    assert after.retries == []
    [message] = mailbox.messages
    assert message["Subject"] == "[wa-outbound] WARNING dlq_growth"
    assert len(slack.posts) == 1  # Slack took it the first time: never sent again
    assert "undelivered" not in await alert_details(db_engine)
    sample = metrics.registry.get_sample_value
    assert sample("outbound_alert_notification_failures_total", {"notifier": "email"}) == 2
    assert sample("outbound_alert_email_sent_total", {"severity": "warning"}) == 1
    assert sample("outbound_alert_slack_sent_total", {"severity": "warning"}) == 1


async def test_a_firing_notice_still_owed_gives_way_to_the_resolution(
    database_url: str, db_engine: AsyncEngine
) -> None:
    await add_dead(db_engine, 3)
    smtp_port = free_port()
    async with slack_server() as slack:
        settings = alerting_settings(database_url, smtp_port=smtp_port, slack_url=slack.url)
        evaluator = AlertEvaluator(settings, db_engine, Metrics())
        try:
            await evaluator.run_once(NOW)  # the email fails
            async with db_engine.begin() as conn:
                await conn.execute(outbound_message.delete())
            async with smtp_sink(port=smtp_port) as mailbox:
                resolved = await evaluator.run_once(NOW + MINUTE)
                await evaluator.run_once(NOW + 2 * MINUTE)
        finally:
            await evaluator.close()
    assert [n.kind for n in resolved.notices] == ["resolved"]
    assert resolved.retries == []
    assert [m["Subject"] for m in mailbox.messages] == ["[wa-outbound] RESOLVED dlq_growth"]
    assert [p["text"] for p in slack.posts] == [
        "[wa-outbound] WARNING dlq_growth",
        "[wa-outbound] RESOLVED dlq_growth",
    ]


class Recorder:
    name = "recorder"

    def __init__(self) -> None:
        self.notices: list[Notice] = []

    async def send(self, notice: Notice) -> None:
        self.notices.append(notice)


class Stuck:
    """The same notifier on a replica that dies while sending (SMTP hanging, then SIGKILL)."""

    name = "recorder"

    def __init__(self) -> None:
        self.sending = asyncio.Event()

    async def send(self, notice: Notice) -> None:
        self.sending.set()
        await asyncio.Event().wait()


async def test_a_leader_that_dies_while_sending_leaves_the_notice_to_the_next(
    database_url: str, db_engine: AsyncEngine
) -> None:
    await add_dead(db_engine, 2)
    settings = make_settings(database_url, alert_dlq_threshold=2)
    stuck, recorder = Stuck(), Recorder()
    dying = AlertEvaluator(settings, db_engine, Metrics(), [stuck])
    task = asyncio.create_task(dying.run_once(NOW), name="dying-leader")
    await asyncio.wait_for(stuck.sending.wait(), 30)
    task.cancel()  # the process is gone: nothing after the commit ran
    await asyncio.gather(task, return_exceptions=True)
    await dying.close()

    successor = AlertEvaluator(settings, db_engine, Metrics(), [recorder])
    try:
        evaluation = await successor.run_once(NOW + MINUTE)
        again = await successor.run_once(NOW + 2 * MINUTE)
    finally:
        await successor.close()
    assert evaluation.notices == []  # the alert state was committed: no new notice
    assert [(n.type, n.kind) for n in recorder.notices] == [("dlq_growth", "firing")]
    assert again.retries == []
