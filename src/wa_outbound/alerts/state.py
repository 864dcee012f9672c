"""Alert state on the `alert` table: one row per incident, so a firing alert notifies once.

A finding with no firing row opens an incident and notifies. While it keeps firing it notifies
again only when its severity rises above the highest severity of the incident so far, or when
the cooldown since the last notification has passed. When a rule that ran finds it no longer,
the incident is resolved with one notice.

Hysteresis: a condition that comes back within the cooldown of its resolution reopens that
incident rather than opening a new one, silently (unless its severity rises above the
incident's highest); the reopened row keeps `resolved_at`, the time it last resolved. When it
resolves again and nothing was announced since the last resolution (`last_notified_at` is not
after `resolved_at`), it resolves silently too. So a flapping rule pages once, then at most
once per cooldown, like a condition that never cleared.

The caller owns the transaction, and runs this under the evaluator's leader lock, so the
partial unique index is never raced.
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
# In `details`: the notifiers that the incident's latest notice has not reached yet (delivery.py).
UNDELIVERED = "undelivered"


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
    recent = await _resolved_since(conn, now - cooldown) if cooldown_s > 0 else {}
    notices: list[Notice] = []
    seen: set[tuple[str, str]] = set()

    for finding in findings:
        seen.add(finding.key)
        row = firing.get(finding.key)
        if row is not None:
            notice = await _keep_firing(conn, row, finding, now=now, cooldown=cooldown)
        elif finding.key in recent:
            notice = await _reopen(conn, recent[finding.key], finding, now=now)
        else:
            notice = await _open(conn, finding, now=now)
        if notice is not None:
            notices.append(notice)

    evaluated = set(evaluated_types)
    for key, row in firing.items():
        if key in seen or row.type not in evaluated:
            continue
        notice = await _resolve(conn, row, now=now)
        if notice is not None:
            notices.append(notice)
    return notices


async def _resolved_since(conn: AsyncConnection, since: datetime) -> dict[tuple[str, str], Any]:
    """The latest incident of each alert that resolved after `since`."""
    rows = await conn.execute(
        sa.select(alert)
        .where(a.state == RESOLVED, a.resolved_at > since)
        .order_by(a.resolved_at, a.id)
    )
    return {(row.type, row.subject): row for row in rows}


async def _open(conn: AsyncConnection, finding: Finding, *, now: datetime) -> Notice:
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
    return firing_notice(alert_id, finding, now, first_fired_at=now)


async def _keep_firing(
    conn: AsyncConnection, row: Any, finding: Finding, *, now: datetime, cooldown: timedelta
) -> Notice | None:
    rises = SEVERITY_RANK[finding.severity] > SEVERITY_RANK[row.severity]
    due = row.last_notified_at is None or now - row.last_notified_at >= cooldown
    # The row keeps the incident's highest severity; the summary and figures are current, and
    # a notice still owed to a notifier stays owed.
    details = finding.details()
    if UNDELIVERED in row.details:
        details[UNDELIVERED] = row.details[UNDELIVERED]
    values: dict[str, Any] = {"summary": finding.summary, "details": details, "updated_at": now}
    if rises:
        values["severity"] = finding.severity
    notice = None
    if rises or due:
        values["last_notified_at"] = now
        values["notifications"] = a.notifications + 1
        notice = firing_notice(row.id, finding, now, first_fired_at=row.first_fired_at)
    await conn.execute(alert.update().where(a.id == row.id).values(**values))
    return notice


async def _reopen(
    conn: AsyncConnection, row: Any, finding: Finding, *, now: datetime
) -> Notice | None:
    """The condition is back within the cooldown of its resolution: the same incident, and no
    page unless it is worse than the incident has been. A resolution still owed to a notifier
    is owed no more."""
    values: dict[str, Any] = {
        "state": FIRING,
        "summary": finding.summary,
        "details": finding.details(),
        "updated_at": now,
    }
    if SEVERITY_RANK[finding.severity] <= SEVERITY_RANK[row.severity]:
        await conn.execute(alert.update().where(a.id == row.id).values(**values))
        return None
    values.update(
        severity=finding.severity, last_notified_at=now, notifications=a.notifications + 1
    )
    await conn.execute(alert.update().where(a.id == row.id).values(**values))
    return firing_notice(row.id, finding, now, first_fired_at=row.first_fired_at)


async def _resolve(conn: AsyncConnection, row: Any, *, now: datetime) -> Notice | None:
    # Silent when the incident was reopened silently: the last word anyone heard was its
    # previous resolution. A firing notice still owed is superseded by this resolution.
    announce = row.resolved_at is None or (
        row.last_notified_at is not None and row.last_notified_at > row.resolved_at
    )
    values: dict[str, Any] = {
        "state": RESOLVED,
        "resolved_at": now,
        "details": {k: v for k, v in row.details.items() if k != UNDELIVERED},
        "updated_at": now,
    }
    if announce:
        values.update(last_notified_at=now, notifications=a.notifications + 1)
    await conn.execute(alert.update().where(a.id == row.id).values(**values))
    return resolution_notice(row, resolved_at=now) if announce else None


def resolution_notice(row: Any, *, resolved_at: datetime) -> Notice:
    return Notice(
        alert_id=row.id,
        type=row.type,
        subject=row.subject,
        severity=row.severity,
        kind="resolved",
        summary=f"resolved after {_duration(resolved_at - row.first_fired_at)}; "
        f"last seen: {row.summary}",
        at=resolved_at,
        first_fired_at=row.first_fired_at,
    )


def firing_notice(
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
