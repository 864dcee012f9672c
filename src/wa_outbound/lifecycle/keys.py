"""The key of the erasure tokens: `WA_ERASURE_KEY`, else derived from the first of
`WA_SECRET_KEYS`, else (the sandbox only: cloud refuses to start without secret keys) a fixed
key that protects nothing."""

from __future__ import annotations

import base64
import logging

from cryptography.hazmat.primitives import hashes
from cryptography.hazmat.primitives.kdf.hkdf import HKDF

from wa_outbound.config import Settings

log = logging.getLogger(__name__)

SANDBOX_ERASURE_KEY = b"wa-outbound sandbox erasure key: not a secret"
_INFO = b"wa-outbound erasure tokens v1"


def erasure_key(settings: Settings) -> bytes:
    configured = settings.erasure_key.get_secret_value()
    if configured:
        return configured.encode()
    if settings.secret_keys:
        # A key of its own, never the encryption key itself; it changes when the first secret
        # key does (set WA_ERASURE_KEY to keep tokens stable across rotations).
        first = settings.secret_keys[0].get_secret_value()
        raw = base64.b64decode(first, altchars=b"-_")
        return HKDF(algorithm=hashes.SHA256(), length=32, salt=None, info=_INFO).derive(raw)
    return SANDBOX_ERASURE_KEY


def key_source(settings: Settings) -> str:
    """Where the key comes from, for the start-up log."""
    if settings.erasure_key.get_secret_value():
        return "WA_ERASURE_KEY"
    return "WA_SECRET_KEYS" if settings.secret_keys else "sandbox"


def warn_if_public(settings: Settings) -> None:
    """At start-up: say so when erased data is tokenised under the public sandbox key."""
    if key_source(settings) == "sandbox":
        log.warning(
            "WA_ERASURE_KEY and WA_SECRET_KEYS are empty: erased contacts are tokenised under "
            "the sandbox's public key (anyone can test a number against a token)"
        )
