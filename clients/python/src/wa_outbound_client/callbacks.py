"""Checking the callbacks the service sends to your webhook endpoints (Standard Webhooks).

Each request carries `webhook-id`, `webhook-timestamp` (Unix seconds) and `webhook-signature`:
one or more `v1,<base64 HMAC-SHA256>` separated by spaces (two during a secret's rotation),
each over `{webhook-id}.{webhook-timestamp}.{raw body}` with the key the secret holds (the
base64 after `whsec_`). A request verifies when one of them matches and its timestamp is
within the tolerance of now, which makes a captured request useless to replay later.
"""

from __future__ import annotations

import base64
import binascii
import hashlib
import hmac
import json
import time
from collections.abc import Mapping, Sequence
from typing import cast

from wa_outbound_client.errors import CallbackVerificationError
from wa_outbound_client.models import CallbackEvent

SECRET_PREFIX = "whsec_"
TOLERANCE_S = 300


def verify_callback(
    body: bytes | str,
    headers: Mapping[str, str],
    secret: str | Sequence[str],
    *,
    tolerance_s: float = TOLERANCE_S,
    now_s: float | None = None,
) -> CallbackEvent:
    """The callback's event if the request is the service's, else `CallbackVerificationError`.

    `body` must be the raw body as received (bytes, or the exact text), not JSON re-encoded.
    `headers` may be any mapping (a framework's, or a dict): names are matched in any case.
    `secret` is the endpoint's `whsec_...`, or several (the new and the previous while you
    switch). A secret that is not `whsec_` + base64 raises ValueError: that is your setting.
    """
    raw = body.encode() if isinstance(body, str) else body
    lowered = {name.lower(): value for name, value in headers.items()}
    webhook_id = _header(lowered, "webhook-id")
    timestamp = _header(lowered, "webhook-timestamp")
    signatures = _header(lowered, "webhook-signature")

    try:
        sent_at_s = int(timestamp)
    except ValueError:
        raise CallbackVerificationError(
            "invalid_timestamp", f"webhook-timestamp is not Unix seconds: {timestamp[:40]!r}"
        ) from None
    now_s = time.time() if now_s is None else now_s
    if sent_at_s < now_s - tolerance_s:
        raise CallbackVerificationError("timestamp_too_old", "webhook-timestamp is too old")
    if sent_at_s > now_s + tolerance_s:
        raise CallbackVerificationError("timestamp_too_new", "webhook-timestamp is in the future")

    signed = f"{webhook_id}.{timestamp}.".encode() + raw
    expected = [
        base64.b64encode(hmac.digest(key, signed, hashlib.sha256))
        for key in _keys([secret] if isinstance(secret, str) else secret)
    ]
    given = [
        value.removeprefix("v1,").encode()
        for value in signatures.split(" ")
        if value.startswith("v1,")
    ]
    # Every pair is compared, in constant time each, so the time taken says nothing of which
    # signature came close.
    matched = False
    for candidate in given:
        for signature in expected:
            matched |= hmac.compare_digest(candidate, signature)
    if not matched:
        raise CallbackVerificationError("invalid_signature", "no signature matches the secret")

    try:
        event = json.loads(raw)
    except ValueError:
        raise CallbackVerificationError("invalid_body", "the body is not JSON") from None
    if not isinstance(event, dict):
        raise CallbackVerificationError("invalid_body", "the body is not a JSON object")
    return cast(CallbackEvent, event)


def _header(headers: Mapping[str, str], name: str) -> str:
    value = headers.get(name)
    if not value:
        raise CallbackVerificationError("missing_header", f"the {name} header is missing")
    return value


def _keys(secrets: Sequence[str]) -> list[bytes]:
    if not secrets:
        raise ValueError("verify_callback needs at least one secret")
    keys = []
    for secret in secrets:
        try:
            keys.append(base64.b64decode(secret.removeprefix(SECRET_PREFIX), validate=True))
        except (binascii.Error, ValueError):
            raise ValueError("a webhook secret is `whsec_` followed by base64") from None
    return keys
