"""Alert state on the `alert` table: one row per incident, so a firing alert notifies once.

A finding with no firing row opens an incident and notifies. While it keeps firing it notifies
again only when its severity rises above the highest severity of the incident so far, or when
the cooldown since the last notification has passed. When a rule that ran finds it no longer,
the incident is resolved with one notice. The caller owns the transaction, and runs this under
the evaluator's leader lock, so the partial unique index is never raced.
"""

from __future__ import annotations

import uuid
from collections.abc import Iterable
from datetime import datetime, timedelta
from typing import Any

import sqlalchemy as sa
from sqlalchemy.ext.asyncio import AsyncConnection

from wa_outbound.alerts.model import SEVERITY_RANK, Finding, Notice
from wa_outbound.db.pagination import newest_first
from wa_outbound.db.schema import alert

a = alert.c
FIRING = "firing"
RESOLVED = "resolved"


async def apply_findings(
    conn: AsyncConnection,
    *,
    findings: Iterable[Finding],
    evaluated_types: Iterable[str],
    now: datetime,
    cooldown_s: float,
) -> list[Notice]:
    """Record what the rules found; return the notices to send once this commits.

    Only alerts of `evaluated_types` may resolve: a rule that failed this time says nothing
    about whether its condition cleared.
    """
    rows = await conn.execute(sa.select(alert).where(a.state == FIRING))
    firing = {(row.type, row.subject): row for row in rows}
    cooldown = timedelta(seconds=cooldown_s)
    notices: list[Notice] = []
    seen: set[tuple[str, str]] = set()

    for finding in findings:
        seen.add(finding.key)
        row = firing.get(finding.key)
        if row is None:
            alert_id = uuid.uuid4()
            await conn.execute(
                alert.insert().values(
                    id=alert_id,
                    type=finding.type,
                    subject=finding.subject,
                    severity=finding.severity,
                    state=FIRING,
                    summary=finding.summary,
                    details=finding.details(),
                    first_fired_at=now,
                    last_notified_at=now,
                    resolved_at=None,
                    notifications=1,
                    updated_at=now,
                )
            )
            notices.append(_firing_notice(alert_id, finding, now, first_fired_at=now))
            continue

        rises = SEVERITY_RANK[finding.severity] > SEVERITY_RANK[row.severity]
        due = row.last_notified_at is None or now - row.last_notified_at >= cooldown
        # The row keeps the incident's highest severity; the summary and figures are current.
        values: dict[str, Any] = {
            "summary": finding.summary,
            "details": finding.details(),
            "updated_at": now,
        }
        if rises:
            values["severity"] = finding.severity
        if rises or due:
            values["last_notified_at"] = now
            values["notifications"] = a.notifications + 1
            notices.append(_firing_notice(row.id, finding, now, first_fired_at=row.first_fired_at))
        await conn.execute(alert.update().where(a.id == row.id).values(**values))

    evaluated = set(evaluated_types)
    for key, row in firing.items():
        if key in seen or row.type not in evaluated:
            continue
        await conn.execute(
            alert.update()
            .where(a.id == row.id)
            .values(
                state=RESOLVED,
                resolved_at=now,
                last_notified_at=now,
                notifications=a.notifications + 1,
                updated_at=now,
            )
        )
        notices.append(
            Notice(
                alert_id=row.id,
                type=row.type,
                subject=row.subject,
                severity=row.severity,
                kind="resolved",
                summary=f"resolved after {_duration(now - row.first_fired_at)}; "
                f"last seen: {row.summary}",
                at=now,
                first_fired_at=row.first_fired_at,
            )
        )
    return notices


def _firing_notice(
    alert_id: uuid.UUID, finding: Finding, now: datetime, *, first_fired_at: datetime
) -> Notice:
    return Notice(
        alert_id=alert_id,
        type=finding.type,
        subject=finding.subject,
        severity=finding.severity,
        kind="firing",
        summary=finding.summary,
        at=now,
        first_fired_at=first_fired_at,
        figures=finding.figures,
        report=finding.report,
    )


def _duration(delta: timedelta) -> str:
    minutes = int(delta.total_seconds() // 60)
    if minutes < 60:
        return f"{minutes} min"
    return f"{minutes // 60} h {minutes % 60} min"


async def list_alerts(
    conn: AsyncConnection, *, state: str | None, limit: int, cursor: str | None
) -> tuple[list[dict[str, Any]], str | None]:
    """Alert history, newest incident first, keyset-paginated on (first_fired_at, id)."""
    query = sa.select(alert)
    if state is not None:
        query = query.where(a.state == state)
    return await newest_first(
        conn, query, at=a.first_fired_at, row_id=a.id, limit=limit, cursor=cursor
    )
