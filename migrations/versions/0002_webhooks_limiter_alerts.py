"""Webhook events, pending statuses, rate-limiter counters, alerts

Revision ID: 0002
Revises: 0001
Create Date: 2026-11-30 09:30:30.156044
"""

from collections.abc import Sequence

import sqlalchemy as sa
from alembic import op
from sqlalchemy.dialects import postgresql

revision: str = "0002"
down_revision: str | None = "0001"
branch_labels: str | Sequence[str] | None = None
depends_on: str | Sequence[str] | None = None

# Frozen copies of the column types, so this migration never changes with the application code.
TS = sa.DateTime(timezone=True)
JSON = sa.JSON().with_variant(postgresql.JSONB(), "postgresql")
BIGID = sa.BigInteger().with_variant(sa.Integer(), "sqlite")


def upgrade() -> None:
    op.create_table(
        "alert",
        sa.Column("id", sa.Uuid(), nullable=False),
        sa.Column("type", sa.String(length=32), nullable=False),
        sa.Column("subject", sa.String(length=64), nullable=False),
        sa.Column("severity", sa.String(length=16), nullable=False),
        sa.Column("state", sa.String(length=16), nullable=False),
        sa.Column("summary", sa.Text(), nullable=False),
        sa.Column("details", JSON, nullable=False),
        sa.Column("first_fired_at", TS, nullable=False),
        sa.Column("last_notified_at", TS, nullable=True),
        sa.Column("resolved_at", TS, nullable=True),
        sa.Column("notifications", sa.Integer(), nullable=False),
        sa.Column("updated_at", TS, nullable=False),
        sa.PrimaryKeyConstraint("id", name=op.f("pk_alert")),
    )
    with op.batch_alter_table("alert", schema=None) as batch_op:
        batch_op.create_index(
            "ix_alert_one_firing_per_subject",
            ["type", "subject"],
            unique=True,
            postgresql_where=sa.text("state = 'firing'"),
            sqlite_where=sa.text("state = 'firing'"),
        )
        batch_op.create_index("ix_alert_state_fired", ["state", "first_fired_at"], unique=False)

    op.create_table(
        "pending_status",
        sa.Column("id", BIGID, autoincrement=True, nullable=False),
        sa.Column("provider_message_id", sa.String(length=128), nullable=False),
        sa.Column("status", sa.String(length=32), nullable=False),
        sa.Column("status_at", TS, nullable=True),
        sa.Column("payload", JSON, nullable=False),
        sa.Column("received_at", TS, nullable=False),
        sa.PrimaryKeyConstraint("id", name=op.f("pk_pending_status")),
    )
    with op.batch_alter_table("pending_status", schema=None) as batch_op:
        batch_op.create_index(
            batch_op.f("ix_pending_status_provider_message_id"),
            ["provider_message_id"],
            unique=False,
        )
        batch_op.create_index(
            batch_op.f("ix_pending_status_received_at"), ["received_at"], unique=False
        )

    op.create_table(
        "webhook_event",
        sa.Column("id", BIGID, autoincrement=True, nullable=False),
        sa.Column("received_at", TS, nullable=False),
        sa.Column("body", sa.LargeBinary(), nullable=False),
        sa.Column("processed_at", TS, nullable=True),
        sa.Column("attempts", sa.Integer(), server_default="0", nullable=False),
        sa.Column("last_error", sa.Text(), nullable=True),
        sa.PrimaryKeyConstraint("id", name=op.f("pk_webhook_event")),
    )
    with op.batch_alter_table("webhook_event", schema=None) as batch_op:
        batch_op.create_index(
            "ix_webhook_event_unprocessed",
            ["received_at"],
            unique=False,
            postgresql_where=sa.text("processed_at IS NULL"),
            sqlite_where=sa.text("processed_at IS NULL"),
        )

    op.create_table(
        "rate_limit_counter",
        sa.Column("org_id", sa.String(length=64), nullable=False),
        sa.Column("window_started_at", TS, nullable=False),
        sa.Column("used", sa.BigInteger(), nullable=False),
        sa.Column("tat", sa.Float(), nullable=False),
        sa.Column("updated_at", TS, nullable=False),
        sa.ForeignKeyConstraint(
            ["org_id"], ["organization.id"], name=op.f("fk_rate_limit_counter_org_id_organization")
        ),
        sa.PrimaryKeyConstraint("org_id", name=op.f("pk_rate_limit_counter")),
    )
    with op.batch_alter_table("outbound_message", schema=None) as batch_op:
        batch_op.create_index("ix_outbound_message_org_status", ["org_id", "status"], unique=False)


def downgrade() -> None:
    with op.batch_alter_table("outbound_message", schema=None) as batch_op:
        batch_op.drop_index("ix_outbound_message_org_status")

    op.drop_table("rate_limit_counter")
    with op.batch_alter_table("webhook_event", schema=None) as batch_op:
        batch_op.drop_index(
            "ix_webhook_event_unprocessed",
            postgresql_where=sa.text("processed_at IS NULL"),
            sqlite_where=sa.text("processed_at IS NULL"),
        )

    op.drop_table("webhook_event")
    with op.batch_alter_table("pending_status", schema=None) as batch_op:
        batch_op.drop_index(batch_op.f("ix_pending_status_received_at"))
        batch_op.drop_index(batch_op.f("ix_pending_status_provider_message_id"))

    op.drop_table("pending_status")
    with op.batch_alter_table("alert", schema=None) as batch_op:
        batch_op.drop_index("ix_alert_state_fired")
        batch_op.drop_index(
            "ix_alert_one_firing_per_subject",
            postgresql_where=sa.text("state = 'firing'"),
            sqlite_where=sa.text("state = 'firing'"),
        )

    op.drop_table("alert")
