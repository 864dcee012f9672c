"""initial schema

Revision ID: 0001
Revises:
Create Date: 2026-11-30 09:24:49.927851
"""

from collections.abc import Sequence

import sqlalchemy as sa
from alembic import op
from sqlalchemy.dialects import postgresql

revision: str = "0001"
down_revision: str | None = None
branch_labels: str | Sequence[str] | None = None
depends_on: str | Sequence[str] | None = None

# Frozen copies of the column types, so this migration never changes with the application code.
TS = sa.DateTime(timezone=True)
JSON = sa.JSON().with_variant(postgresql.JSONB(), "postgresql")
BIGID = sa.BigInteger().with_variant(sa.Integer(), "sqlite")


def upgrade() -> None:
    op.create_table(
        "audit_event",
        sa.Column("id", BIGID, autoincrement=True, nullable=False),
        sa.Column("org_id", sa.String(length=64), nullable=True),
        sa.Column("at", TS, nullable=False),
        sa.Column("action", sa.String(length=64), nullable=False),
        sa.Column("actor", sa.String(length=64), nullable=False),
        sa.Column("subject", sa.String(length=200), nullable=True),
        sa.Column("details", JSON, nullable=False),
        sa.PrimaryKeyConstraint("id", name=op.f("pk_audit_event")),
    )
    with op.batch_alter_table("audit_event", schema=None) as batch_op:
        batch_op.create_index(batch_op.f("ix_audit_event_org_id"), ["org_id"], unique=False)

    op.create_table(
        "message_event",
        sa.Column("id", BIGID, autoincrement=True, nullable=False),
        sa.Column("message_id", sa.Uuid(), nullable=False),
        sa.Column("org_id", sa.String(length=64), nullable=False),
        sa.Column("at", TS, nullable=False),
        sa.Column("type", sa.String(length=64), nullable=False),
        sa.Column("from_status", sa.String(length=16), nullable=True),
        sa.Column("to_status", sa.String(length=16), nullable=True),
        sa.Column("actor", sa.String(length=64), nullable=False),
        sa.Column("details", JSON, nullable=False),
        sa.PrimaryKeyConstraint("id", name=op.f("pk_message_event")),
    )
    with op.batch_alter_table("message_event", schema=None) as batch_op:
        batch_op.create_index(
            batch_op.f("ix_message_event_message_id"), ["message_id"], unique=False
        )

    op.create_table(
        "organization",
        sa.Column("id", sa.String(length=64), nullable=False),
        sa.Column("name", sa.String(length=200), nullable=False),
        sa.Column("created_at", TS, nullable=False),
        sa.PrimaryKeyConstraint("id", name=op.f("pk_organization")),
    )
    op.create_table(
        "api_key",
        sa.Column("id", sa.Uuid(), nullable=False),
        sa.Column("org_id", sa.String(length=64), nullable=False),
        sa.Column("name", sa.String(length=200), nullable=True),
        sa.Column("prefix", sa.String(length=16), nullable=False),
        sa.Column("key_hash", sa.String(length=64), nullable=False),
        sa.Column("created_at", TS, nullable=False),
        sa.Column("revoked_at", TS, nullable=True),
        sa.ForeignKeyConstraint(
            ["org_id"], ["organization.id"], name=op.f("fk_api_key_org_id_organization")
        ),
        sa.PrimaryKeyConstraint("id", name=op.f("pk_api_key")),
        sa.UniqueConstraint("key_hash", name=op.f("uq_api_key_key_hash")),
    )
    op.create_table(
        "consent",
        sa.Column("org_id", sa.String(length=64), nullable=False),
        sa.Column("phone", sa.String(length=16), nullable=False),
        sa.Column("status", sa.String(length=16), nullable=False),
        sa.Column("source", sa.String(length=200), nullable=True),
        sa.Column("granted_at", TS, nullable=True),
        sa.Column("revoked_at", TS, nullable=True),
        sa.Column("updated_at", TS, nullable=False),
        sa.ForeignKeyConstraint(
            ["org_id"], ["organization.id"], name=op.f("fk_consent_org_id_organization")
        ),
        sa.PrimaryKeyConstraint("org_id", "phone", name=op.f("pk_consent")),
    )
    op.create_table(
        "outbound_message",
        sa.Column("id", sa.Uuid(), nullable=False),
        sa.Column("org_id", sa.String(length=64), nullable=False),
        sa.Column("channel", sa.String(length=16), nullable=False),
        sa.Column("to_phone", sa.String(length=16), nullable=False),
        sa.Column("kind", sa.String(length=16), nullable=False),
        sa.Column("payload", JSON, nullable=False),
        sa.Column("message_metadata", JSON, nullable=False),
        sa.Column("idempotency_key", sa.String(length=255), nullable=True),
        sa.Column("request_hash", sa.String(length=64), nullable=True),
        sa.Column("status", sa.String(length=16), nullable=False),
        sa.Column("attempts", sa.Integer(), nullable=False),
        sa.Column("max_attempts", sa.Integer(), nullable=False),
        sa.Column("next_attempt_at", TS, nullable=False),
        sa.Column("lease_until", TS, nullable=True),
        sa.Column("claimed_by", sa.String(length=64), nullable=True),
        sa.Column("provider_message_id", sa.String(length=128), nullable=True),
        sa.Column("error_code", sa.String(length=64), nullable=True),
        sa.Column("error_title", sa.String(length=500), nullable=True),
        sa.Column("error_message", sa.Text(), nullable=True),
        sa.Column("error_details", sa.Text(), nullable=True),
        sa.Column("error_retryable", sa.Boolean(), nullable=True),
        sa.Column("dead_lettered", sa.Boolean(), nullable=False),
        sa.Column("created_at", TS, nullable=False),
        sa.Column("updated_at", TS, nullable=False),
        sa.Column("accepted_at", TS, nullable=True),
        sa.Column("sent_at", TS, nullable=True),
        sa.Column("delivered_at", TS, nullable=True),
        sa.Column("read_at", TS, nullable=True),
        sa.Column("failed_at", TS, nullable=True),
        sa.ForeignKeyConstraint(
            ["org_id"], ["organization.id"], name=op.f("fk_outbound_message_org_id_organization")
        ),
        sa.PrimaryKeyConstraint("id", name=op.f("pk_outbound_message")),
        sa.UniqueConstraint(
            "org_id", "idempotency_key", name=op.f("uq_outbound_message_org_id_idempotency_key")
        ),
        sa.UniqueConstraint(
            "provider_message_id", name=op.f("uq_outbound_message_provider_message_id")
        ),
    )
    with op.batch_alter_table("outbound_message", schema=None) as batch_op:
        batch_op.create_index(
            "ix_outbound_message_claimable",
            ["next_attempt_at"],
            unique=False,
            postgresql_where=sa.text("status IN ('QUEUED', 'RETRYING')"),
            sqlite_where=sa.text("status IN ('QUEUED', 'RETRYING')"),
        )
        batch_op.create_index(
            "ix_outbound_message_dlq",
            ["org_id", "failed_at"],
            unique=False,
            postgresql_where=sa.text("dead_lettered"),
            sqlite_where=sa.text("dead_lettered"),
        )
        batch_op.create_index(
            "ix_outbound_message_lease",
            ["lease_until"],
            unique=False,
            postgresql_where=sa.text("status = 'SENDING'"),
            sqlite_where=sa.text("status = 'SENDING'"),
        )
        batch_op.create_index(
            "ix_outbound_message_org_created", ["org_id", "created_at", "id"], unique=False
        )
        batch_op.create_index(
            "ix_outbound_message_org_to", ["org_id", "to_phone", "created_at"], unique=False
        )

    op.create_table(
        "rate_limit",
        sa.Column("org_id", sa.String(length=64), nullable=False),
        sa.Column("quota_limit", sa.BigInteger(), nullable=False),
        sa.Column("window_seconds", sa.Integer(), nullable=False),
        sa.Column("messages_per_second", sa.Float(), nullable=False),
        sa.Column("updated_at", TS, nullable=False),
        sa.ForeignKeyConstraint(
            ["org_id"], ["organization.id"], name=op.f("fk_rate_limit_org_id_organization")
        ),
        sa.PrimaryKeyConstraint("org_id", name=op.f("pk_rate_limit")),
    )
    op.create_table(
        "service_window",
        sa.Column("org_id", sa.String(length=64), nullable=False),
        sa.Column("phone", sa.String(length=16), nullable=False),
        sa.Column("last_inbound_at", TS, nullable=False),
        sa.ForeignKeyConstraint(
            ["org_id"], ["organization.id"], name=op.f("fk_service_window_org_id_organization")
        ),
        sa.PrimaryKeyConstraint("org_id", "phone", name=op.f("pk_service_window")),
    )


def downgrade() -> None:
    op.drop_table("service_window")
    op.drop_table("rate_limit")
    with op.batch_alter_table("outbound_message", schema=None) as batch_op:
        batch_op.drop_index("ix_outbound_message_org_to")
        batch_op.drop_index("ix_outbound_message_org_created")
        batch_op.drop_index(
            "ix_outbound_message_lease",
            postgresql_where=sa.text("status = 'SENDING'"),
            sqlite_where=sa.text("status = 'SENDING'"),
        )
        batch_op.drop_index(
            "ix_outbound_message_dlq",
            postgresql_where=sa.text("dead_lettered"),
            sqlite_where=sa.text("dead_lettered"),
        )
        batch_op.drop_index(
            "ix_outbound_message_claimable",
            postgresql_where=sa.text("status IN ('QUEUED', 'RETRYING')"),
            sqlite_where=sa.text("status IN ('QUEUED', 'RETRYING')"),
        )

    op.drop_table("outbound_message")
    op.drop_table("consent")
    op.drop_table("api_key")
    op.drop_table("organization")
    with op.batch_alter_table("message_event", schema=None) as batch_op:
        batch_op.drop_index(batch_op.f("ix_message_event_message_id"))

    op.drop_table("message_event")
    with op.batch_alter_table("audit_event", schema=None) as batch_op:
        batch_op.drop_index(batch_op.f("ix_audit_event_org_id"))

    op.drop_table("audit_event")
