"""The callback outbox's tables: the organisation's endpoints, the events we report, and one
delivery per (event, endpoint). Part of `schema.metadata`; kept apart for the module's size."""

from __future__ import annotations

import sqlalchemy as sa

from wa_outbound.db.schema import metadata, outbound_message, webhook_event

__all__ = ["callback_delivery", "callback_endpoint", "callback_event", "metadata"]
from wa_outbound.db.types import BigIntId, JSONType, UTCDateTime

# An organisation's webhook endpoint. Its secrets are stored encrypted (crypto.columns).
callback_endpoint = sa.Table(
    "callback_endpoint",
    metadata,
    sa.Column("id", sa.Uuid(), primary_key=True),
    sa.Column("org_id", sa.String(64), sa.ForeignKey("organization.id"), nullable=False),
    sa.Column("url", sa.Text(), nullable=False),
    # Event types it is sent; null: every type, future ones included.
    sa.Column("events", JSONType, nullable=True),
    sa.Column("description", sa.String(500), nullable=True),
    sa.Column("enabled", sa.Boolean(), nullable=False),
    # manual | gone | failing, while not enabled.
    sa.Column("disabled_reason", sa.String(16), nullable=True),
    sa.Column("secret", sa.Text(), nullable=False),
    # The secret before the last rotation, which still signs until `previous_secret_until`.
    sa.Column("previous_secret", sa.Text(), nullable=True),
    sa.Column("previous_secret_until", UTCDateTime(), nullable=True),
    # The first failed attempt since the last success (null while it succeeds).
    sa.Column("failing_since", UTCDateTime(), nullable=True),
    sa.Column("last_success_at", UTCDateTime(), nullable=True),
    sa.Column("created_at", UTCDateTime(), nullable=False),
    sa.Column("updated_at", UTCDateTime(), nullable=False),
)
sa.Index("ix_callback_endpoint_org", callback_endpoint.c.org_id, callback_endpoint.c.created_at)

# An event we report, written in the transaction of the change it reports. `seq` orders the
# events of one message (a later change's transaction takes its number after the earlier one
# committed: the message's row lock is held while it is written); `id` is the webhook-id.
callback_event = sa.Table(
    "callback_event",
    metadata,
    sa.Column("seq", BigIntId, primary_key=True, autoincrement=True),
    sa.Column("id", sa.Uuid(), nullable=False, unique=True),
    sa.Column("org_id", sa.String(64), nullable=False),
    sa.Column("type", sa.String(64), nullable=False),
    sa.Column("message_id", sa.Uuid(), nullable=True),
    sa.Column("occurred_at", UTCDateTime(), nullable=False),
    # The body's `data`, as it was when the event happened.
    sa.Column("data", JSONType, nullable=False),
)

# One event to one endpoint: the unit the delivery worker claims, fenced like the dispatcher's
# claims (owner and attempt number).
callback_delivery = sa.Table(
    "callback_delivery",
    metadata,
    sa.Column("id", sa.Uuid(), primary_key=True),
    sa.Column("endpoint_id", sa.Uuid(), sa.ForeignKey("callback_endpoint.id"), nullable=False),
    sa.Column("event_seq", BigIntId, sa.ForeignKey("callback_event.seq"), nullable=False),
    sa.Column("org_id", sa.String(64), nullable=False),
    # The event's message, when it has one: events of one message go to an endpoint in order.
    sa.Column("message_id", sa.Uuid(), nullable=True),
    # pending | succeeded | failed
    sa.Column("status", sa.String(16), nullable=False),
    sa.Column("attempts", sa.Integer(), nullable=False),
    sa.Column("next_attempt_at", UTCDateTime(), nullable=False),
    sa.Column("lease_until", UTCDateTime(), nullable=True),
    sa.Column("claimed_by", sa.String(64), nullable=True),
    sa.Column("last_status_code", sa.Integer(), nullable=True),
    sa.Column("last_error", sa.Text(), nullable=True),
    sa.Column("created_at", UTCDateTime(), nullable=False),
    sa.Column("updated_at", UTCDateTime(), nullable=False),
    sa.Column("delivered_at", UTCDateTime(), nullable=True),
)
_pending = sa.text("status = 'pending'")
sa.Index(
    "ix_callback_delivery_due",
    callback_delivery.c.next_attempt_at,
    postgresql_where=_pending,
    sqlite_where=_pending,
)
sa.Index(
    "ix_callback_delivery_order",
    callback_delivery.c.endpoint_id,
    callback_delivery.c.message_id,
    callback_delivery.c.event_seq,
    postgresql_where=_pending,
    sqlite_where=_pending,
)
sa.Index(
    "ix_callback_delivery_endpoint_created",
    callback_delivery.c.endpoint_id,
    callback_delivery.c.created_at,
    callback_delivery.c.id,
)

# Retention's batches (lifecycle.retention): the oldest finished messages, processed bodies and
# events, a message's events and an event's deliveries. Here for schema.py's size.
_finished = sa.text("status NOT IN ('QUEUED', 'SENDING', 'RETRYING')")
sa.Index(
    "ix_outbound_message_finished_updated",
    outbound_message.c.updated_at,
    postgresql_where=_finished,
    sqlite_where=_finished,
)
_processed = sa.text("processed_at IS NOT NULL")
sa.Index(
    "ix_webhook_event_processed_received",
    webhook_event.c.received_at,
    postgresql_where=_processed,
    sqlite_where=_processed,
)
sa.Index("ix_callback_event_occurred_at", callback_event.c.occurred_at)
sa.Index("ix_callback_event_message_id", callback_event.c.message_id)
sa.Index("ix_callback_delivery_event_seq", callback_delivery.c.event_seq)
