"""Autovacuum settings of the outbox table (PostgreSQL; nothing on SQLite)

Revision ID: 0003
Revises: 0002
Create Date: 2026-11-30 10:40:00.000000
"""

from collections.abc import Sequence

from alembic import op

revision: str = "0003"
down_revision: str | None = "0002"
branch_labels: str | Sequence[str] | None = None
depends_on: str | Sequence[str] | None = None

# A message row is updated as it is claimed, accepted and as each status arrives; each update
# changes the indexed status, so none is a HOT update: the soak measured three dead tuples per
# message, in the table and in each of its indexes. With the default scale factor (0.2) a table of
# ten million rows waits for two million dead tuples before it is vacuumed. Vacuum after 2 %
# instead, and let the vacuum run with a larger budget so it keeps up with a steady send rate.
OUTBOX_SETTINGS = {
    "autovacuum_vacuum_scale_factor": "0.02",
    "autovacuum_vacuum_threshold": "1000",
    "autovacuum_analyze_scale_factor": "0.02",
    "autovacuum_vacuum_cost_limit": "2000",
}


def upgrade() -> None:
    if op.get_bind().dialect.name != "postgresql":
        return
    settings = ", ".join(f"{name} = {value}" for name, value in OUTBOX_SETTINGS.items())
    op.execute(f"ALTER TABLE outbound_message SET ({settings})")


def downgrade() -> None:
    if op.get_bind().dialect.name != "postgresql":
        return
    op.execute(f"ALTER TABLE outbound_message RESET ({', '.join(OUTBOX_SETTINGS)})")
