"""Senders: an organisation's own WhatsApp numbers, their WABAs, and the message's sender

Revision ID: 0005
Revises: 0004
Create Date: 2026-12-02 12:50:00.000000
"""

import uuid
from collections.abc import Sequence

import sqlalchemy as sa
from alembic import op
from sqlalchemy.dialects import postgresql

revision: str = "0005"
down_revision: str | None = "0004"
branch_labels: str | Sequence[str] | None = None
depends_on: str | Sequence[str] | None = None

TS = sa.DateTime(timezone=True)
JSON = sa.JSON().with_variant(postgresql.JSONB(), "postgresql")
# The deployment's shared sender (WA_PHONE_NUMBER_ID, or the sandbox's): a fixed id.
SHARED = uuid.UUID(int=0)


def upgrade() -> None:
    op.create_table(
        "waba",
        sa.Column("waba_id", sa.String(64), nullable=False),
        sa.Column("messaging_limit", sa.String(32), nullable=True),
        sa.Column("restricted_until", TS, nullable=True),
        sa.Column("updated_at", TS, nullable=False),
        sa.PrimaryKeyConstraint("waba_id", name=op.f("pk_waba")),
    )
    op.create_table(
        "sender",
        sa.Column("id", sa.Uuid(), nullable=False),
        sa.Column("org_id", sa.String(64), nullable=True),
        sa.Column("name", sa.String(200), nullable=True),
        sa.Column("phone_number_id", sa.String(64), nullable=False),
        sa.Column("waba_id", sa.String(64), nullable=True),
        sa.Column("display_phone_number", sa.String(32), nullable=True),
        sa.Column("is_default", sa.Boolean(), nullable=False),
        sa.Column("messages_per_second", sa.Float(), nullable=False),
        sa.Column("access_token", sa.Text(), nullable=True),
        sa.Column("token_last4", sa.String(4), nullable=True),
        sa.Column("paused_reasons", JSON, nullable=False),
        sa.Column("paused_at", TS, nullable=True),
        sa.Column("quality_rating", sa.String(16), nullable=True),
        sa.Column("created_at", TS, nullable=False),
        sa.Column("updated_at", TS, nullable=False),
        sa.Column("deleted_at", TS, nullable=True),
        sa.ForeignKeyConstraint(
            ["org_id"], ["organization.id"], name=op.f("fk_sender_org_id_organization")
        ),
        sa.PrimaryKeyConstraint("id", name=op.f("pk_sender")),
    )
    # A deleted sender's row stays (its messages' late statuses still route to them); its
    # number may be registered again.
    op.create_index(
        "ix_sender_live_phone_number_id",
        "sender",
        ["phone_number_id"],
        unique=True,
        postgresql_where=sa.text("deleted_at IS NULL"),
        sqlite_where=sa.text("deleted_at IS NULL"),
    )
    op.create_index("ix_sender_phone_number_id", "sender", ["phone_number_id"])
    op.create_index("ix_sender_org_id", "sender", ["org_id"])
    op.create_index("ix_sender_waba_id", "sender", ["waba_id"])
    op.create_index(
        "ix_sender_one_default_per_org",
        "sender",
        ["org_id"],
        unique=True,
        postgresql_where=sa.text("is_default AND deleted_at IS NULL"),
        sqlite_where=sa.text("is_default AND deleted_at IS NULL"),
    )
    with op.batch_alter_table("pending_status") as batch:
        batch.add_column(sa.Column("phone_number_id", sa.String(64), nullable=True))

    with op.batch_alter_table("outbound_message") as batch:
        batch.add_column(sa.Column("sender_id", sa.Uuid(), nullable=True))
        batch.add_column(sa.Column("waiting_reason", sa.String(32), nullable=True))
        batch.drop_constraint("uq_outbound_message_provider_message_id", type_="unique")
    # Wamids are Meta's, per number: a status names the number it is about (see receipts).
    op.create_index(
        "ix_outbound_message_wamid",
        "outbound_message",
        ["provider_message_id", "sender_id"],
        unique=True,
    )
    op.create_index(
        "ix_outbound_message_sender_waiting",
        "outbound_message",
        ["sender_id"],
        postgresql_where=sa.text("status IN ('QUEUED', 'RETRYING')"),
        sqlite_where=sa.text("status IN ('QUEUED', 'RETRYING')"),
    )
    # What waits is the shared sender's: the only one there was.
    op.execute(
        sa.text(
            "UPDATE outbound_message SET sender_id = :shared "
            "WHERE status IN ('QUEUED', 'RETRYING', 'SENDING')"
        ).bindparams(sa.bindparam("shared", SHARED, type_=sa.Uuid()))
    )

    # Service windows are Meta's, per business number and user.
    with op.batch_alter_table("service_window", recreate="always") as batch:
        batch.add_column(
            sa.Column("sender_id", sa.Uuid(), nullable=False, server_default=str(SHARED))
        )
        batch.drop_constraint("pk_service_window", type_="primary")
        batch.create_primary_key("pk_service_window", ["org_id", "sender_id", "phone"])
    with op.batch_alter_table("service_window") as batch:
        batch.alter_column("sender_id", server_default=None)


def downgrade() -> None:
    with op.batch_alter_table("service_window", recreate="always") as batch:
        batch.drop_constraint("pk_service_window", type_="primary")
        batch.drop_column("sender_id")
        batch.create_primary_key("pk_service_window", ["org_id", "phone"])
    op.drop_index("ix_outbound_message_sender_waiting", "outbound_message")
    op.drop_index("ix_outbound_message_wamid", "outbound_message")
    with op.batch_alter_table("outbound_message") as batch:
        batch.drop_column("waiting_reason")
        batch.drop_column("sender_id")
        batch.create_unique_constraint(
            "uq_outbound_message_provider_message_id", ["provider_message_id"]
        )
    with op.batch_alter_table("pending_status") as batch:
        batch.drop_column("phone_number_id")
    op.drop_index("ix_sender_one_default_per_org", "sender")
    op.drop_index("ix_sender_phone_number_id", "sender")
    op.drop_index("ix_sender_live_phone_number_id", "sender")
    op.drop_index("ix_sender_waba_id", "sender")
    op.drop_index("ix_sender_org_id", "sender")
    op.drop_table("sender")
    op.drop_table("waba")
