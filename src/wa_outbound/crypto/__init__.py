"""Encryption at rest of stored secrets (senders' access tokens, and any column listed in
`columns.SECRET_COLUMNS`): the keyring built from WA_SECRET_KEYS, the start-up check that every
stored secret still decrypts, and the re-encryption that lets an old key be removed.

May import `db`, `config` and the shared top-level modules.
"""

from wa_outbound.crypto.columns import SECRET_COLUMNS, SecretColumn
from wa_outbound.crypto.keyring import Keyring, UndecryptableSecret
from wa_outbound.crypto.stored import (
    NoEncryptionKey,
    SecretsReport,
    StoredSecretUnreadable,
    check_stored_secrets,
    reencrypt,
    warn_if_clear,
)

__all__ = [
    "SECRET_COLUMNS",
    "Keyring",
    "NoEncryptionKey",
    "SecretColumn",
    "SecretsReport",
    "StoredSecretUnreadable",
    "UndecryptableSecret",
    "check_stored_secrets",
    "reencrypt",
    "warn_if_clear",
]
