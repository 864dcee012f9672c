"""Writing send outcomes back to the outbox: a few statements per batch, never one per message.

Every write is fenced by the claim that produced it (owner and attempt): the batch first locks
the rows it still owns, and only their outcomes change state. An outcome whose claim was lost
meanwhile (its lease expired and another replica reclaimed the row) changes nothing; it becomes a
`stale_outcome` event, and a wamid it carries stays linked to the message (`message_wamid`), so
the statuses of that duplicate send are still recognised and the duplicate is visible.

An answer that shows the sender cannot send (a revoked token, a restricted account) pauses the
sender, or its whole WABA, in the same transaction, whether or not the claim still holds: it is
a fact about the sender, not about the message.
"""

from __future__ import annotations

from dataclasses import dataclass, field
from datetime import datetime
from typing import Any

import sqlalchemy as sa
from sqlalchemy.ext.asyncio import AsyncConnection

from wa_outbound.db.dialect import insert, is_postgres
from wa_outbound.db.schema import message_wamid, outbound_message
from wa_outbound.dispatch.claims import Claimed, lease_clock
from wa_outbound.dispatch.outcome_sql import (
    ACCEPT,
    FAIL,
    PG_ACCEPT,
    PG_LOCK_OWNED,
    RETRY,
    RETRY_WITH_ERROR,
)
from wa_outbound.events import message_event_row, record_message_events
from wa_outbound.senders import health
from wa_outbound.status import Status
from wa_outbound.whatsapp.retry import ProviderError

m = outbound_message.c


@dataclass(slots=True)
class Outcome:
    """What became of one claimed message. `status` is where it goes from SENDING."""

    message: Claimed
    status: Status
    event: str
    wamid: str | None = None
    error: ProviderError | None = None
    retryable: bool = False
    dead_lettered: bool = False
    next_attempt_at: datetime | None = None
    give_back_attempt: bool = False
    details: dict[str, Any] = field(default_factory=dict)
    pause: str | None = None
    """A pause reason for the message's sender (senders.store.PAUSE_REASONS)."""
    stored_token: str | None = None
    """With `pause == "token_invalid"`: the stored token the send used, when known."""
    waiting_reason: str | None = None
    """Why it waits when it goes back to waiting (`send_unknown`), or None."""


def _error_params(error: ProviderError | None) -> dict[str, Any]:
    if error is None:
        return {"b_code": None, "b_title": None, "b_message": None, "b_details": None}
    return {
        "b_code": error.code,
        "b_title": error.title[:500],
        "b_message": error.message,
        "b_details": error.details,
    }


@dataclass(frozen=True, slots=True)
class Written:
    accepted_wamids: list[str]
    """Wamids newly committed as a message's own."""
    linked_wamids: list[str]
    """Wamids of sends whose claim was lost, linked to their message (duplicate sends)."""
    stale_ids: frozenset[Any]
    """Messages whose outcome lost its claim and changed nothing."""


async def write_outcomes(
    conn: AsyncConnection, outcomes: list[Outcome], *, now: datetime, actor: str
) -> Written:
    """Apply every outcome whose claim still holds; record the others as stale."""
    owned = await _lock_owned(conn, outcomes)
    current = [o for o in outcomes if o.message.id in owned]
    stale = [o for o in outcomes if o.message.id not in owned]
    accepted: list[dict[str, Any]] = []
    retry_plain: list[dict[str, Any]] = []
    retry_error: list[dict[str, Any]] = []
    failed: list[dict[str, Any]] = []
    for o in current:
        params: dict[str, Any] = {
            "b_id": o.message.id,
            "b_now": now,
            "b_worker": o.message.worker,
            "b_attempt": o.message.attempt,
        }
        if o.status is Status.ACCEPTED:
            accepted.append({**params, "b_wamid": o.wamid})
        elif o.status is Status.FAILED:
            failed.append(
                {
                    **params,
                    "b_dead": o.dead_lettered,
                    "b_retryable": o.retryable,
                    **_error_params(o.error),
                }
            )
        else:
            params |= {
                "b_status": o.status.value,
                "b_next": o.next_attempt_at,
                "b_give_back": 1 if o.give_back_attempt else 0,
                "b_waiting": o.waiting_reason,
            }
            if o.error is None or o.pause is not None:
                # A paused sender's message waits with no error of its own; the error is in
                # its `sender_paused` event.
                retry_plain.append(params)
            else:
                retry_error.append({**params, **_error_params(o.error)})
    # A dead letter updates its org's `dlq_count` row (migration 0014's trigger, here once per
    # row of the executemany), locked until commit: in org order, so that two batches that
    # dead-letter messages of the same orgs never wait for each other in a cycle.
    org_of = {o.message.id: o.message.org_id for o in current}
    failed.sort(key=lambda row: (org_of[row["b_id"]], str(row["b_id"])))
    if accepted and is_postgres(conn):
        await conn.execute(
            PG_ACCEPT,
            {
                "now": now,
                "ids": [row["b_id"] for row in accepted],
                "attempts": [row["b_attempt"] for row in accepted],
                "workers": [row["b_worker"] for row in accepted],
                "wamids": [row["b_wamid"] for row in accepted],
            },
        )
        accepted_rows: list[dict[str, Any]] = []
    else:
        accepted_rows = accepted
    for statement, rows in (
        (ACCEPT, accepted_rows),
        (RETRY, retry_plain),
        (RETRY_WITH_ERROR, retry_error),
        (FAIL, failed),
    ):
        if rows:
            await conn.execute(statement, rows)
    events = [_event(o, now, actor) for o in current] + [_stale_event(o, now, actor) for o in stale]
    await record_message_events(conn, events)
    paused = [o for o in outcomes if o.pause is not None]
    if paused:
        await _pause_senders(conn, paused, now=now, actor=actor)
    linked = [o for o in stale if o.wamid]
    if linked:
        await conn.execute(
            insert(conn, message_wamid).on_conflict_do_nothing(),
            [
                {
                    "provider_message_id": o.wamid,
                    "message_id": o.message.id,
                    "org_id": o.message.org_id,
                    "created_at": now,
                }
                for o in linked
            ],
        )
    return Written(
        accepted_wamids=[row["b_wamid"] for row in accepted],
        linked_wamids=[o.wamid for o in linked if o.wamid],
        stale_ids=frozenset(o.message.id for o in stale),
    )


async def _pause_senders(
    conn: AsyncConnection, paused: list[Outcome], *, now: datetime, actor: str
) -> None:
    """Pause the senders these answers showed unable to send (once per sender and reason), then
    mark the answered messages as waiting for them."""
    done: set[tuple[Any, str, str | None]] = set()
    for o in paused:
        assert o.pause is not None
        key = (o.message.sender_id, o.pause, o.stored_token)
        if key in done:
            continue
        done.add(key)
        error = o.error
        await health.pause_after_error(
            conn,
            o.message.sender_id,
            o.pause,
            used_token=o.stored_token,
            now=now,
            actor=actor,
            details={"error_code": error.code if error else None, "message_id": str(o.message.id)},
        )
    await health.mark_waiting(conn, [o.message.id for o in paused])


async def _lock_owned(conn: AsyncConnection, outcomes: list[Outcome]) -> set[Any]:
    """Lock the rows whose claim still holds (same owner, same attempt, still SENDING), in id
    order so that concurrent writers queue rather than deadlock; return their ids."""
    if not outcomes:
        return set()
    if is_postgres(conn):
        rows = await conn.execute(
            PG_LOCK_OWNED,
            {
                "ids": [o.message.id for o in outcomes],
                "attempts": [o.message.attempt for o in outcomes],
                "workers": [o.message.worker for o in outcomes],
            },
        )
        return {row.id for row in rows}
    tokens = [(o.message.id, o.message.attempt, o.message.worker) for o in outcomes]
    rows = await conn.execute(
        sa.select(m.id)
        .where(
            m.status == Status.SENDING,
            sa.tuple_(m.id, m.attempts, m.claimed_by).in_(tokens),
        )
        .order_by(m.id)
        .with_for_update()
    )
    return {row.id for row in rows}


def _stale_event(o: Outcome, now: datetime, actor: str) -> dict[str, Any]:
    """A send's outcome that arrived after its claim was lost: on the timeline, nothing else."""
    details = _event(o, now, actor)["details"] | {"outcome": o.event, "status": o.status.value}
    return message_event_row(
        message_id=o.message.id,
        org_id=o.message.org_id,
        at=now,
        type="stale_outcome",
        actor=actor,
        details=details,
    )


def _event(o: Outcome, now: datetime, actor: str) -> dict[str, Any]:
    details: dict[str, Any] = {"attempt": o.message.attempt, **o.details}
    if o.wamid:
        details["provider_message_id"] = o.wamid
    if o.error is not None:
        details["error"] = {
            "code": o.error.code,
            "title": o.error.title,
            "message": o.error.message,
            "details": o.error.details,
            "http_status": o.error.http_status,
        }
    if o.next_attempt_at is not None:
        details["next_attempt_at"] = o.next_attempt_at.isoformat()
    if o.dead_lettered:
        details["dead_lettered"] = True
    return message_event_row(
        message_id=o.message.id,
        org_id=o.message.org_id,
        at=now,
        type=o.event,
        actor=actor,
        from_status=Status.SENDING,
        to_status=o.status,
        details=details,
    )


async def reclaim_expired(conn: AsyncConnection, *, now: datetime, actor: str) -> int:
    """Claims whose lease ran out by the database's clock (their process died, or stopped
    renewing) become claimable again, or fail when they have used every attempt. Whether Meta
    got such a send is unknown: at-least-once; a late outcome of it is fenced off."""
    rows = (
        await conn.execute(
            outbound_message.update()
            .where(m.status == Status.SENDING, m.lease_until < lease_clock(conn))
            .values(
                status=sa.case(
                    (m.attempts >= m.max_attempts, Status.FAILED.value), else_=Status.RETRYING.value
                ),
                dead_lettered=m.attempts >= m.max_attempts,
                failed_at=sa.case((m.attempts >= m.max_attempts, now), else_=None),
                error_code=sa.case(
                    (m.attempts >= m.max_attempts, "lease_expired"), else_=m.error_code
                ),
                error_title=sa.case(
                    (m.attempts >= m.max_attempts, "Lease expired"), else_=m.error_title
                ),
                error_retryable=sa.case(
                    (m.attempts >= m.max_attempts, False), else_=m.error_retryable
                ),
                next_attempt_at=now,
                lease_until=None,
                claimed_by=None,
                updated_at=now,
            )
            .returning(m.id, m.org_id, m.status, m.attempts)
        )
    ).all()
    if rows:
        await record_message_events(
            conn,
            [
                message_event_row(
                    message_id=r.id,
                    org_id=r.org_id,
                    at=now,
                    type="lease_expired",
                    actor=actor,
                    from_status=Status.SENDING,
                    to_status=r.status,
                    details={"attempt": r.attempts},
                )
                for r in rows
            ],
        )
    return len(rows)
