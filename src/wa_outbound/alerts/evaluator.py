"""The alert evaluator: every interval, on one replica only, run the rules, record the alert
state, then notify.

Leadership is a PostgreSQL transaction-level advisory lock taken by the evaluation's own
transaction: whoever holds it evaluates, the others skip this round, and a crashed leader's
lock goes with its connection. SQLite serves one process, which is always the leader.
Notifications go out after the commit, so no transaction is held open across SMTP or Slack.
"""

from __future__ import annotations

import asyncio
import logging
from collections.abc import Mapping, Sequence
from dataclasses import dataclass, field
from datetime import datetime

import sqlalchemy as sa
from sqlalchemy.ext.asyncio import AsyncConnection, AsyncEngine

from wa_outbound.alerts import state
from wa_outbound.alerts.model import Finding, Notice
from wa_outbound.alerts.notify import Notifier, build_notifiers, deliver
from wa_outbound.alerts.rules import RULES, Rule
from wa_outbound.config import Settings
from wa_outbound.db.dialect import is_postgres
from wa_outbound.db.types import utcnow
from wa_outbound.metrics import Metrics
from wa_outbound.workers import repeat

log = logging.getLogger(__name__)

# Any fixed bigint shared by every replica: "wa-alert" in ASCII.
LEADER_LOCK_KEY = int.from_bytes(b"wa-alert", "big")


@dataclass(slots=True)
class Evaluation:
    """What one round did; `leader` is False when another replica held the lock."""

    leader: bool
    findings: list[Finding] = field(default_factory=list)
    notices: list[Notice] = field(default_factory=list)
    failed_rules: list[str] = field(default_factory=list)


async def try_lead(conn: AsyncConnection) -> bool:
    """Take the leader lock for the rest of this transaction, if no other replica has it."""
    if not is_postgres(conn):
        return True
    query = sa.text("SELECT pg_try_advisory_xact_lock(:key)")
    return bool(await conn.scalar(query, {"key": LEADER_LOCK_KEY}))


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
        self._engine = engine
        self._metrics = metrics
        self._notifiers = list(build_notifiers(settings) if notifiers is None else notifiers)
        self._rules = dict(RULES if rules is None else rules)
        self._stopping = asyncio.Event()

    async def run(self) -> None:
        await repeat(
            self.run_once,
            every_s=self._settings.alert_interval_seconds,
            until=self._stopping,
            what="alert evaluation",
        )

    async def stop(self) -> None:
        self._stopping.set()

    async def run_once(self, now: datetime | None = None) -> Evaluation:
        now = now or utcnow()
        async with self._engine.begin() as conn:
            if not await try_lead(conn):
                return Evaluation(leader=False)
            evaluation = Evaluation(leader=True)
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
        for notice in evaluation.notices:
            await deliver(self._notifiers, notice, self._metrics)
        return evaluation
