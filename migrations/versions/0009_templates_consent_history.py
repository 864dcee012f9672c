"""The template registry per WABA, marketing opt-out on consents, and the consent history

Revision ID: 0009
Revises: 0011
Create Date: 2026-12-02 18:00:00.000000
"""

from collections.abc import Sequence

import sqlalchemy as sa
from alembic import op
from sqlalchemy.dialects import postgresql

revision: str = "0009"
# After 0011 (data lifecycle), which main took first; the number stays as it was given.
down_revision: str | None = "0011"
branch_labels: str | Sequence[str] | None = None
depends_on: str | Sequence[str] | None = None

TS = sa.DateTime(timezone=True)
JSON = sa.JSON().with_variant(postgresql.JSONB(), "postgresql")
BIGINT = sa.BigInteger().with_variant(sa.Integer(), "sqlite")


def upgrade() -> None:
    op.create_table(
        "template",
        sa.Column("waba_id", sa.String(64), nullable=False),
        sa.Column("name", sa.String(512), nullable=False),
        sa.Column("language", sa.String(16), nullable=False),
        sa.Column("template_id", sa.String(64), nullable=True),
        sa.Column("status", sa.String(32), nullable=False),
        sa.Column("category", sa.String(32), nullable=True),
        sa.Column("quality", sa.String(16), nullable=True),
        sa.Column("components", JSON, nullable=False),
        sa.Column("updated_at", TS, nullable=False),
        sa.PrimaryKeyConstraint("waba_id", "name", "language", name=op.f("pk_template")),
    )
    op.create_table(
        "template_sync",
        sa.Column("waba_id", sa.String(64), nullable=False),
        sa.Column("synced_at", TS, nullable=True),
        sa.Column("attempted_at", TS, nullable=True),
        sa.Column("last_error", sa.Text(), nullable=True),
        sa.PrimaryKeyConstraint("waba_id", name=op.f("pk_template_sync")),
    )
    op.create_table(
        "consent_event",
        sa.Column("id", BIGINT, autoincrement=True, nullable=False),
        sa.Column("org_id", sa.String(64), nullable=False),
        sa.Column("phone", sa.String(16), nullable=False),
        sa.Column("at", TS, nullable=False),
        sa.Column("status", sa.String(16), nullable=True),
        sa.Column("from_status", sa.String(16), nullable=True),
        sa.Column("marketing_opt_out", sa.Boolean(), nullable=False),
        sa.Column("from_marketing_opt_out", sa.Boolean(), nullable=True),
        sa.Column("source", sa.String(200), nullable=True),
        sa.Column("actor", sa.String(64), nullable=False),
        sa.PrimaryKeyConstraint("id", name=op.f("pk_consent_event")),
    )
    op.create_index("ix_consent_event_org_phone", "consent_event", ["org_id", "phone", "id"])
    # A preference may arrive for a phone with no consent recorded: status null then.
    with op.batch_alter_table("consent") as batch:
        batch.alter_column("status", existing_type=sa.String(16), nullable=True)
        batch.add_column(
            sa.Column("marketing_opt_out", sa.Boolean(), nullable=False, server_default=sa.false())
        )


def downgrade() -> None:
    op.execute("DELETE FROM consent WHERE status IS NULL")
    with op.batch_alter_table("consent") as batch:
        batch.drop_column("marketing_opt_out")
        batch.alter_column("status", existing_type=sa.String(16), nullable=False)
    op.drop_index("ix_consent_event_org_phone", "consent_event")
    op.drop_table("consent_event")
    op.drop_table("template_sync")
    op.drop_table("template")
