"""The tables, as SQLAlchemy Core. Alembic migrations own the real schema; keep the two in step."""

from __future__ import annotations

import uuid

import sqlalchemy as sa

from wa_outbound.db.types import BigIntId, JSONType, UTCDateTime

metadata = sa.MetaData(
    naming_convention={
        "ix": "ix_%(table_name)s_%(column_0_N_name)s",
        "uq": "uq_%(table_name)s_%(column_0_N_name)s",
        "fk": "fk_%(table_name)s_%(column_0_name)s_%(referred_table_name)s",
        "pk": "pk_%(table_name)s",
        "ck": "ck_%(table_name)s_%(constraint_name)s",
    }
)

# The deployment's shared sender (WA_PHONE_NUMBER_ID + WA_ACCESS_TOKEN, or the sandbox's), which
# orgs without a sender of their own send from. Its row has no org and keeps no token.
SHARED_SENDER_ID = uuid.UUID(int=0)

organization = sa.Table(
    "organization",
    metadata,
    sa.Column("id", sa.String(64), primary_key=True),
    sa.Column("name", sa.String(200), nullable=False),
    sa.Column("created_at", UTCDateTime(), nullable=False),
)

api_key = sa.Table(
    "api_key",
    metadata,
    sa.Column("id", sa.Uuid(), primary_key=True),
    sa.Column("org_id", sa.String(64), sa.ForeignKey("organization.id"), nullable=False),
    sa.Column("name", sa.String(200), nullable=True),
    sa.Column("prefix", sa.String(16), nullable=False),
    sa.Column("key_hash", sa.String(64), nullable=False, unique=True),
    sa.Column("created_at", UTCDateTime(), nullable=False),
    sa.Column("revoked_at", UTCDateTime(), nullable=True),
)

# Per-organisation limits; the rate limiter adds its counters to this row.
rate_limit = sa.Table(
    "rate_limit",
    metadata,
    sa.Column("org_id", sa.String(64), sa.ForeignKey("organization.id"), primary_key=True),
    sa.Column("quota_limit", sa.BigInteger(), nullable=False),
    sa.Column("window_seconds", sa.Integer(), nullable=False),
    # Null: no per-second cap of the org's own (its senders' throughput paces it).
    sa.Column("messages_per_second", sa.Float(), nullable=True),
    sa.Column("updated_at", UTCDateTime(), nullable=False),
)

consent = sa.Table(
    "consent",
    metadata,
    sa.Column("org_id", sa.String(64), sa.ForeignKey("organization.id"), primary_key=True),
    sa.Column("phone", sa.String(16), primary_key=True),
    # Null: no consent recorded, only a preference (`marketing_opt_out`).
    sa.Column("status", sa.String(16), nullable=True),
    sa.Column("source", sa.String(200), nullable=True),
    sa.Column("granted_at", UTCDateTime(), nullable=True),
    sa.Column("revoked_at", UTCDateTime(), nullable=True),
    sa.Column("updated_at", UTCDateTime(), nullable=False),
    sa.Column("marketing_opt_out", sa.Boolean(), nullable=False, server_default=sa.false()),
)

# The 24-hour customer service window: opened by the user's last inbound message.
service_window = sa.Table(
    "service_window",
    metadata,
    sa.Column("org_id", sa.String(64), sa.ForeignKey("organization.id"), primary_key=True),
    # Meta keys a window by business number and user: the sender the user wrote to.
    sa.Column("sender_id", sa.Uuid(), primary_key=True),
    sa.Column("phone", sa.String(80), primary_key=True),  # an erased contact's: its token
    sa.Column("last_inbound_at", UTCDateTime(), nullable=False),
)

# The outbox: the row is the message, and the dispatcher's queue entry. Its indexes are in
# outbox_indexes.py.
outbound_message = sa.Table(
    "outbound_message",
    metadata,
    sa.Column("id", sa.Uuid(), primary_key=True),
    sa.Column("org_id", sa.String(64), sa.ForeignKey("organization.id"), nullable=False),
    sa.Column("channel", sa.String(16), nullable=False),
    sa.Column("to_phone", sa.String(16), nullable=True),  # null once erased: `redacted`
    sa.Column("kind", sa.String(16), nullable=False),
    sa.Column("payload", JSONType, nullable=False),
    sa.Column("message_metadata", JSONType, nullable=False),
    sa.Column("idempotency_key", sa.String(255), nullable=True),
    sa.Column("request_hash", sa.String(64), nullable=True),
    sa.Column("status", sa.String(16), nullable=False),
    sa.Column("attempts", sa.Integer(), nullable=False),
    sa.Column("max_attempts", sa.Integer(), nullable=False),
    sa.Column("next_attempt_at", UTCDateTime(), nullable=False),
    sa.Column("lease_until", UTCDateTime(), nullable=True),
    sa.Column("claimed_by", sa.String(64), nullable=True),
    # Unique per sender (ix_outbound_message_wamid): a wamid is Meta's id on one number.
    sa.Column("provider_message_id", sa.String(128), nullable=True),
    sa.Column("error_code", sa.String(64), nullable=True),
    sa.Column("error_title", sa.String(500), nullable=True),
    sa.Column("error_message", sa.Text(), nullable=True),
    sa.Column("error_details", sa.Text(), nullable=True),
    sa.Column("error_retryable", sa.Boolean(), nullable=True),
    sa.Column("dead_lettered", sa.Boolean(), nullable=False),
    sa.Column("created_at", UTCDateTime(), nullable=False),
    sa.Column("updated_at", UTCDateTime(), nullable=False),
    sa.Column("accepted_at", UTCDateTime(), nullable=True),
    sa.Column("sent_at", UTCDateTime(), nullable=True),
    sa.Column("delivered_at", UTCDateTime(), nullable=True),
    sa.Column("read_at", UTCDateTime(), nullable=True),
    sa.Column("failed_at", UTCDateTime(), nullable=True),
    # The sender it goes from (the shared sender: SHARED_SENDER_ID; null only on rows finished
    # before senders existed, which were the shared sender's).
    sa.Column("sender_id", sa.Uuid(), nullable=True),
    # Why a QUEUED/RETRYING message is waiting, when a limit or a pause holds it.
    sa.Column("waiting_reason", sa.String(32), nullable=True),
    # Still unsent then: FAILED with the code `expired`, not dead-lettered.
    sa.Column("expires_at", UTCDateTime(), nullable=True),
    sa.Column("redacted", sa.Boolean(), nullable=False, server_default=sa.false()),
    sa.UniqueConstraint("org_id", "idempotency_key"),
)

# How many messages each organisation has in the dead-letter queue, per channel: kept by the
# database's triggers on `outbound_message` (migration 0014) in the transaction of every change,
# so the DLQ report reads a row instead of counting the queue. `wa-outbound dlq recount` redoes it.
dlq_count = sa.Table(
    "dlq_count",
    metadata,
    sa.Column("org_id", sa.String(64), primary_key=True),
    sa.Column("channel", sa.String(16), primary_key=True),
    sa.Column("messages", sa.BigInteger(), nullable=False),
)

# The message's timeline and audit trail, written in the transaction of the change it records.
message_event = sa.Table(
    "message_event",
    metadata,
    sa.Column("id", BigIntId, primary_key=True, autoincrement=True),
    sa.Column("message_id", sa.Uuid(), nullable=False, index=True),
    sa.Column("org_id", sa.String(64), nullable=False),
    sa.Column("at", UTCDateTime(), nullable=False),
    sa.Column("type", sa.String(64), nullable=False),
    sa.Column("from_status", sa.String(16), nullable=True),
    sa.Column("to_status", sa.String(16), nullable=True),
    sa.Column("actor", sa.String(64), nullable=False),
    sa.Column("details", JSONType, nullable=False),
)

# Organisation-level actions that are not about one message (consent, keys, quota).
audit_event = sa.Table(
    "audit_event",
    metadata,
    sa.Column("id", BigIntId, primary_key=True, autoincrement=True),
    sa.Column("org_id", sa.String(64), nullable=True, index=True),
    sa.Column("at", UTCDateTime(), nullable=False),
    sa.Column("action", sa.String(64), nullable=False),
    sa.Column("actor", sa.String(64), nullable=False),
    sa.Column("subject", sa.String(200), nullable=True),
    sa.Column("details", JSONType, nullable=False),
)


# Every webhook body Meta sent us, stored before it is processed: Meta cannot resend on demand.
webhook_event = sa.Table(
    "webhook_event",
    metadata,
    sa.Column("id", BigIntId, primary_key=True, autoincrement=True),
    sa.Column("received_at", UTCDateTime(), nullable=False),
    sa.Column("body", sa.LargeBinary(), nullable=False),
    sa.Column("processed_at", UTCDateTime(), nullable=True),
    sa.Column("attempts", sa.Integer(), nullable=False, server_default="0"),
    sa.Column("last_error", sa.Text(), nullable=True),
)
_unprocessed = sa.text("processed_at IS NULL")
sa.Index(
    "ix_webhook_event_unprocessed",
    webhook_event.c.received_at,
    postgresql_where=_unprocessed,
    sqlite_where=_unprocessed,
)

# Statuses whose wamid we do not know yet (the webhook beat our own commit of the send).
pending_status = sa.Table(
    "pending_status",
    metadata,
    sa.Column("id", BigIntId, primary_key=True, autoincrement=True),
    sa.Column("provider_message_id", sa.String(128), nullable=False, index=True),
    sa.Column("status", sa.String(32), nullable=False),
    sa.Column("status_at", UTCDateTime(), nullable=True),
    sa.Column("payload", JSONType, nullable=False),
    sa.Column("received_at", UTCDateTime(), nullable=False, index=True),
    # The business number the status is about (null: before senders; the shared number's).
    sa.Column("phone_number_id", sa.String(64), nullable=True),
)

# Counters of the database rate limiter, and the write-through copy of the Redis limiter's grants.
rate_limit_counter = sa.Table(
    "rate_limit_counter",
    metadata,
    sa.Column("org_id", sa.String(64), sa.ForeignKey("organization.id"), primary_key=True),
    sa.Column("window_started_at", UTCDateTime(), nullable=False),
    sa.Column("used", sa.BigInteger(), nullable=False),
    # GCRA: the theoretical arrival time of the next message, in Unix seconds.
    sa.Column("tat", sa.Float(), nullable=False),
    sa.Column("updated_at", UTCDateTime(), nullable=False),
)

# Alert state: one row per incident (type + subject), so a firing alert notifies once.
alert = sa.Table(
    "alert",
    metadata,
    sa.Column("id", sa.Uuid(), primary_key=True),
    sa.Column("type", sa.String(32), nullable=False),
    sa.Column("subject", sa.String(64), nullable=False),
    sa.Column("severity", sa.String(16), nullable=False),
    sa.Column("state", sa.String(16), nullable=False),
    sa.Column("summary", sa.Text(), nullable=False),
    sa.Column("details", JSONType, nullable=False),
    sa.Column("first_fired_at", UTCDateTime(), nullable=False),
    sa.Column("last_notified_at", UTCDateTime(), nullable=True),
    sa.Column("resolved_at", UTCDateTime(), nullable=True),
    sa.Column("notifications", sa.Integer(), nullable=False),
    sa.Column("updated_at", UTCDateTime(), nullable=False),
)
_firing = sa.text("state = 'firing'")
sa.Index(
    "ix_alert_one_firing_per_subject",
    alert.c.type,
    alert.c.subject,
    unique=True,
    postgresql_where=_firing,
    sqlite_where=_firing,
)
sa.Index("ix_alert_state_fired", alert.c.state, alert.c.first_fired_at)

# Wamids of sends whose outcome lost its claim (a duplicate send): the message keeps its first
# wamid in `provider_message_id`, and these stay linked so their statuses are still recognised.
message_wamid = sa.Table(
    "message_wamid",
    metadata,
    sa.Column("provider_message_id", sa.String(128), primary_key=True),
    sa.Column("message_id", sa.Uuid(), sa.ForeignKey("outbound_message.id"), nullable=False),
    sa.Column("org_id", sa.String(64), nullable=False),
    sa.Column("created_at", UTCDateTime(), nullable=False),
)
sa.Index("ix_message_wamid_message", message_wamid.c.message_id)

# A WhatsApp Business Account: Meta's messaging limit and account restrictions are per WABA,
# shared by its numbers.
waba = sa.Table(
    "waba",
    metadata,
    sa.Column("waba_id", sa.String(64), primary_key=True),
    # TIER_250 | TIER_2K | TIER_10K | TIER_100K | TIER_UNLIMITED, or null (unknown: no cap).
    sa.Column("messaging_limit", sa.String(32), nullable=True),
    # When an ACCOUNT_RESTRICTION ends (its `expiration`); null while none or with no end.
    sa.Column("restricted_until", UTCDateTime(), nullable=True),
    sa.Column("updated_at", UTCDateTime(), nullable=False),
)

# A WhatsApp business phone number an organisation sends from, with its own access token
# (encrypted at rest: see wa_outbound.secrets). The shared sender's row has org_id null.
sender = sa.Table(
    "sender",
    metadata,
    sa.Column("id", sa.Uuid(), primary_key=True),
    sa.Column("org_id", sa.String(64), sa.ForeignKey("organization.id"), nullable=True, index=True),
    sa.Column("name", sa.String(200), nullable=True),
    sa.Column("phone_number_id", sa.String(64), nullable=False, index=True),
    sa.Column("waba_id", sa.String(64), nullable=True, index=True),
    sa.Column("display_phone_number", sa.String(32), nullable=True),
    sa.Column("is_default", sa.Boolean(), nullable=False),
    sa.Column("messages_per_second", sa.Float(), nullable=False),
    sa.Column("access_token", sa.Text(), nullable=True),
    sa.Column("token_last4", sa.String(4), nullable=True),
    # Some of manual | token_invalid | account_restricted | payment_issue; paused while any.
    sa.Column("paused_reasons", JSONType, nullable=False),
    sa.Column("paused_at", UTCDateTime(), nullable=True),
    sa.Column("quality_rating", sa.String(16), nullable=True),
    sa.Column("created_at", UTCDateTime(), nullable=False),
    sa.Column("updated_at", UTCDateTime(), nullable=False),
    # A deleted sender's row stays: its messages' late statuses still find them.
    sa.Column("deleted_at", UTCDateTime(), nullable=True),
)
_live = sa.text("deleted_at IS NULL")
sa.Index(
    "ix_sender_live_phone_number_id",
    sender.c.phone_number_id,
    unique=True,
    postgresql_where=_live,
    sqlite_where=_live,
)
_is_default = sa.text("is_default AND deleted_at IS NULL")
sa.Index(
    "ix_sender_one_default_per_org",
    sender.c.org_id,
    unique=True,
    postgresql_where=_is_default,
    sqlite_where=_is_default,
)

# Meta's limits per sender, as the database limiter keeps them (Redis keeps its own copy of the
# throughput and pair state; the reached recipients are authoritative here).
# Grants per 100 ms bucket of the last ~1.2 s: {"<bucket index>": count}.
sender_throughput = sa.Table(
    "sender_throughput",
    metadata,
    sa.Column("sender_id", sa.Uuid(), primary_key=True),
    sa.Column("buckets", JSONType, nullable=False),
    sa.Column("updated_at", UTCDateTime(), nullable=False),
)
# When a sender may next send to a recipient (pair pacing).
pair_slot = sa.Table(
    "pair_slot",
    metadata,
    sa.Column("sender_id", sa.Uuid(), primary_key=True),
    sa.Column("phone", sa.String(80), primary_key=True),
    sa.Column("next_at", UTCDateTime(), nullable=False, index=True),
)
# Recipients a WABA reached with a template outside their service window, and when last: the
# messaging limit counts those of the last 24 hours.
waba_reach = sa.Table(
    "waba_reach",
    metadata,
    sa.Column("waba_id", sa.String(64), primary_key=True),
    sa.Column("phone", sa.String(80), primary_key=True),
    sa.Column("reached_at", UTCDateTime(), nullable=False),
)
sa.Index("ix_waba_reach_waba_id_reached_at", waba_reach.c.waba_id, waba_reach.c.reached_at)
