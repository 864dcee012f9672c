"""Callbacks: the organisation's webhook endpoints, the events we report, their deliveries

Revision ID: 0008
Revises: 0007
Create Date: 2026-12-02 17:00:00.000000
"""

from collections.abc import Sequence

import sqlalchemy as sa
from alembic import op
from sqlalchemy.dialects import postgresql

revision: str = "0008"
down_revision: str | None = "0007"
branch_labels: str | Sequence[str] | None = None
depends_on: str | Sequence[str] | None = None

TS = sa.DateTime(timezone=True)
JSON = sa.JSON().with_variant(postgresql.JSONB(), "postgresql")
BIGINT = sa.BigInteger().with_variant(sa.Integer(), "sqlite")
PENDING = sa.text("status = 'pending'")


def upgrade() -> None:
    op.create_table(
        "callback_endpoint",
        sa.Column("id", sa.Uuid(), nullable=False),
        sa.Column("org_id", sa.String(64), nullable=False),
        sa.Column("url", sa.Text(), nullable=False),
        sa.Column("events", JSON, nullable=True),
        sa.Column("description", sa.String(500), nullable=True),
        sa.Column("enabled", sa.Boolean(), nullable=False),
        sa.Column("disabled_reason", sa.String(16), nullable=True),
        sa.Column("secret", sa.Text(), nullable=False),
        sa.Column("previous_secret", sa.Text(), nullable=True),
        sa.Column("previous_secret_until", TS, nullable=True),
        sa.Column("failing_since", TS, nullable=True),
        sa.Column("last_success_at", TS, nullable=True),
        sa.Column("created_at", TS, nullable=False),
        sa.Column("updated_at", TS, nullable=False),
        sa.ForeignKeyConstraint(
            ["org_id"],
            ["organization.id"],
            name=op.f("fk_callback_endpoint_org_id_organization"),
        ),
        sa.PrimaryKeyConstraint("id", name=op.f("pk_callback_endpoint")),
    )
    op.create_index("ix_callback_endpoint_org", "callback_endpoint", ["org_id", "created_at"])
    op.create_table(
        "callback_event",
        sa.Column("seq", BIGINT, autoincrement=True, nullable=False),
        sa.Column("id", sa.Uuid(), nullable=False),
        sa.Column("org_id", sa.String(64), nullable=False),
        sa.Column("type", sa.String(64), nullable=False),
        sa.Column("message_id", sa.Uuid(), nullable=True),
        sa.Column("occurred_at", TS, nullable=False),
        sa.Column("data", JSON, nullable=False),
        sa.PrimaryKeyConstraint("seq", name=op.f("pk_callback_event")),
        sa.UniqueConstraint("id", name=op.f("uq_callback_event_id")),
    )
    op.create_table(
        "callback_delivery",
        sa.Column("id", sa.Uuid(), nullable=False),
        sa.Column("endpoint_id", sa.Uuid(), nullable=False),
        sa.Column("event_seq", BIGINT, nullable=False),
        sa.Column("org_id", sa.String(64), nullable=False),
        sa.Column("message_id", sa.Uuid(), nullable=True),
        sa.Column("status", sa.String(16), nullable=False),
        sa.Column("attempts", sa.Integer(), nullable=False),
        sa.Column("next_attempt_at", TS, nullable=False),
        sa.Column("lease_until", TS, nullable=True),
        sa.Column("claimed_by", sa.String(64), nullable=True),
        sa.Column("last_status_code", sa.Integer(), nullable=True),
        sa.Column("last_error", sa.Text(), nullable=True),
        sa.Column("created_at", TS, nullable=False),
        sa.Column("updated_at", TS, nullable=False),
        sa.Column("delivered_at", TS, nullable=True),
        sa.ForeignKeyConstraint(
            ["endpoint_id"],
            ["callback_endpoint.id"],
            name=op.f("fk_callback_delivery_endpoint_id_callback_endpoint"),
        ),
        sa.ForeignKeyConstraint(
            ["event_seq"],
            ["callback_event.seq"],
            name=op.f("fk_callback_delivery_event_seq_callback_event"),
        ),
        sa.PrimaryKeyConstraint("id", name=op.f("pk_callback_delivery")),
    )
    op.create_index(
        "ix_callback_delivery_due",
        "callback_delivery",
        ["next_attempt_at"],
        postgresql_where=PENDING,
        sqlite_where=PENDING,
    )
    op.create_index(
        "ix_callback_delivery_order",
        "callback_delivery",
        ["endpoint_id", "message_id", "event_seq"],
        postgresql_where=PENDING,
        sqlite_where=PENDING,
    )
    op.create_index(
        "ix_callback_delivery_endpoint_created",
        "callback_delivery",
        ["endpoint_id", "created_at", "id"],
    )


def downgrade() -> None:
    op.drop_table("callback_delivery")
    op.drop_table("callback_event")
    op.drop_index("ix_callback_endpoint_org", "callback_endpoint")
    op.drop_table("callback_endpoint")
