"""The stored secrets as a whole: checked at start-up, and re-encrypted with the first key.

Both walk each secret column in primary-key order, a batch per short transaction, so neither
holds a transaction (nor locks) across the whole table.
"""

from __future__ import annotations

import logging
from collections.abc import AsyncIterator, Sequence
from dataclasses import dataclass

import sqlalchemy as sa
from sqlalchemy.ext.asyncio import AsyncEngine

from wa_outbound.crypto.columns import SECRET_COLUMNS, SecretColumn
from wa_outbound.crypto.keyring import Keyring, UndecryptableSecret

log = logging.getLogger(__name__)

BATCH_SIZE = 200
CLEAR_WARNING = "WA_SECRET_KEYS is empty: stored secrets are kept in clear"


class StoredSecretUnreadable(Exception):
    """A stored secret that no key of WA_SECRET_KEYS decrypts; the message names its row."""

    def __init__(self, column: SecretColumn, row_id: object) -> None:
        super().__init__(
            f"{column.table.name} row {row_id}: its {column.column.name} is not decrypted by "
            "any key of WA_SECRET_KEYS, which lacks the key it was encrypted with (put that "
            "key back in WA_SECRET_KEYS, after the first)"
        )
        self.table = column.table.name
        self.row_id = row_id


class NoEncryptionKey(Exception):
    """WA_SECRET_KEYS is empty: there is no key to encrypt with."""


@dataclass(frozen=True, slots=True)
class SecretsReport:
    checked: int
    not_current: int
    """Readable, but not encrypted with the first key: what `secrets reencrypt` would rewrite."""


async def _batches(
    engine: AsyncEngine, column: SecretColumn, batch_size: int
) -> AsyncIterator[list[tuple[object, str]]]:
    """(key, stored value) of every row holding a secret, a batch per transaction."""
    after: object = None
    while True:
        query = sa.select(column.key, column.column).where(column.column.is_not(None))
        if after is not None:
            query = query.where(column.key > after)
        async with engine.connect() as conn:
            result = await conn.execute(query.order_by(column.key).limit(batch_size))
            rows = [(row[0], str(row[1])) for row in result]
        if not rows:
            return
        yield rows
        after = rows[-1][0]


def _decrypt(keyring: Keyring, column: SecretColumn, row_id: object, stored: str) -> str:
    try:
        return keyring.decrypt(stored)
    except UndecryptableSecret:
        raise StoredSecretUnreadable(column, row_id) from None


def warn_if_clear(keyring: Keyring) -> None:
    """Once at start-up: without keys, secrets are stored in clear (the sandbox only)."""
    if not keyring.encrypting:
        log.warning(CLEAR_WARNING)


async def check_stored_secrets(
    engine: AsyncEngine,
    keyring: Keyring,
    *,
    columns: Sequence[SecretColumn] = SECRET_COLUMNS,
    batch_size: int = BATCH_SIZE,
) -> SecretsReport:
    """Decrypt every stored secret once (start-up): `StoredSecretUnreadable` names the first
    that no key opens. The decryptions land in the keyring's cache, warm for the first sends."""
    checked = not_current = 0
    for column in columns:
        async for rows in _batches(engine, column, batch_size):
            for row_id, stored in rows:
                _decrypt(keyring, column, row_id, stored)
                checked += 1
                not_current += not keyring.is_current(stored)
    if not_current:
        log.warning(
            "stored secrets not encrypted with the first key of WA_SECRET_KEYS: "
            "`wa-outbound secrets reencrypt` rewrites them",
            extra={"secrets_not_current": not_current},
        )
    return SecretsReport(checked=checked, not_current=not_current)


async def reencrypt(
    engine: AsyncEngine,
    keyring: Keyring,
    *,
    columns: Sequence[SecretColumn] = SECRET_COLUMNS,
    batch_size: int = BATCH_SIZE,
) -> int:
    """Rewrite every stored secret that is not encrypted with the first key; how many were.

    Each row is updated only while it still holds the value read: a secret changed meanwhile
    (a new token PATCHed) was written with the first key already, and is left alone."""
    if not keyring.encrypting:
        raise NoEncryptionKey("WA_SECRET_KEYS is empty: there is no key to encrypt with")
    rewritten = 0
    for column in columns:
        async for rows in _batches(engine, column, batch_size):
            changes = [
                (row_id, stored, keyring.encrypt(_decrypt(keyring, column, row_id, stored)))
                for row_id, stored in rows
                if not keyring.is_current(stored)
            ]
            if not changes:
                continue
            async with engine.begin() as conn:
                for row_id, stored, fresh in changes:
                    result = await conn.execute(
                        sa.update(column.table)
                        .where(column.key == row_id, column.column == stored)
                        .values({column.column.name: fresh})
                    )
                    rewritten += result.rowcount
    return rewritten
