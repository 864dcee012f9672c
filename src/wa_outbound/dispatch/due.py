"""The claim's first half: locking the due rows with what the limits need to know of each, and
writing why the rows a limit holds for a while wait (see claims.py for the whole claim)."""

from __future__ import annotations

import uuid
from collections.abc import Sequence
from dataclasses import dataclass
from datetime import datetime, timedelta
from typing import Any

import sqlalchemy as sa
from sqlalchemy.ext.asyncio import AsyncConnection

from wa_outbound.db.dialect import is_postgres
from wa_outbound.db.schema import (
    SHARED_SENDER_ID,
    consent,
    message_event,
    outbound_message,
    sender,
    service_window,
    waba,
)
from wa_outbound.db.template_schema import template
from wa_outbound.status import CLAIMABLE

m = outbound_message.c

SERVICE_WINDOW = timedelta(hours=24)
# A sender whose row is missing (the shared sender before start-up wrote it) paces as Meta's
# default.
DEFAULT_SENDER_MPS = 80.0


@dataclass(frozen=True, slots=True)
class Due:
    """A due row locked by the claim's transaction, not yet claimed, with its sender's limits."""

    id: uuid.UUID
    org_id: str
    sender_id: uuid.UUID = SHARED_SENDER_ID
    to: str = ""
    created_at: datetime | None = None
    reaches: bool = False
    """A template outside the recipient's service window: it counts toward the messaging limit
    (only worked out when the WABA has one)."""
    phone_number_id: str = ""
    messages_per_second: float = DEFAULT_SENDER_MPS
    waba_id: str | None = None
    messaging_limit: str | None = None
    template_status: str | None = None
    """A template's status in its WABA's registry (None: unknown there, or not a template)."""
    opted_out: bool = False
    """A MARKETING template to a recipient who stopped marketing messages."""


@dataclass(frozen=True, slots=True)
class Wait:
    """A due row a limit holds until `until`: written once, not looked at again before."""

    id: uuid.UUID
    org_id: str
    until: datetime
    reason: str


# Two levels, so the plan does not hang on the outbox's statistics. The inner level locks the due
# ids in queue order: it reads ix_outbound_message_claim_ready (which leaves out paused senders'
# marked rows, so a paused backlog is never scanned) and tests each row on its own columns only.
# The senders paused but not yet marked are one array worked out once per statement (an InitPlan),
# not a join: joined, with the table's statistics stale after a burst of enqueues (autovacuum
# analyses a minute later at best), the planner expected a few due rows, joined all 20,000 waiting
# ones to five tables and sorted them, 100-130 ms a claim (docs/performance.md, "Dispatch").
# A message never overtakes an older one to the same recipient that waits for its pair slot (the
# older one may come back late); ix_outbound_message_pair_waiting makes that a probe of a few
# rows. The outer level reads, for the locked rows only, what the limits need: the sender's
# limits, the WABA's messaging limit, the service window (only for templates whose WABA has a
# messaging limit), the template's status and the recipient's marketing opt-out.
_PG_LOCK_DUE = sa.text(
    """
    WITH due AS MATERIALIZED (
        SELECT o.id
        FROM outbound_message AS o
        WHERE o.status IN ('QUEUED', 'RETRYING')
          AND (o.waiting_reason IS NULL OR o.waiting_reason <> 'sender_paused')
          AND o.next_attempt_at <= :now
          AND (o.expires_at IS NULL OR o.expires_at > :now)
          AND COALESCE(o.sender_id, :shared) <> ALL(CAST(:skip_senders AS uuid[]))
          AND o.org_id <> ALL(CAST(:skip_orgs AS text[]))
          AND COALESCE(o.sender_id, :shared) <> ALL(ARRAY(
              SELECT p.id FROM sender AS p WHERE p.paused_reasons <> '[]'::jsonb))
          AND NOT EXISTS (
              SELECT 1 FROM outbound_message AS older
              WHERE older.sender_id = o.sender_id AND older.to_phone = o.to_phone
                AND older.waiting_reason = 'pair_interval'
                AND older.status IN ('QUEUED', 'RETRYING')
                AND older.created_at < o.created_at)
        ORDER BY o.next_attempt_at
        LIMIT :limit
        FOR UPDATE OF o SKIP LOCKED
    )
    SELECT o.id, o.org_id, o.sender_id, o.to_phone, o.created_at,
           s.phone_number_id, s.messages_per_second, s.waba_id, w.messaging_limit,
           (o.kind = 'template' AND w.messaging_limit IS NOT NULL
            AND w.messaging_limit <> 'TIER_UNLIMITED'
            AND sw.last_inbound_at IS NULL) AS reaches,
           t.status AS template_status, COALESCE(c.marketing_opt_out, false) AS opted_out
    FROM due
    JOIN outbound_message AS o ON o.id = due.id
    LEFT JOIN sender AS s ON s.id = COALESCE(o.sender_id, :shared)
    LEFT JOIN waba AS w ON w.waba_id = s.waba_id
    LEFT JOIN service_window AS sw
        ON o.kind = 'template' AND w.messaging_limit IS NOT NULL
       AND sw.org_id = o.org_id AND sw.sender_id = COALESCE(o.sender_id, :shared)
       AND sw.phone = o.to_phone AND sw.last_inbound_at > :window_since
    LEFT JOIN template AS t
        ON o.kind = 'template' AND t.waba_id = s.waba_id
       AND t.name = o.payload->>'name' AND t.language = o.payload->>'language'
    LEFT JOIN consent AS c
        ON t.category = 'MARKETING' AND c.org_id = o.org_id AND c.phone = o.to_phone
    ORDER BY o.next_attempt_at
    """
).bindparams(
    sa.bindparam("now", type_=m.next_attempt_at.type),
    sa.bindparam("window_since", type_=m.next_attempt_at.type),
    sa.bindparam("shared", type_=sa.Uuid()),
)

# The statement is prepared once per connection; after five runs PostgreSQL may keep a generic
# plan, blind to :now, that joins every queued row before the time filter: with 20,000 rows
# waiting for a pair slot it took 4 s a claim against 12 ms planned for the call
# (bench/claim_backlog.py). The claim's transaction plans each of its statements for its values,
# and without bitmap scans: one cannot return the queue in index order, and with no statistics
# yet (a burst just enqueued) the planner chose one and sorted the whole queue. Both settings
# are local to the transaction and sent in one statement.
_CUSTOM_PLAN = sa.text(
    "SELECT set_config('plan_cache_mode', 'force_custom_plan', true),"
    " set_config('enable_bitmapscan', 'off', true)"
)


async def lock_due(
    conn: AsyncConnection,
    *,
    limit: int,
    now: datetime,
    skip_senders: Sequence[uuid.UUID] = (),
    skip_orgs: Sequence[str] = (),
) -> list[Due]:
    """Lock up to `limit` due rows, oldest first, of senders that are not paused, leaving out
    the senders and orgs the limiter holds in this replica's memory: the first half of a
    claim."""
    params = {
        "now": now,
        "window_since": now - SERVICE_WINDOW,
        "limit": limit,
        "shared": SHARED_SENDER_ID,
        "skip_senders": list(skip_senders),
        "skip_orgs": list(skip_orgs),
    }
    if is_postgres(conn):
        await conn.execute(_CUSTOM_PLAN)
        rows = await conn.execute(_PG_LOCK_DUE, params)
    else:
        rows = await conn.execute(_sqlite_lock_due(), params)
    return [
        Due(
            row.id,
            row.org_id,
            row.sender_id or SHARED_SENDER_ID,
            to=row.to_phone,
            created_at=row.created_at,
            reaches=bool(row.reaches),
            phone_number_id=row.phone_number_id or "",
            messages_per_second=row.messages_per_second or DEFAULT_SENDER_MPS,
            waba_id=row.waba_id,
            messaging_limit=row.messaging_limit,
            template_status=row.template_status,
            opted_out=bool(row.opted_out),
        )
        for row in rows
    ]


def _sqlite_lock_due() -> sa.Select[Any]:
    """_PG_LOCK_DUE for SQLite (no row locks: one writer)."""
    s, w, sw, t, c = sender.c, waba.c, service_window.c, template.c, consent.c
    older = outbound_message.alias("older")
    sender_id = sa.func.coalesce(m.sender_id, sa.bindparam("shared", type_=sa.Uuid()))
    capped = sa.and_(
        m.kind == "template", w.messaging_limit.is_not(None), w.messaging_limit != "TIER_UNLIMITED"
    )
    window = sa.and_(
        capped,
        sw.org_id == m.org_id,
        sw.sender_id == sender_id,
        sw.phone == m.to_phone,
        sw.last_inbound_at > sa.bindparam("window_since", type_=m.next_attempt_at.type),
    )
    return (
        sa.select(
            m.id,
            m.org_id,
            m.sender_id,
            m.to_phone,
            m.created_at,
            s.phone_number_id,
            s.messages_per_second,
            s.waba_id,
            w.messaging_limit,
            sa.and_(capped, sw.last_inbound_at.is_(None)).label("reaches"),
            t.status.label("template_status"),
            sa.func.coalesce(c.marketing_opt_out, False).label("opted_out"),
        )
        .select_from(
            outbound_message.outerjoin(sender, s.id == sender_id)
            .outerjoin(waba, w.waba_id == s.waba_id)
            .outerjoin(service_window, window)
            .outerjoin(
                template,
                sa.and_(
                    m.kind == "template",
                    t.waba_id == s.waba_id,
                    t.name == m.payload["name"].as_string(),
                    t.language == m.payload["language"].as_string(),
                ),
            )
            .outerjoin(
                consent,
                sa.and_(t.category == "MARKETING", c.org_id == m.org_id, c.phone == m.to_phone),
            )
        )
        .where(
            m.status.in_(CLAIMABLE),
            sa.or_(m.waiting_reason.is_(None), m.waiting_reason != "sender_paused"),
            m.next_attempt_at <= sa.bindparam("now", type_=m.next_attempt_at.type),
            sa.or_(
                m.expires_at.is_(None),
                m.expires_at > sa.bindparam("now", type_=m.next_attempt_at.type),
            ),
            sender_id.not_in(sa.bindparam("skip_senders", expanding=True, type_=sa.Uuid())),
            m.org_id.not_in(sa.bindparam("skip_orgs", expanding=True)),
            sa.or_(s.paused_reasons.is_(None), sa.func.json_array_length(s.paused_reasons) == 0),
            ~sa.exists().where(
                older.c.sender_id == m.sender_id,
                older.c.to_phone == m.to_phone,
                older.c.waiting_reason == "pair_interval",
                older.c.status.in_(CLAIMABLE),
                older.c.created_at < m.created_at,
            ),
        )
        .order_by(m.next_attempt_at)
        .limit(sa.bindparam("limit"))
    )


async def hold(conn: AsyncConnection, waits: list[Wait], *, now: datetime, actor: str) -> None:
    """Write why and until when these locked rows wait, with an event each (`pair_limited`,
    `tier_limited`, `quota_limited`); their status and attempts stay as they are."""
    if not waits:
        return
    await conn.execute(
        outbound_message.update()
        .where(m.id == sa.bindparam("b_id"), sa.or_(*(m.status == s for s in CLAIMABLE)))
        .values(
            next_attempt_at=sa.bindparam("b_until", type_=m.next_attempt_at.type),
            waiting_reason=sa.bindparam("b_reason"),
        )
        .execution_options(synchronize_session=False),
        [{"b_id": w.id, "b_until": w.until, "b_reason": w.reason} for w in waits],
    )
    await conn.execute(
        message_event.insert(),
        [
            {
                "message_id": w.id,
                "org_id": w.org_id,
                "at": now,
                "type": WAIT_EVENTS[w.reason],
                "from_status": None,
                "to_status": None,
                "actor": actor,
                "details": {"waiting_reason": w.reason, "until": w.until.isoformat()},
            }
            for w in waits
        ],
    )


WAIT_EVENTS = {
    "pair_interval": "pair_limited",
    "messaging_limit": "tier_limited",
    "quota": "quota_limited",
    "throughput": "throughput_limited",
    "template_paused": "template_paused",
}
