"""Endpoint signing secrets, in the Standard Webhooks form: `whsec_` and the base64 of the key."""

from __future__ import annotations

import base64
import secrets

PREFIX = "whsec_"
KEY_BYTES = 32


def new_secret() -> str:
    """A fresh secret: 32 random bytes, standard base64, after `whsec_`."""
    return PREFIX + base64.b64encode(secrets.token_bytes(KEY_BYTES)).decode("ascii")


def signing_key(secret: str) -> bytes:
    """The HMAC key a secret holds: the base64-decoded part after `whsec_`."""
    return base64.b64decode(secret.removeprefix(PREFIX))
