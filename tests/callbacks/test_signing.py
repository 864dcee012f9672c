"""Our signatures against the Standard Webhooks reference library (not our code)."""

from __future__ import annotations

import base64
import time

import pytest
from standardwebhooks.webhooks import Webhook, WebhookVerificationError

from callback_helpers import new_secret
from wa_outbound.callbacks import secrets, signing


def test_a_signature_verifies_with_the_reference_library() -> None:
    secret = new_secret()
    body = b'{"id":"e1","type":"message.sent","data":{"sequence":3}}'
    headers = signing.headers([secret], webhook_id="e1", timestamp=int(time.time()), body=body)
    assert headers["webhook-signature"].startswith("v1,")
    Webhook(secret).verify(body, headers)


def test_a_changed_body_id_or_timestamp_does_not_verify() -> None:
    secret = new_secret()
    now = int(time.time())
    body = b'{"a":1}'
    headers = signing.headers([secret], webhook_id="e1", timestamp=now, body=body)
    for changed_body, changed in (
        (b'{"a":2}', headers),
        (body, headers | {"webhook-id": "e2"}),
        (body, headers | {"webhook-timestamp": str(now + 1)}),
    ):
        with pytest.raises(WebhookVerificationError):
            Webhook(secret).verify(changed_body, changed)


def test_two_secrets_give_two_signatures_each_verifying_alone() -> None:
    old, new = new_secret(), new_secret()
    body = b"{}"
    headers = signing.headers([new, old], webhook_id="e1", timestamp=int(time.time()), body=body)
    assert len(headers["webhook-signature"].split(" ")) == 2
    Webhook(old).verify(body, headers)
    Webhook(new).verify(body, headers)
    with pytest.raises(WebhookVerificationError):
        Webhook(new_secret()).verify(body, headers)


def test_the_key_is_the_base64_part_after_whsec() -> None:
    raw = bytes(range(32))
    assert secrets.signing_key("whsec_" + base64.b64encode(raw).decode()) == raw
