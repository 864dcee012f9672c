"""What one or many of Meta's webhook bodies do, and the SQLite path that stores and applies a
body in one transaction.

`process` applies one body, `process_content` what several bodies carry together (the
PostgreSQL intake applies the bodies committed together, webhooks/stored.py). On SQLite
(`receive`) the body is inserted in the transaction that processes it, so the body and its
effects commit together; if processing fails, that transaction rolls back and the body is
stored alone, unprocessed, with the error, for the sweep; Meta is still answered 200. A body
that cannot be stored at all makes the request fail, so Meta, seeing no 200, sends it again.
"""

from __future__ import annotations

import logging
from collections import Counter
from dataclasses import dataclass, field
from datetime import datetime
from typing import Any

from sqlalchemy.ext.asyncio import AsyncConnection, AsyncEngine

from wa_outbound import text
from wa_outbound.contacts.keywords import DEFAULT_KEYWORDS, Keywords
from wa_outbound.db.schema import webhook_event
from wa_outbound.metrics import Metrics
from wa_outbound.receipts.statuses import APPLIED, KNOWN_STATUSES, apply_statuses
from wa_outbound.status import CHANNEL_WHATSAPP
from wa_outbound.webhooks import payload, routing
from wa_outbound.webhooks.consent_changes import apply_consent_changes
from wa_outbound.webhooks.management import UNROUTED, apply_management
from wa_outbound.webhooks.received import report_received
from wa_outbound.webhooks.service_windows import open_service_windows

log = logging.getLogger(__name__)


@dataclass
class Processed:
    """What one body did, for the metrics."""

    statuses: Counter[tuple[str, str]] = field(default_factory=Counter)  # (status, outcome)
    failed_codes: Counter[str] = field(default_factory=Counter)
    unused: Counter[str] = field(default_factory=Counter)
    unrouted: Counter[str] = field(default_factory=Counter)  # changes, by field
    management: Counter[tuple[str, str]] = field(default_factory=Counter)  # (field, outcome)


async def process(
    conn: AsyncConnection,
    body: dict[str, Any],
    *,
    now: datetime,
    keywords: Keywords = DEFAULT_KEYWORDS,
) -> Processed:
    """Apply what one body carries, each change to the number or WABA it names: statuses,
    service windows, consent changes (keywords, preferences), management changes. Changes for
    numbers or WABAs no sender has are only counted (the body is stored all the same)."""
    return await process_content(conn, payload.parse(body), now=now, keywords=keywords)


async def process_content(
    conn: AsyncConnection,
    content: payload.WebhookContent,
    *,
    now: datetime,
    keywords: Keywords = DEFAULT_KEYWORDS,
) -> Processed:
    """`process` for what one body, or several merged in their order (`payload.merge`), carry."""
    routes = await routing.resolve(conn, content)
    statuses = [u for u in content.statuses if routes.knows(u.phone_number_id)]
    outcomes = await apply_statuses(
        conn, statuses, actor="webhook", now=now, senders_by_number=routes.sender_ids
    )
    inbound = [item for item in content.inbound if routes.knows(item.phone_number_id)]
    await open_service_windows(conn, inbound, routes, now=now)
    await report_received(conn, inbound, routes, now=now)
    processed = Processed(unused=content.unused)
    processed.unrouted[payload.USER_PREFERENCES] = await apply_consent_changes(
        conn, inbound, content.preferences, routes, keywords
    )
    processed.unrouted["messages"] = sum(1 for n in content.numbers if not routes.knows(n))
    processed.management = await apply_management(conn, content.management, now=now)
    for (name, outcome), n in processed.management.items():
        if outcome == UNROUTED:
            processed.unrouted[name] += n
    processed.unrouted = +processed.unrouted  # drop the zero counts
    for update, outcome in zip(statuses, outcomes, strict=True):
        label = update.status if update.status in KNOWN_STATUSES else "other"
        processed.statuses[label, outcome] += 1
        if update.status == "failed" and outcome == APPLIED:
            processed.failed_codes[str((update.error or {}).get("code") or "unknown")] += 1
    for error in content.value_errors:
        log.warning("webhook reports an error", extra={"meta_error": error})
    if content.unused:
        log.info("webhook parts not used", extra={"unused": dict(content.unused)})
    if processed.unrouted:
        # The numbers are Meta's ids of business numbers, not users' phone numbers.
        unknown = sorted({n or "" for n in content.numbers if not routes.knows(n)})
        log.warning(
            "webhook changes for numbers or WABAs no sender has",
            extra={"unrouted": dict(processed.unrouted), "phone_number_ids": unknown[:5]},
        )
    return processed


async def receive(
    engine: AsyncEngine,
    raw: bytes,
    body: dict[str, Any],
    *,
    now: datetime,
    keywords: Keywords = DEFAULT_KEYWORDS,
) -> Processed | None:
    """Store `raw` and process `body`; None when processing failed (the sweep retries it)."""
    try:
        async with engine.begin() as conn:
            # Marked processed as it is stored: the mark commits only with the effects.
            await conn.execute(
                webhook_event.insert(),
                {"received_at": now, "body": raw, "attempts": 1, "processed_at": now},
            )
            return await process(conn, body, now=now, keywords=keywords)
    except Exception as exc:  # whatever broke, the body is kept for the sweep below
        error = failure(exc)
    # Processing was rolled back: store the body alone. If even that fails, the error
    # propagates and the request fails, so Meta sends the body again.
    async with engine.begin() as conn:
        await conn.execute(
            webhook_event.insert(),
            {"received_at": now, "body": raw, "attempts": 1, "last_error": error},
        )
    return None


def failure(exc: Exception, event_id: int | None = None) -> str:
    log.error(
        "webhook processing failed; the body is kept for retry",
        exc_info=exc,
        extra={"webhook_event_id": event_id},
    )
    return text.storable(f"{type(exc).__name__}: {exc}"[:2000])  # it may quote the body


def load(raw: bytes) -> dict[str, Any]:
    body = text.decoded_storable(raw)
    if not isinstance(body, dict):
        raise ValueError("stored webhook body is not a JSON object")
    return body


def count(metrics: Metrics, processed: Processed | None) -> None:
    """Add what one body did to the metrics."""
    if processed is None:
        metrics.webhook_processing_failures.inc()
        return
    for (status, outcome), n in processed.statuses.items():
        metrics.webhook_statuses.labels(status=status, outcome=outcome).inc(n)
    for code, n in processed.failed_codes.items():
        metrics.failed.labels(channel=CHANNEL_WHATSAPP, error_code=code).inc(n)
    for kind, n in processed.unused.items():
        metrics.webhook_unused.labels(kind=kind).inc(n)
    for name, n in processed.unrouted.items():
        metrics.webhook_unrouted.labels(field=name).inc(n)
