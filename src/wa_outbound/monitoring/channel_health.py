"""Channel health for one organisation: what waits, what failed for good, and the last hour.

The figures follow the alert rules: a failure is a FAILED message whose `failed_at` falls in
the hour, revoked consents excepted (the integrator's decision, not a delivery failure); the
failure rate is failed ÷ (messages accepted or failed in the hour).

`p95_send_seconds` is the 95th percentile, over the hour's accepted messages, of
`accepted_at - next_attempt_at`: from the moment a message was due (queued, or its
`send_after`, backoff or quota wait over) to Meta's answer with a wamid. Waits the service
imposes on purpose are left out; the dispatcher's lag and the request to Meta are in. It is
computed in Python from the hour's most recent `SAMPLE_SIZE` acceptances, so the cost stays
bounded however busy the organisation is.
"""

from __future__ import annotations

from collections.abc import Sequence
from datetime import datetime, timedelta
from typing import Any

import sqlalchemy as sa
from sqlalchemy.ext.asyncio import AsyncConnection

from wa_outbound.db import dlq_counts
from wa_outbound.db.schema import outbound_message
from wa_outbound.status import CHANNEL_WHATSAPP, PENDING, RANK, Status

m = outbound_message.c
WINDOW = timedelta(hours=1)
SAMPLE_SIZE = 1000
# A message accepted in the window is in one of these now (or back in the queue after a
# replay, whose next_attempt_at then no longer belongs to that acceptance).
_AFTER_ACCEPTANCE = (*RANK, Status.FAILED)


def _sum_if(condition: sa.ColumnElement[bool]) -> sa.ColumnElement[int]:
    return sa.func.coalesce(sa.func.sum(sa.case((condition, 1), else_=0)), 0)


def percentile(values: Sequence[float], q: float) -> float | None:
    """Linear interpolation between closest ranks (PostgreSQL's percentile_cont)."""
    if not values:
        return None
    ordered = sorted(values)
    rank = q * (len(ordered) - 1)
    low = int(rank)
    high = min(low + 1, len(ordered) - 1)
    return ordered[low] + (ordered[high] - ordered[low]) * (rank - low)


async def channel_health(
    conn: AsyncConnection, *, org_id: str, now: datetime
) -> dict[str, dict[str, Any]]:
    """`{"WHATSAPP": {queue_depth, dlq_size, sent_1h, failed_1h, failure_rate_1h,
    p95_send_seconds}}` for one organisation."""
    since = now - WINDOW
    mine = sa.and_(m.org_id == org_id, m.channel == CHANNEL_WHATSAPP)
    accepted = m.accepted_at >= since
    failed = sa.and_(
        m.status == Status.FAILED,
        m.failed_at >= since,
        sa.or_(m.error_code.is_(None), m.error_code != "consent_revoked"),
    )
    queue_depth = await conn.scalar(sa.select(sa.func.count()).where(mine, m.status.in_(PENDING)))
    dlq_size = (await dlq_counts.by_channel(conn, org_id=org_id)).get(CHANNEL_WHATSAPP, 0)
    outcomes, sent, failures = (
        await conn.execute(
            sa.select(sa.func.count(), _sum_if(accepted), _sum_if(failed)).where(
                mine, sa.or_(accepted, failed)
            )
        )
    ).one()
    sample = await conn.execute(
        sa.select(m.accepted_at, m.next_attempt_at)
        .where(mine, accepted, m.status.in_(_AFTER_ACCEPTANCE))
        .order_by(m.accepted_at.desc())
        .limit(SAMPLE_SIZE)
    )
    waits = [max(0.0, (row.accepted_at - row.next_attempt_at).total_seconds()) for row in sample]
    p95 = percentile(waits, 0.95)
    return {
        CHANNEL_WHATSAPP: {
            "queue_depth": int(queue_depth or 0),
            "dlq_size": dlq_size,
            "sent_1h": int(sent),
            "failed_1h": int(failures),
            "failure_rate_1h": round(int(failures) / int(outcomes), 4) if outcomes else 0.0,
            "p95_send_seconds": None if p95 is None else round(p95, 3),
        }
    }
