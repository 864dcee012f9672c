"""Data lifecycle: erased messages (`to_phone` nullable, `redacted`) and the indexes retention's
batches read

Revision ID: 0011
Revises: 0012
Create Date: 2026-12-02 17:00:00.000000
"""

from collections.abc import Sequence

import sqlalchemy as sa
from alembic import op

revision: str = "0011"
# Written on 0008; follows whatever main's last migration is when merged (0012 at the time).
down_revision: str | None = "0012"
branch_labels: str | Sequence[str] | None = None
depends_on: str | Sequence[str] | None = None

_FINISHED = sa.text("status NOT IN ('QUEUED', 'SENDING', 'RETRYING')")
_PROCESSED = sa.text("processed_at IS NOT NULL")


def upgrade() -> None:
    with op.batch_alter_table("outbound_message") as batch:
        batch.alter_column("to_phone", existing_type=sa.String(16), nullable=True)
        batch.add_column(
            sa.Column("redacted", sa.Boolean(), nullable=False, server_default=sa.false())
        )
    # An erased contact's windows are kept under its token (`redacted:` + 64 hex digits).
    with op.batch_alter_table("service_window") as batch:
        batch.alter_column("phone", existing_type=sa.String(16), type_=sa.String(80))
    # Retention's batches: the oldest finished messages, processed webhook bodies and events.
    op.create_index(
        "ix_outbound_message_finished_updated",
        "outbound_message",
        ["updated_at"],
        postgresql_where=_FINISHED,
        sqlite_where=_FINISHED,
    )
    op.create_index(
        "ix_webhook_event_processed_received",
        "webhook_event",
        ["received_at"],
        postgresql_where=_PROCESSED,
        sqlite_where=_PROCESSED,
    )
    op.create_index("ix_callback_event_occurred_at", "callback_event", ["occurred_at"])
    # A message's callback events and an event's deliveries, found when either is deleted.
    op.create_index("ix_callback_event_message_id", "callback_event", ["message_id"])
    op.create_index("ix_callback_delivery_event_seq", "callback_delivery", ["event_seq"])


def downgrade() -> None:
    op.drop_index("ix_callback_delivery_event_seq", "callback_delivery")
    op.drop_index("ix_callback_event_message_id", "callback_event")
    op.drop_index("ix_callback_event_occurred_at", "callback_event")
    op.drop_index("ix_webhook_event_processed_received", "webhook_event")
    op.drop_index("ix_outbound_message_finished_updated", "outbound_message")
    op.execute("DELETE FROM service_window WHERE phone LIKE 'redacted:%'")
    with op.batch_alter_table("service_window") as batch:
        batch.alter_column("phone", existing_type=sa.String(80), type_=sa.String(16))
    with op.batch_alter_table("outbound_message") as batch:
        batch.drop_column("redacted")
    # Erased messages have no recipient left: an empty one, to go back under NOT NULL.
    op.execute("UPDATE outbound_message SET to_phone = '' WHERE to_phone IS NULL")
    with op.batch_alter_table("outbound_message") as batch:
        batch.alter_column("to_phone", existing_type=sa.String(16), nullable=False)
