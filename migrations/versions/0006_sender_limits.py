"""Meta's limits per sender: the database limiter's throughput and pair state, the recipients
each WABA reached, an optional per-org cap, and the claim's index without paused senders

Revision ID: 0006
Revises: 0005
Create Date: 2026-12-02 13:00:00.000000
"""

from collections.abc import Sequence

import sqlalchemy as sa
from alembic import op
from sqlalchemy.dialects import postgresql

revision: str = "0006"
down_revision: str | None = "0005"
branch_labels: str | Sequence[str] | None = None
depends_on: str | Sequence[str] | None = None

TS = sa.DateTime(timezone=True)
JSON = sa.JSON().with_variant(postgresql.JSONB(), "postgresql")
READY = sa.text(
    "status IN ('QUEUED', 'RETRYING') "
    "AND (waiting_reason IS NULL OR waiting_reason <> 'sender_paused')"
)
PAIR_WAITING = sa.text("waiting_reason = 'pair_interval' AND status IN ('QUEUED', 'RETRYING')")


def upgrade() -> None:
    # Null: the org has no per-second cap of its own (its senders' throughput paces it).
    with op.batch_alter_table("rate_limit") as batch:
        batch.alter_column("messages_per_second", existing_type=sa.Float(), nullable=True)
    op.create_table(
        "sender_throughput",
        sa.Column("sender_id", sa.Uuid(), nullable=False),
        sa.Column("buckets", JSON, nullable=False),
        sa.Column("updated_at", TS, nullable=False),
        sa.PrimaryKeyConstraint("sender_id", name=op.f("pk_sender_throughput")),
    )
    op.create_table(
        "pair_slot",
        sa.Column("sender_id", sa.Uuid(), nullable=False),
        sa.Column("phone", sa.String(80), nullable=False),
        sa.Column("next_at", TS, nullable=False),
        sa.PrimaryKeyConstraint("sender_id", "phone", name=op.f("pk_pair_slot")),
    )
    op.create_index("ix_pair_slot_next_at", "pair_slot", ["next_at"])
    op.create_table(
        "waba_reach",
        sa.Column("waba_id", sa.String(64), nullable=False),
        sa.Column("phone", sa.String(80), nullable=False),
        sa.Column("reached_at", TS, nullable=False),
        sa.PrimaryKeyConstraint("waba_id", "phone", name=op.f("pk_waba_reach")),
    )
    op.create_index("ix_waba_reach_waba_id_reached_at", "waba_reach", ["waba_id", "reached_at"])
    op.create_index(
        "ix_outbound_message_claim_ready",
        "outbound_message",
        ["next_attempt_at"],
        postgresql_where=READY,
        sqlite_where=READY,
    )
    op.create_index(
        "ix_outbound_message_pair_waiting",
        "outbound_message",
        ["sender_id", "to_phone", "created_at"],
        postgresql_where=PAIR_WAITING,
        sqlite_where=PAIR_WAITING,
    )


def downgrade() -> None:
    op.drop_index("ix_outbound_message_pair_waiting", "outbound_message")
    op.drop_index("ix_outbound_message_claim_ready", "outbound_message")
    op.drop_index("ix_waba_reach_waba_id_reached_at", "waba_reach")
    op.drop_table("waba_reach")
    op.drop_index("ix_pair_slot_next_at", "pair_slot")
    op.drop_table("pair_slot")
    op.drop_table("sender_throughput")
    op.execute("UPDATE rate_limit SET messages_per_second = 80 WHERE messages_per_second IS NULL")
    with op.batch_alter_table("rate_limit") as batch:
        batch.alter_column("messages_per_second", existing_type=sa.Float(), nullable=False)
