"""A message's expiry: still unsent at `expires_at`, it fails with the code `expired`

Revision ID: 0007
Revises: 0006
Create Date: 2026-12-02 14:40:00.000000
"""

from collections.abc import Sequence

import sqlalchemy as sa
from alembic import op

revision: str = "0007"
down_revision: str | None = "0006"
branch_labels: str | Sequence[str] | None = None
depends_on: str | Sequence[str] | None = None

_WAITING = "status IN ('QUEUED', 'RETRYING') AND expires_at IS NOT NULL"


def upgrade() -> None:
    with op.batch_alter_table("outbound_message") as batch:
        batch.add_column(sa.Column("expires_at", sa.DateTime(timezone=True), nullable=True))
    op.create_index(
        "ix_outbound_message_expiring",
        "outbound_message",
        ["expires_at"],
        postgresql_where=sa.text(_WAITING),
        sqlite_where=sa.text(_WAITING),
    )


def downgrade() -> None:
    op.drop_index("ix_outbound_message_expiring", "outbound_message")
    with op.batch_alter_table("outbound_message") as batch:
        batch.drop_column("expires_at")
