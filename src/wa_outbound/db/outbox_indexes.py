"""The outbox's indexes (`outbound_message`): what the dispatcher's claim, the API's lists and the
dead-letter queue read. Part of `schema.metadata`; kept apart for the module's size (imported by
`template_schema`, which imports every table). Most are partial, so that what the hot queries
scan stays the size of the queue or of the dead-letter queue, not of the whole history
(docs/performance.md, "Flat with size")."""

from __future__ import annotations

import sqlalchemy as sa

from wa_outbound.db.schema import outbound_message

__all__ = ["OUTBOX_INDEXES"]

m = outbound_message.c

_claimable = sa.text("status IN ('QUEUED', 'RETRYING')")
_sending = sa.text("status = 'SENDING'")
# Written as the queries write it (`.is_(True)`): PostgreSQL does not prove `dead_lettered` from
# `dead_lettered IS true`, so an index on plain `dead_lettered` was never used.
_dead = sa.text("dead_lettered IS TRUE")
_waiting = sa.text("status IN ('QUEUED', 'RETRYING')")
# What the claim scans: due rows, without those of paused senders (marked `sender_paused`), so
# a paused backlog costs no claim round anything.
_ready = sa.text(
    "status IN ('QUEUED', 'RETRYING') "
    "AND (waiting_reason IS NULL OR waiting_reason <> 'sender_paused')"
)
# Messages waiting for their pair slot, by sender and recipient: the claim checks that none older
# waits before it takes a message to that recipient.
_pair_waiting = sa.text("waiting_reason = 'pair_interval' AND status IN ('QUEUED', 'RETRYING')")
_expiring = sa.text("status IN ('QUEUED', 'RETRYING') AND expires_at IS NOT NULL")


def _partial(name: str, *columns: sa.Column[object], where: sa.TextClause) -> sa.Index:
    return sa.Index(name, *columns, postgresql_where=where, sqlite_where=where)


OUTBOX_INDEXES = (
    _partial("ix_outbound_message_claimable", m.next_attempt_at, where=_claimable),
    _partial("ix_outbound_message_lease", m.lease_until, where=_sending),
    # GET /v1/messages: an org's messages newest first (keyset on created_at, id).
    sa.Index("ix_outbound_message_org_created", m.org_id, m.created_at, m.id),
    sa.Index("ix_outbound_message_org_to", m.org_id, m.to_phone, m.created_at),
    # The dead-letter queue of one org: the DLQ list, replay by error code, and the report's top
    # codes of the last 24 hours (a range on org_id, failed_at; its totals are dlq_count's).
    _partial(
        "ix_outbound_message_dlq", m.org_id, m.failed_at, m.channel, m.error_code, where=_dead
    ),
    # The report's top codes of the last 24 hours, of one org or of all (the CLI, the DLQ
    # alert): a range of the last day's dead letters, not the whole DLQ, read index-only (the
    # code and its title are in the index); another org's entries are skipped in the index.
    _partial(
        "ix_outbound_message_dlq_failed",
        m.failed_at,
        m.org_id,
        m.error_code,
        m.error_title,
        where=_dead,
    ),
    sa.Index("ix_outbound_message_org_status", m.org_id, m.status),
    sa.Index("ix_outbound_message_wamid", m.provider_message_id, m.sender_id, unique=True),
    _partial("ix_outbound_message_sender_waiting", m.sender_id, where=_waiting),
    _partial("ix_outbound_message_claim_ready", m.next_attempt_at, where=_ready),
    _partial(
        "ix_outbound_message_pair_waiting",
        m.sender_id,
        m.to_phone,
        m.created_at,
        where=_pair_waiting,
    ),
    _partial("ix_outbound_message_expiring", m.expires_at, where=_expiring),
)
