"""Standard Webhooks signatures: the headers of one attempt.

`webhook-signature` is `v1,<base64 of HMAC-SHA256(key, "{id}.{timestamp}.{body}")>`, where the key
is the base64-decoded part of the secret after `whsec_`. During a rotation the previous secret
signs too, and the header holds both values separated by a space: a receiver that still knows
only the old secret keeps verifying until it is given the new one.
"""

from __future__ import annotations

import base64
import functools
import hashlib
import hmac
from collections.abc import Sequence

from wa_outbound.callbacks import secrets


@functools.lru_cache(maxsize=4096)
def _keyed(secret: str) -> hmac.HMAC:
    """An HMAC already keyed with the secret's key, remembered: each attempt signs with a copy,
    without decoding the secret nor hashing the key again."""
    return hmac.new(secrets.signing_key(secret), digestmod=hashlib.sha256)


def _signed(secret: str, message: bytes) -> str:
    mac = _keyed(secret).copy()
    mac.update(message)
    return "v1," + base64.b64encode(mac.digest()).decode()


def signature(secrets: Sequence[str], *, webhook_id: str, timestamp: int, body: bytes) -> str:
    """The `webhook-signature` value: one `v1,` signature per secret, separated by spaces."""
    signed = f"{webhook_id}.{timestamp}.".encode() + body
    return " ".join(_signed(s, signed) for s in secrets)


def headers(
    secrets: Sequence[str], *, webhook_id: str, timestamp: int, body: bytes
) -> dict[str, str]:
    """Every header of one attempt: signed afresh, with this attempt's timestamp."""
    return {
        "content-type": "application/json",
        "webhook-id": webhook_id,
        "webhook-timestamp": str(timestamp),
        "webhook-signature": signature(
            secrets, webhook_id=webhook_id, timestamp=timestamp, body=body
        ),
    }
