"""The few statements whose spelling differs between PostgreSQL and SQLite."""

from __future__ import annotations

from typing import Any

import sqlalchemy as sa
from sqlalchemy.dialects import postgresql, sqlite
from sqlalchemy.ext.asyncio import AsyncConnection


def insert(conn: AsyncConnection, table: sa.Table) -> Any:
    """An INSERT that supports `on_conflict_do_nothing` / `on_conflict_do_update` on either."""
    if conn.dialect.name == "postgresql":
        return postgresql.insert(table)
    return sqlite.insert(table)


def is_postgres(conn: AsyncConnection) -> bool:
    return conn.dialect.name == "postgresql"


def any_of(
    conn: AsyncConnection, column: sa.ColumnElement[Any], values: list[Any]
) -> sa.ColumnElement[bool]:
    """`column IN values`. On PostgreSQL one array parameter (`= ANY(:values)`), so the SQL
    is the same whatever the number of values and a prepared statement serves every call; an
    IN list is rendered, and prepared, anew for each length."""
    if is_postgres(conn):
        array = postgresql.ARRAY(column.type)
        return column == sa.any_(sa.bindparam(None, values, type_=array))
    return column.in_(values)
