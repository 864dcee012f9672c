"""The alert evaluator: every interval, on one replica only, run the rules, record the alert
state, then notify, and retry what a notifier failed to take before.

One replica leads at a time (leader.py: a PostgreSQL session-level advisory lock on the
leader's own connection; SQLite: the only process) and evaluates on the leader's connection.
Notifications go out after the commit, so no transaction is held open across SMTP or Slack;
what they could not deliver is kept on the alert rows (delivery.py).
"""

from __future__ import annotations

import asyncio
import logging
import uuid
from collections.abc import Mapping, Sequence
from dataclasses import dataclass, field
from datetime import datetime

from sqlalchemy.ext.asyncio import AsyncConnection, AsyncEngine

from wa_outbound.alerts import delivery, state
from wa_outbound.alerts.leader import Leadership
from wa_outbound.alerts.model import Finding, Notice
from wa_outbound.alerts.notify import Notifier, build_notifiers, deliver
from wa_outbound.alerts.rules import RULES, Rule
from wa_outbound.config import Settings
from wa_outbound.db.types import utcnow
from wa_outbound.metrics import Metrics
from wa_outbound.workers import repeat

log = logging.getLogger(__name__)


@dataclass(slots=True)
class Evaluation:
    """What one round did; `leader` is False when another replica leads. `retries`: notices
    sent again, each to the notifiers that had failed to take it."""

    leader: bool
    findings: list[Finding] = field(default_factory=list)
    notices: list[Notice] = field(default_factory=list)
    retries: list[tuple[Notice, frozenset[str]]] = field(default_factory=list)
    failed_rules: list[str] = field(default_factory=list)


class AlertEvaluator:
    """Evaluates the alert rules every `WA_ALERT_INTERVAL_SECONDS` until stopped."""

    def __init__(
        self,
        settings: Settings,
        engine: AsyncEngine,
        metrics: Metrics,
        notifiers: Sequence[Notifier] | None = None,
        *,
        rules: Mapping[str, Rule] | None = None,
    ) -> None:
        self._settings = settings
        self._metrics = metrics
        self._notifiers = list(build_notifiers(settings) if notifiers is None else notifiers)
        self._rules = dict(RULES if rules is None else rules)
        self._leadership = Leadership(engine)
        self._stopping = asyncio.Event()

    async def run(self) -> None:
        try:
            await repeat(
                self.run_once,
                every_s=self._settings.alert_interval_seconds,
                until=self._stopping,
                what="alert evaluation",
            )
        finally:
            await self.close()

    async def stop(self) -> None:
        self._stopping.set()

    async def close(self) -> None:
        """Step down: another replica leads from its next round (`run` does this on exit)."""
        await self._leadership.release()

    async def run_once(self, now: datetime | None = None) -> Evaluation:
        now = now or utcnow()
        async with self._leadership.round() as conn:
            if conn is None:
                return Evaluation(leader=False)
            evaluation = Evaluation(leader=True)
            async with conn.begin():
                await self._evaluate(conn, evaluation, now)
            failed = await self._send(evaluation)
            if failed:
                async with conn.begin():
                    await delivery.settle(conn, failed)
        return evaluation

    async def _evaluate(self, conn: AsyncConnection, evaluation: Evaluation, now: datetime) -> None:
        for name, rule in self._rules.items():
            try:
                # A savepoint per rule: one rule's failure must not abort the others.
                async with conn.begin_nested():
                    evaluation.findings += await rule(conn, self._settings, now)
            except Exception:
                log.exception("alert rule failed", extra={"rule": name})
                evaluation.failed_rules.append(name)
        evaluated = [name for name in self._rules if name not in evaluation.failed_rules]
        evaluation.notices = await state.apply_findings(
            conn,
            findings=evaluation.findings,
            evaluated_types=evaluated,
            now=now,
            cooldown_s=self._settings.alert_cooldown_seconds,
        )
        evaluation.retries = await delivery.owed(
            conn,
            findings=evaluation.findings,
            skip={notice.alert_id for notice in evaluation.notices},
            now=now,
        )
        await delivery.owe(conn, evaluation.notices, [n.name for n in self._notifiers])

    async def _send(self, evaluation: Evaluation) -> dict[uuid.UUID, list[str]]:
        """Deliver the round's notices and retries; the notifiers that failed, by alert."""
        sends: list[tuple[Notice, frozenset[str] | None]] = [
            (notice, None) for notice in evaluation.notices
        ]
        sends += evaluation.retries
        failed: dict[uuid.UUID, list[str]] = {}
        for notice, only in sends:
            outcome = await deliver(self._notifiers, notice, self._metrics, only=only)
            failed[notice.alert_id] = [name for name, ok in outcome.items() if not ok]
        return failed
