"""The keyring: encrypts secrets before they are stored, and reads them back.

A stored secret names its scheme: `fernet:<token>` (Fernet: AES-128-CBC and HMAC-SHA256, the
key's 32 bytes split between them), or `plain:<text>`, the clear form the sandbox writes when
no key is set. Every keyring reads both, so rows written in clear can be encrypted later by
`wa-outbound secrets reencrypt` once keys are set.
"""

from __future__ import annotations

import functools
from collections.abc import Sequence

from cryptography.fernet import Fernet, InvalidToken, MultiFernet

from wa_outbound.config import Settings

FERNET = "fernet:"
PLAIN = "plain:"
# Enough for every sender a deployment sends from; beyond it a decryption costs ~20 µs.
DECRYPT_CACHE_SIZE = 4096


class UndecryptableSecret(Exception):
    """A stored secret that no key of WA_SECRET_KEYS decrypts (the message never holds it)."""


class Keyring:
    """The keys of WA_SECRET_KEYS: the first encrypts, every one decrypts.

    Decryptions are remembered by stored value (an LRU of `DECRYPT_CACHE_SIZE`), so a caller
    may decrypt a sender's token for every send; a new token is a new stored value."""

    def __init__(self, keys: Sequence[str], *, cache_size: int = DECRYPT_CACHE_SIZE) -> None:
        self._fernets = [Fernet(key) for key in keys]
        self._all = MultiFernet(self._fernets) if self._fernets else None
        self._cached_decrypt = functools.lru_cache(maxsize=cache_size)(self._decrypt)

    @classmethod
    def from_settings(cls, settings: Settings) -> Keyring:
        return cls([key.get_secret_value() for key in settings.secret_keys])

    @property
    def encrypting(self) -> bool:
        """False without keys: secrets are then stored in clear (the sandbox only)."""
        return self._all is not None

    def encrypt(self, plaintext: str) -> str:
        """The stored form of `plaintext`: encrypted with the first key, or `plain:` without."""
        if not self._fernets:
            return PLAIN + plaintext
        return FERNET + self._fernets[0].encrypt(plaintext.encode()).decode("ascii")

    def decrypt(self, stored: str) -> str:
        """The secret a stored value holds; `UndecryptableSecret` if no key opens it."""
        return self._cached_decrypt(stored)

    def is_current(self, stored: str) -> bool:
        """Whether `stored` is what `encrypt` writes now: encrypted with the first key (or, with
        no key, in clear). Anything else is rewritten by `secrets reencrypt`."""
        if not self._fernets:
            return stored.startswith(PLAIN)
        if not stored.startswith(FERNET):
            return False
        try:
            self._fernets[0].decrypt(stored.removeprefix(FERNET))
        except (InvalidToken, ValueError):  # ValueError: text that is not even base64
            return False
        return True

    def _decrypt(self, stored: str) -> str:
        if stored.startswith(PLAIN):
            return stored.removeprefix(PLAIN)
        if not stored.startswith(FERNET):
            raise UndecryptableSecret("the stored secret names no known scheme")
        if self._all is None:
            raise UndecryptableSecret("the secret is encrypted and WA_SECRET_KEYS is empty")
        try:
            return self._all.decrypt(stored.removeprefix(FERNET)).decode()
        except (InvalidToken, ValueError):  # ValueError: not base64, or not UTF-8 inside
            raise UndecryptableSecret("no key of WA_SECRET_KEYS decrypts the secret") from None
