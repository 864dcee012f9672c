"""The alert rules: each reads the outbox and returns what is wrong now, with its figures.

A rule is `async (conn, settings, now) -> list[Finding]`; an empty list means all clear, and
the alert state turns a firing alert of that type into a resolved one.
"""

from __future__ import annotations

from collections.abc import Awaitable, Callable
from datetime import datetime, timedelta

import sqlalchemy as sa
from sqlalchemy.ext.asyncio import AsyncConnection

from wa_outbound.alerts import callback_rules, sender_rules
from wa_outbound.alerts.model import ALL, Finding, Severity
from wa_outbound.config import Settings
from wa_outbound.db import dlq_counts
from wa_outbound.db.schema import outbound_message
from wa_outbound.dlq import report as dlq_report
from wa_outbound.status import CLAIMABLE, PENDING, Status

Rule = Callable[[AsyncConnection, Settings, datetime], Awaitable[list[Finding]]]

m = outbound_message.c
# Not held by a paused sender: the claim's own condition (and its partial index's).
NOT_PAUSED = sa.or_(m.waiting_reason.is_(None), m.waiting_reason != "sender_paused")

# Count rules turn critical at this multiple of their threshold.
CRITICAL_FACTOR = 5
FAILURE_RATE_WINDOW = timedelta(hours=1)
# Below this many outcomes in the window a rate means little: 1 failure of 2 pages nobody.
FAILURE_RATE_MIN_VOLUME = 20
# How long the oldest due message may wait for the dispatcher (no setting of its own yet).
OLDEST_WAIT_WARNING_S = 900
OLDEST_WAIT_CRITICAL_S = 3600


def _by_threshold(value: float, threshold: float) -> Severity:
    return "critical" if value >= CRITICAL_FACTOR * threshold else "warning"


def _sum_if(condition: sa.ColumnElement[bool]) -> sa.ColumnElement[int]:
    return sa.func.coalesce(sa.func.sum(sa.case((condition, 1), else_=0)), 0)


async def _count(conn: AsyncConnection, *where: sa.ColumnElement[bool]) -> int:
    query = sa.select(sa.func.count()).select_from(outbound_message).where(*where)
    return int(await conn.scalar(query) or 0)


async def dlq_growth(conn: AsyncConnection, settings: Settings, now: datetime) -> list[Finding]:
    threshold = settings.alert_dlq_threshold
    size = await dlq_counts.total(conn)
    if size < threshold:
        return []
    return [
        Finding(
            type="dlq_growth",
            subject=ALL,
            severity=_by_threshold(size, threshold),
            summary=f"{size} messages in the dead-letter queue (threshold {threshold})",
            figures={
                "dlq_size": size,
                "threshold": threshold,
                "critical_at": CRITICAL_FACTOR * threshold,
            },
            report=await dlq_report.report(conn, org_id=None, now=now),
        )
    ]


async def stuck_messages(conn: AsyncConnection, settings: Settings, now: datetime) -> list[Finding]:
    age = timedelta(seconds=settings.alert_stuck_age_seconds)
    retried = sa.and_(
        m.status.in_(PENDING),
        m.attempts >= settings.alert_stuck_attempts,
        m.created_at < now - age,
    )
    # One lease of grace: a dispatcher reclaims an expired lease on its next claim.
    past_lease = sa.and_(
        m.status == Status.SENDING,
        m.lease_until < now - timedelta(seconds=settings.lease_seconds),
    )
    unconfirmed = sa.and_(m.status == Status.ACCEPTED, m.accepted_at < now - age)
    row = (
        await conn.execute(
            sa.select(
                sa.func.count(), _sum_if(retried), _sum_if(past_lease), _sum_if(unconfirmed)
            ).where(sa.or_(retried, past_lease, unconfirmed))
        )
    ).one()
    total, n_retried, n_past_lease, n_unconfirmed = (int(value) for value in row)
    if total == 0:
        return []
    return [
        Finding(
            type="stuck_messages",
            subject=ALL,
            severity="warning",
            summary=f"{total} messages are stuck: {n_retried} retried for too long, "
            f"{n_past_lease} SENDING past their lease, {n_unconfirmed} ACCEPTED with no status",
            figures={
                "stuck": total,
                "retried_too_long": n_retried,
                "sending_past_lease": n_past_lease,
                "accepted_without_status": n_unconfirmed,
                "stuck_attempts": settings.alert_stuck_attempts,
                "stuck_age_seconds": settings.alert_stuck_age_seconds,
            },
        )
    ]


async def queue_depth(conn: AsyncConnection, settings: Settings, now: datetime) -> list[Finding]:
    threshold = settings.alert_queue_depth_threshold
    depth = await _count(conn, m.status.in_(PENDING))
    if depth < threshold:
        return []
    due = await _count(conn, m.status.in_(CLAIMABLE), m.next_attempt_at <= now)
    return [
        Finding(
            type="queue_depth",
            subject=ALL,
            severity=_by_threshold(depth, threshold),
            summary=f"{depth} messages waiting to be sent (threshold {threshold})",
            figures={
                "queue_depth": depth,
                "due_now": due,
                "threshold": threshold,
                "critical_at": CRITICAL_FACTOR * threshold,
            },
        )
    ]


async def failure_rate(conn: AsyncConnection, settings: Settings, now: datetime) -> list[Finding]:
    since = now - FAILURE_RATE_WINDOW
    # A revoked consent is the integrator's decision, not a delivery failure.
    failed = sa.and_(
        m.status == Status.FAILED,
        m.failed_at >= since,
        sa.or_(m.error_code.is_(None), m.error_code != "consent_revoked"),
    )
    accepted = m.accepted_at >= since
    rows = await conn.execute(
        sa.select(m.channel, sa.func.count(), _sum_if(failed))
        .where(sa.or_(failed, accepted))
        .group_by(m.channel)
        .order_by(m.channel)
    )
    threshold = settings.alert_failure_rate_threshold
    findings = []
    for channel, total, n_failed in rows:
        rate = int(n_failed) / int(total)
        if int(total) < FAILURE_RATE_MIN_VOLUME or rate < threshold:
            continue
        critical = rate >= min(1.0, 2 * threshold)
        findings.append(
            Finding(
                type="failure_rate",
                subject=channel,
                severity="critical" if critical else "warning",
                summary=f"{rate:.0%} of {channel} messages failed in the last hour "
                f"({n_failed} of {total}; threshold {threshold:.0%})",
                figures={
                    "channel": channel,
                    "failure_rate": round(rate, 4),
                    "failed_1h": int(n_failed),
                    "outcomes_1h": int(total),
                    "threshold": threshold,
                    "min_volume": FAILURE_RATE_MIN_VOLUME,
                },
            )
        )
    return findings


async def escalation(conn: AsyncConnection, settings: Settings, now: datetime) -> list[Finding]:
    attempts = settings.alert_escalation_attempts
    # Waiting for yet another attempt; an attempt in flight (SENDING) may still succeed.
    row = (
        await conn.execute(
            sa.select(sa.func.count(), sa.func.max(m.attempts)).where(
                m.status.in_(CLAIMABLE), m.attempts >= attempts
            )
        )
    ).one()
    count, most = int(row[0]), int(row[1] or 0)
    if count == 0:
        return []
    return [
        Finding(
            type="escalation",
            subject=ALL,
            severity="critical",
            summary=f"{count} messages failed {attempts} or more attempts and are still retried",
            figures={"messages": count, "escalation_attempts": attempts, "most_attempts": most},
        )
    ]


async def oldest_message_age(
    conn: AsyncConnection, settings: Settings, now: datetime
) -> list[Finding]:
    """How long the oldest message that is due has been waiting for the dispatcher. Messages
    scheduled for later (send_after, backoff, quota) are not due, so they do not count; nor do
    those of a paused sender (`sender_paused` says so)."""
    row = (
        await conn.execute(
            sa.select(m.next_attempt_at, m.created_at)
            .where(m.status.in_(CLAIMABLE), m.next_attempt_at <= now, NOT_PAUSED)
            .order_by(m.next_attempt_at)
            .limit(1)
        )
    ).first()
    if row is None:
        return []
    waited_s = int((now - row.next_attempt_at).total_seconds())
    if waited_s < OLDEST_WAIT_WARNING_S:
        return []
    return [
        Finding(
            type="oldest_message_age",
            subject=ALL,
            severity="critical" if waited_s >= OLDEST_WAIT_CRITICAL_S else "warning",
            summary=f"the oldest due message has waited {waited_s} s to be sent",
            figures={
                "oldest_wait_seconds": waited_s,
                "oldest_age_seconds": int((now - row.created_at).total_seconds()),
                "warning_at_seconds": OLDEST_WAIT_WARNING_S,
                "critical_at_seconds": OLDEST_WAIT_CRITICAL_S,
            },
        )
    ]


RULES: dict[str, Rule] = {
    "dlq_growth": dlq_growth,
    "stuck_messages": stuck_messages,
    "queue_depth": queue_depth,
    "failure_rate": failure_rate,
    "escalation": escalation,
    "oldest_message_age": oldest_message_age,
    "sender_paused": sender_rules.sender_paused,
    "messaging_limit": sender_rules.messaging_limit,
    "callback_endpoint_disabled": callback_rules.callback_endpoint_disabled,
}
