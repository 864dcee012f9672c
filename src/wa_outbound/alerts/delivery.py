"""Notices owed to a notifier: kept on the alert row until delivered, retried every round.

Before a notice is sent, the alert's `details.undelivered` lists every notifier (`owe`), in
the transaction that records the alert state: a leader that dies mid-send leaves the notice to
the next leader. After sending, it lists the notifiers that failed (`settle`), and each later
round sends the notice again to those only (`owed`), until they take it, or the incident moves
on: a firing notice is owed until the alert resolves (the resolution then goes to everyone),
a resolution until the alert fires again or for RESOLUTION_RETRY at most.
"""

from __future__ import annotations

import uuid
from collections.abc import Collection, Mapping
from datetime import datetime, timedelta
from typing import Any

import sqlalchemy as sa
from sqlalchemy.ext.asyncio import AsyncConnection

from wa_outbound.alerts.model import Finding, Notice
from wa_outbound.alerts.state import (
    FIRING,
    RESOLVED,
    UNDELIVERED,
    firing_notice,
    resolution_notice,
)
from wa_outbound.db.schema import alert

a = alert.c
RESOLUTION_RETRY = timedelta(hours=24)


async def owe(
    conn: AsyncConnection, notices: Collection[Notice], notifiers: Collection[str]
) -> None:
    """Every notifier owes each of `notices` until `settle` says otherwise."""
    await _set_undelivered(conn, {notice.alert_id: notifiers for notice in notices})


async def settle(conn: AsyncConnection, failed: Mapping[uuid.UUID, Collection[str]]) -> None:
    """After sending: each alert's notice is owed by the notifiers that failed, and no other."""
    await _set_undelivered(conn, failed)


async def owed(
    conn: AsyncConnection,
    *,
    findings: Collection[Finding],
    skip: Collection[uuid.UUID],
    now: datetime,
) -> list[tuple[Notice, frozenset[str]]]:
    """The notices to send again, each with the notifiers that still owe it. `skip`: alerts
    that have a new notice this round (it goes to every notifier)."""
    rows = await conn.execute(
        sa.select(alert).where(
            sa.or_(
                a.state == FIRING,
                sa.and_(a.state == RESOLVED, a.resolved_at >= now - RESOLUTION_RETRY),
            )
        )
    )
    found = {finding.key: finding for finding in findings}
    retries = []
    for row in rows:
        notifiers = row.details.get(UNDELIVERED)
        if not notifiers or row.id in skip:
            continue
        retries.append(
            (_notice(row, found.get((row.type, row.subject)), now), frozenset(notifiers))
        )
    return retries


def _notice(row: Any, finding: Finding | None, now: datetime) -> Notice:
    if row.state == RESOLVED:
        return resolution_notice(row, resolved_at=row.resolved_at)
    if finding is None:  # its rule failed this round: what the row last recorded
        figures = {k: v for k, v in row.details.items() if k not in ("report", UNDELIVERED)}
        finding = Finding(
            type=row.type,
            subject=row.subject,
            severity=row.severity,
            summary=row.summary,
            figures=figures,
            report=row.details.get("report"),
        )
    return firing_notice(row.id, finding, now, first_fired_at=row.first_fired_at)


async def _set_undelivered(
    conn: AsyncConnection, undelivered: Mapping[uuid.UUID, Collection[str]]
) -> None:
    if not undelivered:
        return
    rows = await conn.execute(sa.select(a.id, a.details).where(a.id.in_(list(undelivered))))
    for alert_id, details in rows:
        names = sorted(undelivered[alert_id])
        if details.get(UNDELIVERED, []) == names:
            continue
        changed = {k: v for k, v in details.items() if k != UNDELIVERED}
        if names:
            changed[UNDELIVERED] = names
        await conn.execute(alert.update().where(a.id == alert_id).values(details=changed))
