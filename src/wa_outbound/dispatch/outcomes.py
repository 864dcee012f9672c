"""Writing send outcomes back to the outbox: a few statements per batch, never one per message."""

from __future__ import annotations

from dataclasses import dataclass, field
from datetime import datetime
from typing import Any

import sqlalchemy as sa
from sqlalchemy.ext.asyncio import AsyncConnection

from wa_outbound.db.schema import message_event, outbound_message
from wa_outbound.dispatch.claims import Claimed
from wa_outbound.events import message_event_row
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


def _b(name: str) -> sa.BindParameter[Any]:
    return sa.bindparam(f"b_{name}")


# Each statement is guarded by status = 'SENDING': a row that was cancelled, reclaimed or
# finished meanwhile is left alone, and the outcome is still recorded in the timeline.
_ACCEPT = (
    outbound_message.update()
    .where(m.id == _b("id"), m.status == Status.SENDING)
    .values(
        status=Status.ACCEPTED,
        provider_message_id=_b("wamid"),
        accepted_at=_b("now"),
        updated_at=_b("now"),
        lease_until=None,
        claimed_by=None,
        error_code=None,
        error_title=None,
        error_message=None,
        error_details=None,
        error_retryable=None,
    )
)
_RETRY = (
    outbound_message.update()
    .where(m.id == _b("id"), m.status == Status.SENDING)
    .values(
        status=_b("status"),
        attempts=m.attempts - _b("give_back"),
        next_attempt_at=_b("next"),
        updated_at=_b("now"),
        lease_until=None,
        claimed_by=None,
    )
)
_RETRY_WITH_ERROR = _RETRY.values(
    error_code=_b("code"),
    error_title=_b("title"),
    error_message=_b("message"),
    error_details=_b("details"),
    error_retryable=True,
)
_FAIL = (
    outbound_message.update()
    .where(m.id == _b("id"), m.status == Status.SENDING)
    .values(
        status=Status.FAILED,
        dead_lettered=_b("dead"),
        failed_at=_b("now"),
        updated_at=_b("now"),
        lease_until=None,
        claimed_by=None,
        error_code=_b("code"),
        error_title=_b("title"),
        error_message=_b("message"),
        error_details=_b("details"),
        error_retryable=_b("retryable"),
    )
)


# PostgreSQL: each batch's acceptances and all its events as one statement each, with the
# values bound as arrays (far less per-row work than executemany on the hot path).
_PG_ACCEPT = sa.text(
    """
    UPDATE outbound_message AS o
    SET status = 'ACCEPTED', provider_message_id = v.wamid, accepted_at = :now,
        updated_at = :now, lease_until = NULL, claimed_by = NULL, error_code = NULL,
        error_title = NULL, error_message = NULL, error_details = NULL, error_retryable = NULL
    FROM unnest(CAST(:ids AS uuid[]), CAST(:wamids AS text[])) AS v(id, wamid)
    WHERE o.id = v.id AND o.status = 'SENDING'
    """
)
_PG_EVENTS = sa.text(
    """
    INSERT INTO message_event (message_id, org_id, at, type, from_status, to_status, actor, details)
    SELECT e.message_id, e.org_id, :now, e.type, e.from_status, e.to_status, :actor,
           CAST(e.details AS jsonb)
    FROM unnest(CAST(:ids AS uuid[]), CAST(:orgs AS text[]), CAST(:types AS text[]),
                CAST(:froms AS text[]), CAST(:tos AS text[]), CAST(:details AS text[]))
         AS e(message_id, org_id, type, from_status, to_status, details)
    """
)


def _error_params(error: ProviderError | None) -> dict[str, Any]:
    if error is None:
        return {"b_code": None, "b_title": None, "b_message": None, "b_details": None}
    return {
        "b_code": error.code,
        "b_title": error.title[:500],
        "b_message": error.message,
        "b_details": error.details,
    }


async def write_outcomes(
    conn: AsyncConnection, outcomes: list[Outcome], *, now: datetime, actor: str
) -> list[str]:
    """Apply every outcome; returns the wamids newly committed as ACCEPTED."""
    accepted: list[dict[str, Any]] = []
    retry_plain: list[dict[str, Any]] = []
    retry_error: list[dict[str, Any]] = []
    failed: list[dict[str, Any]] = []
    for o in outcomes:
        params: dict[str, Any] = {"b_id": o.message.id, "b_now": now}
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
            }
            if o.error is None:
                retry_plain.append(params)
            else:
                retry_error.append({**params, **_error_params(o.error)})
    for statement, rows in (
        (_ACCEPT, accepted),
        (_RETRY, retry_plain),
        (_RETRY_WITH_ERROR, retry_error),
        (_FAIL, failed),
    ):
        if rows:
            await conn.execute(statement, rows)
    await conn.execute(message_event.insert(), [_event(o, now, actor) for o in outcomes])
    return [row["b_wamid"] for row in accepted]


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
    """Claims whose lease ran out (their process died) become claimable again, or fail when
    they have used every attempt. Whether Meta got such a send is unknown: at-least-once."""
    rows = (
        await conn.execute(
            outbound_message.update()
            .where(m.status == Status.SENDING, m.lease_until < now)
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
        await conn.execute(
            message_event.insert(),
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
