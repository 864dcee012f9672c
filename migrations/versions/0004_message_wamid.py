"""Wamids of duplicate sends, linked to their message

Revision ID: 0004
Revises: 0003
Create Date: 2026-12-02 08:10:00.000000
"""

from collections.abc import Sequence

import sqlalchemy as sa
from alembic import op

revision: str = "0004"
down_revision: str | None = "0003"
branch_labels: str | Sequence[str] | None = None
depends_on: str | Sequence[str] | None = None


def upgrade() -> None:
    op.create_table(
        "message_wamid",
        sa.Column("provider_message_id", sa.String(128), primary_key=True),
        sa.Column("message_id", sa.Uuid(), sa.ForeignKey("outbound_message.id"), nullable=False),
        sa.Column("org_id", sa.String(64), nullable=False),
        sa.Column("created_at", sa.DateTime(timezone=True), nullable=False),
    )
    op.create_index("ix_message_wamid_message", "message_wamid", ["message_id"])


def downgrade() -> None:
    op.drop_index("ix_message_wamid_message", "message_wamid")
    op.drop_table("message_wamid")
