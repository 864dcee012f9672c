"""The notifiers against real servers on loopback (SMTP sink, Slack stand-in), and the fan-out."""

from __future__ import annotations

import asyncio
import json
import logging
import uuid
from collections.abc import AsyncIterator
from contextlib import asynccontextmanager
from datetime import timedelta
from typing import Any

import aiosmtplib
import httpx
import pytest

from alert_factories import NOW
from alert_servers import free_port, slack_server, smtp_sink
from helpers import make_settings
from wa_outbound.alerts import Notice
from wa_outbound.alerts.mail import EmailNotifier
from wa_outbound.alerts.notify import LogNotifier, Notifier, build_notifiers, deliver
from wa_outbound.alerts.slack import SlackError, SlackNotifier
from wa_outbound.config import Settings
from wa_outbound.metrics import Metrics

REPORT = {
    "total_failed": 120,
    "by_channel": {"WHATSAPP": 120},
    "top_error_codes": [{"code": "190", "title": "Access token expired", "count": 80}],
    "window_hours": 24,
    "recommendations": ["190 (Access token expired): rotate WA_ACCESS_TOKEN, then replay"],
}


def notice(**overrides: Any) -> Notice:
    values: dict[str, Any] = {
        "alert_id": uuid.UUID(int=7),
        "type": "dlq_growth",
        "subject": "all",
        "severity": "critical",
        "kind": "firing",
        "summary": "120 messages in the dead-letter queue (threshold 100)",
        "at": NOW,
        "first_fired_at": NOW - timedelta(minutes=3),
        "figures": {"dlq_size": 120, "threshold": 100, "critical_at": 500},
        "report": REPORT,
    }
    values.update(overrides)
    return Notice(**values)


def email_settings(port: int, **overrides: Any) -> Settings:
    values: dict[str, Any] = {
        "smtp_host": "127.0.0.1",
        "smtp_port": port,
        "smtp_starttls": False,
        "alert_email_from": "alerts@example.com",
        "alert_email_recipients": "ops@example.com, oncall@example.com",
    }
    values.update(overrides)
    return make_settings("sqlite+aiosqlite:///unused.db", **values)


async def test_alert_email_has_the_subject_a_coloured_html_part_and_a_text_part() -> None:
    async with smtp_sink() as mailbox:
        await EmailNotifier(email_settings(mailbox.port)).send(notice())
    [message] = mailbox.messages
    assert message["Subject"] == "[wa-outbound] CRITICAL dlq_growth"
    assert message["From"] == "alerts@example.com"
    assert mailbox.recipients == [["ops@example.com", "oncall@example.com"]]
    text_part = message.get_body(("plain",))
    html_part = message.get_body(("html",))
    assert text_part is not None
    assert html_part is not None
    text, html = text_part.get_content(), html_part.get_content()
    assert "120 messages in the dead-letter queue" in text
    assert "dlq_size: 120" in text
    assert "top_error_codes_24h: 190: 80" in text
    assert "rotate WA_ACCESS_TOKEN" in text
    assert "#d93025" in html  # critical red
    assert "<th align='left'>dlq_size</th><td>120</td>" in html
    assert "rotate WA_ACCESS_TOKEN" in html


async def test_resolution_email_says_resolved_in_green() -> None:
    resolved = notice(kind="resolved", severity="warning", figures={}, report=None)
    async with smtp_sink() as mailbox:
        await EmailNotifier(email_settings(mailbox.port)).send(resolved)
    [message] = mailbox.messages
    assert message["Subject"] == "[wa-outbound] RESOLVED dlq_growth"
    html_part = message.get_body(("html",))
    assert html_part is not None
    assert "#188038" in html_part.get_content()


async def test_alert_email_logs_in_with_the_configured_credentials() -> None:
    async with smtp_sink(username="mailer", password="s3cret") as mailbox:
        settings = email_settings(mailbox.port, smtp_username="mailer", smtp_password="s3cret")
        await EmailNotifier(settings).send(notice())
    assert mailbox.logins == ["mailer"]
    assert len(mailbox.messages) == 1


async def test_required_starttls_refuses_a_server_without_it() -> None:
    async with smtp_sink() as mailbox:
        settings = email_settings(mailbox.port, smtp_starttls=True)
        with pytest.raises(aiosmtplib.SMTPException):
            await EmailNotifier(settings).send(notice())
    assert mailbox.messages == []


async def test_email_to_a_server_that_is_down_raises() -> None:
    with pytest.raises(aiosmtplib.SMTPConnectError):
        await EmailNotifier(email_settings(free_port())).send(notice())


async def test_slack_gets_an_attachment_coloured_by_severity_with_the_figures() -> None:
    async with slack_server() as slack:
        await SlackNotifier(slack.url).send(notice(severity="warning"))
    [post] = slack.posts
    assert post["text"] == "[wa-outbound] WARNING dlq_growth"
    [attachment] = post["attachments"]
    assert attachment["color"] == "#f29900"
    assert attachment["text"] == "120 messages in the dead-letter queue (threshold 100)"
    assert attachment["ts"] == int(NOW.timestamp())
    fields = {f["title"]: f["value"] for f in attachment["fields"]}
    assert fields["dlq_size"] == "120"
    assert fields["threshold"] == "100"
    assert fields["by_channel"] == "WHATSAPP: 120"
    assert "rotate WA_ACCESS_TOKEN" in fields["recommendations"]


async def test_slack_answering_500_is_a_failure() -> None:
    async with slack_server(status=500) as slack:
        with pytest.raises(SlackError, match="answered 500"):
            await SlackNotifier(slack.url).send(notice())
    assert len(slack.posts) == 1


async def test_slack_timeout_is_a_failure() -> None:
    def hang_up(request: httpx.Request) -> httpx.Response:
        raise httpx.ReadTimeout("timed out", request=request)

    notifier = SlackNotifier("https://hooks.slack.test/x", transport=httpx.MockTransport(hang_up))
    with pytest.raises(SlackError, match="ReadTimeout"):
        await notifier.send(notice())


@asynccontextmanager
async def failing_slack(how: str) -> AsyncIterator[str]:
    """A Slack webhook URL that fails: the stand-in answering 500 or 404, or nobody there."""
    if how == "refused":
        yield f"http://127.0.0.1:{free_port()}/services/T000/B000/XXX"
        return
    async with slack_server(status=int(how)) as slack:
        yield slack.url


@pytest.mark.parametrize("how", ["500", "404", "refused"])
async def test_the_slack_webhook_url_never_reaches_the_log(
    how: str, caplog: pytest.LogCaptureFixture
) -> None:
    caplog.set_level(logging.DEBUG)
    # As `logs.configure` holds them whatever WA_LOG_LEVEL says: httpx logs every URL at INFO.
    for library in ("httpx", "httpcore"):
        caplog.set_level(logging.WARNING, logger=library)
    metrics = Metrics()
    async with failing_slack(how) as url:
        settings = make_settings("sqlite+aiosqlite:///unused.db", alert_slack_webhook_url=url)
        outcome = await deliver(build_notifiers(settings), notice(), metrics)
    assert outcome["slack"] is False
    assert (
        metrics.registry.get_sample_value(
            "outbound_alert_notification_failures_total", {"notifier": "slack"}
        )
        == 1
    )
    [failure] = [r for r in caplog.records if r.getMessage().startswith("alert notifier failed")]
    assert "SlackError" in failure.getMessage()
    everything = caplog.text + "".join(repr(vars(record)) for record in caplog.records)
    for secret in (url, "/services/T000/B000/XXX", "T000/B000/XXX"):
        assert secret not in everything


async def test_slack_body_is_json_the_webhook_accepts() -> None:
    seen: list[dict[str, Any]] = []

    def accept(request: httpx.Request) -> httpx.Response:
        seen.append(json.loads(request.content))
        return httpx.Response(200, text="ok")

    notifier = SlackNotifier("https://hooks.slack.test/x", transport=httpx.MockTransport(accept))
    await notifier.send(notice(kind="resolved", figures={}, report=None))
    assert seen[0]["attachments"][0]["color"] == "#188038"
    assert seen[0]["attachments"][0]["fields"] == []


class Broken:
    name = "email"

    async def send(self, notice: Notice) -> None:
        raise ConnectionRefusedError("SMTP is down")


class Hanging:
    name = "slack"

    async def send(self, notice: Notice) -> None:
        await asyncio.Event().wait()


class Recorder:
    name = "recorder"

    def __init__(self) -> None:
        self.notices: list[Notice] = []

    async def send(self, notice: Notice) -> None:
        self.notices.append(notice)


async def test_one_notifier_failing_or_hanging_never_stops_the_others() -> None:
    metrics = Metrics()
    recorder = Recorder()
    notifiers: list[Notifier] = [Broken(), Hanging(), recorder, LogNotifier()]
    outcome = await deliver(notifiers, notice(), metrics, timeout_s=0.05)
    assert outcome == {"email": False, "slack": False, "recorder": True, "log": True}
    assert len(recorder.notices) == 1
    sample = metrics.registry.get_sample_value
    failures = "outbound_alert_notification_failures_total"
    assert sample(failures, {"notifier": "email"}) == 1
    assert sample(failures, {"notifier": "slack"}) == 1


async def test_sent_notifications_are_counted_by_severity() -> None:
    metrics = Metrics()
    async with smtp_sink() as mailbox, slack_server() as slack:
        settings = email_settings(mailbox.port, alert_slack_webhook_url=slack.url)
        notifiers = build_notifiers(settings)
        await deliver(notifiers, notice(severity="critical"), metrics)
        await deliver(notifiers, notice(kind="resolved"), metrics)
    sample = metrics.registry.get_sample_value
    assert sample("outbound_alert_email_sent_total", {"severity": "critical"}) == 1
    assert sample("outbound_alert_slack_sent_total", {"severity": "critical"}) == 1
    assert sample("outbound_alert_email_sent_total", {"severity": "resolved"}) == 1
    assert len(mailbox.messages) == 2
    assert len(slack.posts) == 2


def test_only_the_log_is_on_until_email_or_slack_is_configured() -> None:
    def names(**overrides: Any) -> list[str]:
        settings = make_settings("sqlite+aiosqlite:///unused.db", **overrides)
        return [n.name for n in build_notifiers(settings)]

    assert names() == ["log"]
    assert names(smtp_host="mail.example.com") == ["log"]  # no recipients
    assert names(smtp_host="mail.example.com", alert_email_recipients="a@example.com") == [
        "log",
        "email",
    ]
    assert names(alert_slack_webhook_url="https://hooks.slack.com/services/x") == ["log", "slack"]
