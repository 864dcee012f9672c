"""The callbacks' alert rule: an endpoint the delivery worker disabled (its URL answered 410
Gone, or it failed for WA_CALLBACK_DISABLE_AFTER_SECONDS), one alert per endpoint, resolved when
it is enabled again or deleted. An endpoint the organisation disabled itself raises nothing."""

from __future__ import annotations

import uuid
from datetime import datetime
from urllib.parse import urlsplit

import sqlalchemy as sa
from sqlalchemy.ext.asyncio import AsyncConnection

from wa_outbound.alerts.model import Finding
from wa_outbound.config import Settings
from wa_outbound.db.callback_schema import callback_delivery, callback_endpoint

e = callback_endpoint.c
d = callback_delivery.c
# What the worker disables for; `manual` is the organisation's own doing.
WORKER_REASONS = ("gone", "failing")


async def callback_endpoint_disabled(
    conn: AsyncConnection, settings: Settings, now: datetime
) -> list[Finding]:
    rows = (
        await conn.execute(
            sa.select(e.id, e.org_id, e.url, e.disabled_reason, e.failing_since, e.updated_at)
            .where(e.enabled.is_(False), e.disabled_reason.in_(WORKER_REASONS))
            .order_by(e.id)
        )
    ).all()
    if not rows:
        return []
    counts = await conn.execute(
        sa.select(d.endpoint_id, sa.func.count())
        .where(d.status == "pending", d.endpoint_id.in_([row.id for row in rows]))
        .group_by(d.endpoint_id)
    )
    waiting: dict[uuid.UUID, int] = {endpoint_id: int(n) for endpoint_id, n in counts}
    findings = []
    for row in rows:
        # The host only: a URL's path or query may hold the organisation's own token.
        host = urlsplit(row.url).hostname or "?"
        why = "answered 410 Gone" if row.disabled_reason == "gone" else "failed for too long"
        findings.append(
            Finding(
                type="callback_endpoint_disabled",
                subject=str(row.id),
                severity="warning",
                summary=f"callback endpoint {row.id} of {row.org_id} ({host}) was disabled: it "
                f"{why}; {waiting.get(row.id, 0)} deliveries wait for it",
                figures={
                    "endpoint_id": str(row.id),
                    "org_id": row.org_id,
                    "host": host,
                    "disabled_reason": row.disabled_reason,
                    "disabled_at": row.updated_at.isoformat(),
                    "failing_since": row.failing_since.isoformat() if row.failing_since else "",
                    "pending_deliveries": waiting.get(row.id, 0),
                },
            )
        )
    return findings
