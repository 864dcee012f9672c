"""The dead-letter queue's size kept as it changes: `dlq_count` per (org_id, channel), written by
triggers on `outbound_message`, and an index of the dead letters by `failed_at` (issue #21,
"flat with size")

The DLQ report counted the org's dead letters on every request: flat in the size of the history,
not in the size of the DLQ. The triggers cover every writer of `dead_lettered`, `org_id` and
`channel` (the dispatcher's outcomes and refusals, receipts, replay, discard, retention, bulk
enqueue, a restore), in the writer's own transaction.

PostgreSQL: one statement-level trigger per event, with transition tables: a statement adds,
per (org, channel), its new dead letters minus its old ones, in one upsert ordered by
(org_id, channel), so a bulk replay of 10,000 rows writes each counter once, and two statements
that dead-letter several organisations take the counters' row locks in the same order. A
statement that leaves the DLQ as it was (a claim, a receipt that is not a failure) writes nothing.
SQLite has only row-level triggers: each dead-lettered row changed updates its counter.

The counters are backfilled from the existing rows after the triggers exist: CREATE TRIGGER
holds a lock that keeps writers out of `outbound_message` until the migration commits, so no
change falls between the count and the triggers.

A later migration that rebuilds `outbound_message` on SQLite (`batch_alter_table` copies the
table) drops these triggers with the old table: it must create them again, as `create_triggers` here does.

Revision ID: 0014
Revises: 0013
Create Date: 2026-12-03 14:45:00.000000
"""

from collections.abc import Sequence

import sqlalchemy as sa
from alembic import op

revision: str = "0014"
down_revision: str | None = "0013"
branch_labels: str | Sequence[str] | None = None
depends_on: str | Sequence[str] | None = None

_UPSERT = """
    INSERT INTO dlq_count AS c (org_id, channel, messages)
    SELECT org_id, channel, sum(delta) FROM ({rows}) AS d
    GROUP BY org_id, channel HAVING sum(delta) <> 0
    ORDER BY org_id, channel
    ON CONFLICT (org_id, channel) DO UPDATE SET messages = c.messages + excluded.messages"""
_NEW = "SELECT org_id, channel, 1 AS delta FROM new_rows WHERE dead_lettered"
_OLD = "SELECT org_id, channel, -1 AS delta FROM old_rows WHERE dead_lettered"

_PG_FUNCTION = f"""
CREATE FUNCTION dlq_count_apply() RETURNS trigger LANGUAGE plpgsql AS $$
BEGIN
    IF TG_OP = 'INSERT' THEN
        {_UPSERT.format(rows=_NEW)};
    ELSIF TG_OP = 'DELETE' THEN
        {_UPSERT.format(rows=_OLD)};
    ELSE
        {_UPSERT.format(rows=f"{_NEW} UNION ALL {_OLD}")};
    END IF;
    RETURN NULL;
END $$"""
_PG_TRIGGERS = (
    "CREATE TRIGGER dlq_count_insert AFTER INSERT ON outbound_message "
    "REFERENCING NEW TABLE AS new_rows "
    "FOR EACH STATEMENT EXECUTE FUNCTION dlq_count_apply()",
    "CREATE TRIGGER dlq_count_update AFTER UPDATE ON outbound_message "
    "REFERENCING OLD TABLE AS old_rows NEW TABLE AS new_rows "
    "FOR EACH STATEMENT EXECUTE FUNCTION dlq_count_apply()",
    "CREATE TRIGGER dlq_count_delete AFTER DELETE ON outbound_message "
    "REFERENCING OLD TABLE AS old_rows "
    "FOR EACH STATEMENT EXECUTE FUNCTION dlq_count_apply()",
)

_SQLITE_ADD = """
    INSERT INTO dlq_count (org_id, channel, messages)
    SELECT NEW.org_id, NEW.channel, 1 WHERE NEW.dead_lettered
    ON CONFLICT (org_id, channel) DO UPDATE SET messages = messages + 1;"""
_SQLITE_REMOVE = """
    UPDATE dlq_count SET messages = messages - 1
    WHERE org_id = OLD.org_id AND channel = OLD.channel AND OLD.dead_lettered;"""
_SQLITE_TRIGGERS = (
    "CREATE TRIGGER dlq_count_insert AFTER INSERT ON outbound_message "
    f"WHEN NEW.dead_lettered BEGIN {_SQLITE_ADD} END",
    "CREATE TRIGGER dlq_count_update "
    "AFTER UPDATE OF dead_lettered, org_id, channel ON outbound_message "
    f"WHEN OLD.dead_lettered OR NEW.dead_lettered BEGIN {_SQLITE_REMOVE} {_SQLITE_ADD} END",
    "CREATE TRIGGER dlq_count_delete AFTER DELETE ON outbound_message "
    f"WHEN OLD.dead_lettered BEGIN {_SQLITE_REMOVE} END",
)
_DEAD = sa.text("dead_lettered IS TRUE")
_TRIGGERS = ("dlq_count_insert", "dlq_count_update", "dlq_count_delete")

BACKFILL = """
    INSERT INTO dlq_count (org_id, channel, messages)
    SELECT org_id, channel, count(*) FROM outbound_message WHERE dead_lettered IS TRUE
    GROUP BY org_id, channel ORDER BY org_id, channel"""


def create_triggers() -> None:
    """The triggers of this dialect (and PostgreSQL's function); also for a later migration that
    rebuilds the table on SQLite."""
    if op.get_bind().dialect.name == "postgresql":
        op.execute(_PG_FUNCTION)
        statements = _PG_TRIGGERS
    else:
        statements = _SQLITE_TRIGGERS
    for statement in statements:
        op.execute(statement)


def upgrade() -> None:
    op.create_table(
        "dlq_count",
        sa.Column("org_id", sa.String(64), nullable=False),
        sa.Column("channel", sa.String(16), nullable=False),
        sa.Column("messages", sa.BigInteger(), nullable=False),
        sa.PrimaryKeyConstraint("org_id", "channel", name="pk_dlq_count"),
    )
    create_triggers()
    op.execute(BACKFILL)
    # The report's top codes over every organisation: the last 24 hours of the DLQ.
    op.create_index(
        "ix_outbound_message_dlq_failed",
        "outbound_message",
        ["failed_at", "org_id", "error_code", "error_title"],
        postgresql_where=_DEAD,
        sqlite_where=_DEAD,
    )


def downgrade() -> None:
    op.drop_index("ix_outbound_message_dlq_failed", "outbound_message")
    for name in _TRIGGERS:
        if op.get_bind().dialect.name == "postgresql":
            op.execute(f"DROP TRIGGER {name} ON outbound_message")
        else:
            op.execute(f"DROP TRIGGER {name}")
    if op.get_bind().dialect.name == "postgresql":
        op.execute("DROP FUNCTION dlq_count_apply()")
    op.drop_table("dlq_count")
