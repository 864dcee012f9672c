"""Where secrets are stored: every column that holds a value written by `Keyring.encrypt`.

A feature that stores a secret adds its column here; the start-up check and
`wa-outbound secrets reencrypt` then cover it.
"""

from __future__ import annotations

from dataclasses import dataclass

import sqlalchemy as sa

from wa_outbound.db.callback_schema import callback_endpoint
from wa_outbound.db.schema import sender


@dataclass(frozen=True, slots=True)
class SecretColumn:
    """A nullable text column of `table` holding stored secrets, and the table's primary key
    (a single column: rows are read in its order and named by it)."""

    table: sa.Table
    key: sa.Column[object]
    column: sa.Column[object]

    @property
    def name(self) -> str:
        return f"{self.table.name}.{self.column.name}"


SECRET_COLUMNS: tuple[SecretColumn, ...] = (
    SecretColumn(table=sender, key=sender.c.id, column=sender.c.access_token),
    SecretColumn(
        table=callback_endpoint, key=callback_endpoint.c.id, column=callback_endpoint.c.secret
    ),
    SecretColumn(
        table=callback_endpoint,
        key=callback_endpoint.c.id,
        column=callback_endpoint.c.previous_secret,
    ),
)
