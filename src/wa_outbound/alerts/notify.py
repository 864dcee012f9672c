"""Fan a notice out to every enabled notifier; one failing never stops the others."""

from __future__ import annotations

import asyncio
import logging
from collections.abc import Collection, Sequence
from typing import Protocol

from prometheus_client import Counter

from wa_outbound.alerts.mail import EmailNotifier
from wa_outbound.alerts.model import Notice
from wa_outbound.alerts.slack import SlackNotifier
from wa_outbound.config import Settings
from wa_outbound.metrics import Metrics

log = logging.getLogger(__name__)

# The outer bound on one notifier, whatever its own timeouts: the loop must go on.
NOTIFY_TIMEOUT_S = 30.0


class Notifier(Protocol):
    """Sends one notice somewhere; raises when it could not."""

    name: str

    async def send(self, notice: Notice) -> None: ...


class LogNotifier:
    """Every notice as one structured log line: the channel that is always on."""

    name = "log"

    async def send(self, notice: Notice) -> None:
        level = logging.INFO if notice.kind == "resolved" else logging.WARNING
        log.log(
            level,
            "%s: %s",
            notice.heading,
            notice.summary,
            extra={
                "alert_id": str(notice.alert_id),
                "alert_type": notice.type,
                "alert_subject": notice.subject,
                "alert_severity": notice.severity,
                "alert_kind": notice.kind,
                "figures": notice.figures,
            },
        )


def build_notifiers(settings: Settings) -> list[Notifier]:
    """The log, plus email when a host and recipients are set, plus Slack when a URL is."""
    notifiers: list[Notifier] = [LogNotifier()]
    if settings.smtp_host and settings.alert_email_recipients:
        notifiers.append(EmailNotifier(settings))
    if settings.alert_slack_webhook_url:
        notifiers.append(SlackNotifier(settings.alert_slack_webhook_url))
    return notifiers


async def deliver(
    notifiers: Sequence[Notifier],
    notice: Notice,
    metrics: Metrics,
    *,
    only: Collection[str] | None = None,
    timeout_s: float = NOTIFY_TIMEOUT_S,
) -> dict[str, bool]:
    """Send `notice` through every notifier at once (or those named in `only`: a retry);
    returns which succeeded."""
    if only is not None:
        notifiers = [n for n in notifiers if n.name in only]

    async def one(notifier: Notifier) -> None:
        async with asyncio.timeout(timeout_s):
            await notifier.send(notice)

    results = await asyncio.gather(*(one(n) for n in notifiers), return_exceptions=True)
    sent_counters: dict[str, Counter] = {
        "email": metrics.alert_email_sent,
        "slack": metrics.alert_slack_sent,
    }
    outcome: dict[str, bool] = {}
    label = "resolved" if notice.kind == "resolved" else notice.severity
    for notifier, result in zip(notifiers, results, strict=True):
        if isinstance(result, BaseException):
            if isinstance(result, asyncio.CancelledError):
                raise result
            metrics.alert_notify_failures.labels(notifier=notifier.name).inc()
            log.warning(
                "alert notifier failed: %s: %s",
                type(result).__name__,
                result,
                extra={"notifier": notifier.name, "alert_id": str(notice.alert_id)},
            )
            outcome[notifier.name] = False
            continue
        if notifier.name in sent_counters:
            sent_counters[notifier.name].labels(severity=label).inc()
        outcome[notifier.name] = True
    return outcome
