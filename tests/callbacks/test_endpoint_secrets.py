"""Endpoint secrets in the Standard Webhooks form, as the reference implementation reads them."""

from __future__ import annotations

import base64
import hashlib
import hmac
from datetime import UTC, datetime

from standardwebhooks import Webhook

from wa_outbound.callbacks.secrets import new_secret, signing_key


def test_a_secret_is_32_random_bytes_after_whsec() -> None:
    secrets = {new_secret() for _ in range(100)}
    assert len(secrets) == 100
    for secret in secrets:
        assert secret.startswith("whsec_")
        assert len(signing_key(secret)) == 32
        assert base64.b64encode(signing_key(secret)).decode() == secret.removeprefix("whsec_")


def test_the_reference_library_signs_with_the_key_the_secret_holds() -> None:
    secret = new_secret()
    at = datetime(2026, 12, 2, 8, 0, tzinfo=UTC)
    body = '{"id":"e1","type":"message.sent"}'
    signed = f"msg_1.{int(at.timestamp())}.{body}".encode()
    ours = base64.b64encode(hmac.new(signing_key(secret), signed, hashlib.sha256).digest())
    assert Webhook(secret).sign("msg_1", at, body) == f"v1,{ours.decode()}"
