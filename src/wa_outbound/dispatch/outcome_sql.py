"""The statements that write send outcomes (outcomes.py): each guarded by the claim's token
(owner and attempt) as well as by the lock write_outcomes takes, so a row cancelled, reclaimed or
finished meanwhile is left alone."""

from __future__ import annotations

from typing import Any

import sqlalchemy as sa

from wa_outbound.db.schema import outbound_message
from wa_outbound.status import Status

m = outbound_message.c


def _b(name: str) -> sa.BindParameter[Any]:
    return sa.bindparam(f"b_{name}")


# Each statement is guarded by the claim's token as well as by the lock taken in
# `write_outcomes`: a row that was cancelled, reclaimed or finished meanwhile is left alone.
_OWNED = sa.and_(
    m.id == _b("id"),
    m.status == Status.SENDING,
    m.claimed_by == _b("worker"),
    m.attempts == _b("attempt"),
)
ACCEPT = (
    outbound_message.update()
    .where(_OWNED)
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
# ACCEPT on PostgreSQL: the batch's accepted sends as arrays, one statement (one executor run
# instead of one per row).
PG_ACCEPT = sa.text(
    """
    UPDATE outbound_message AS o
    SET status = 'ACCEPTED', provider_message_id = t.wamid, accepted_at = :now,
        updated_at = :now, lease_until = NULL, claimed_by = NULL, error_code = NULL,
        error_title = NULL, error_message = NULL, error_details = NULL, error_retryable = NULL
    FROM unnest(CAST(:ids AS uuid[]), CAST(:attempts AS integer[]), CAST(:workers AS text[]),
                CAST(:wamids AS text[])) AS t(id, attempts, worker, wamid)
    WHERE o.id = t.id AND o.status = 'SENDING' AND o.claimed_by = t.worker
      AND o.attempts = t.attempts
    """
).bindparams(sa.bindparam("now", type_=m.accepted_at.type))
RETRY = (
    outbound_message.update()
    .where(_OWNED)
    .values(
        status=_b("status"),
        attempts=m.attempts - _b("give_back"),
        next_attempt_at=_b("next"),
        waiting_reason=_b("waiting"),
        updated_at=_b("now"),
        lease_until=None,
        claimed_by=None,
    )
)
RETRY_WITH_ERROR = RETRY.values(
    error_code=_b("code"),
    error_title=_b("title"),
    error_message=_b("message"),
    error_details=_b("details"),
    error_retryable=True,
)
FAIL = (
    outbound_message.update()
    .where(_OWNED)
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

# The claims as three arrays: one statement whatever the number of outcomes (a tuple IN list was
# a statement of its own, prepared anew, for each length).
PG_LOCK_OWNED = sa.text(
    """
    SELECT o.id FROM outbound_message AS o
    JOIN unnest(CAST(:ids AS uuid[]), CAST(:attempts AS integer[]), CAST(:workers AS text[]))
        AS t(id, attempts, worker)
      ON o.id = t.id AND o.attempts = t.attempts AND o.claimed_by = t.worker
    WHERE o.status = 'SENDING'
    ORDER BY o.id
    FOR UPDATE OF o
    """
)
