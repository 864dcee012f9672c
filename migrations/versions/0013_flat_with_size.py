"""The dead-letter index the dead-letter queries can use (issue #21, "flat with size")

Its predicate was `dead_lettered`, which PostgreSQL does not prove from the queries'
`dead_lettered IS true`: the report and the lists read the org's whole outbox instead. Now
`dead_lettered IS TRUE`, with the report's columns (channel, error code) so its counts are
index-only scans.

Revision ID: 0013
Revises: 0009
Create Date: 2026-12-03 07:30:00.000000
"""

from collections.abc import Sequence

import sqlalchemy as sa
from alembic import op

revision: str = "0013"
down_revision: str | None = "0009"
branch_labels: str | Sequence[str] | None = None
depends_on: str | Sequence[str] | None = None

_DEAD = sa.text("dead_lettered IS TRUE")
_DEAD_BEFORE = sa.text("dead_lettered")


def upgrade() -> None:
    op.drop_index("ix_outbound_message_dlq", "outbound_message")
    op.create_index(
        "ix_outbound_message_dlq",
        "outbound_message",
        ["org_id", "failed_at", "channel", "error_code"],
        postgresql_where=_DEAD,
        sqlite_where=_DEAD,
    )


def downgrade() -> None:
    op.drop_index("ix_outbound_message_dlq", "outbound_message")
    op.create_index(
        "ix_outbound_message_dlq",
        "outbound_message",
        ["org_id", "failed_at"],
        postgresql_where=_DEAD_BEFORE,
        sqlite_where=_DEAD_BEFORE,
    )
