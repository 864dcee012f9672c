"""verify_callback against signatures made by the Standard Webhooks reference library (an
implementation we did not write), and against what it must refuse."""

from __future__ import annotations

import asyncio
import base64
import json
import os
import time
from collections.abc import Callable
from datetime import UTC, datetime

import pytest
from standardwebhooks.webhooks import Webhook
from wa_outbound_client import AsyncClient, CallbackVerificationError, verify_callback

from callback_receiver import receiving
from client.service import Service
from client.test_client_messages import TEMPLATE


def _secret() -> str:
    return "whsec_" + base64.b64encode(os.urandom(32)).decode()


SECRET = _secret()
# A change to a signed request: (headers, body) -> (headers, body).
Change = Callable[[dict[str, str], str], tuple[dict[str, str], str]]
BODY = json.dumps(
    {
        "id": "0b5c1a8e-4e1a-4c39-9d0e-7f0a5b0c1d2e",
        "type": "message.delivered",
        "timestamp": "2026-12-02T08:16:36Z",
        "data": {"id": "m-1", "status": "DELIVERED", "sequence": 3},
    }
)


def _headers(
    secret: str, body: str, *, at_s: float | None = None, msg_id: str = "evt-1"
) -> dict[str, str]:
    at = datetime.fromtimestamp(int(at_s if at_s is not None else time.time()), UTC)
    return {
        "Webhook-Id": msg_id,
        "Webhook-Timestamp": str(int(at.timestamp())),
        "Webhook-Signature": Webhook(secret).sign(msg_id, at, body),
    }


def test_a_reference_signature_verifies_and_the_event_is_returned() -> None:
    event = verify_callback(BODY.encode(), _headers(SECRET, BODY), SECRET)
    assert event["type"] == "message.delivered"
    assert event["data"]["sequence"] == 3
    # Text bodies and any header case.
    lowered = {k.lower(): v for k, v in _headers(SECRET, BODY).items()}
    assert verify_callback(BODY, lowered, SECRET)["id"] == event["id"]


def test_during_a_rotation_either_secret_verifies() -> None:
    old, new = _secret(), _secret()
    headers = _headers(new, BODY)
    previous = _headers(old, BODY)["Webhook-Signature"]
    headers["Webhook-Signature"] = f"{headers['Webhook-Signature']} {previous}"
    assert verify_callback(BODY, headers, old)["type"] == "message.delivered"
    assert verify_callback(BODY, headers, new)["type"] == "message.delivered"
    assert verify_callback(BODY, headers, [_secret(), old])["type"] == "message.delivered"


@pytest.mark.parametrize(
    ("change", "reason"),
    [
        (lambda h, b: (h, b.replace("DELIVERED", "READ")), "invalid_signature"),
        (lambda h, b: ({**h, "Webhook-Id": "evt-2"}, b), "invalid_signature"),
        (lambda h, b: ({**h, "Webhook-Signature": "v1,AAAA"}, b), "invalid_signature"),
        (lambda h, b: ({**h, "Webhook-Signature": "v1a,xyz"}, b), "invalid_signature"),
        (lambda h, b: ({k: v for k, v in h.items() if k != "Webhook-Id"}, b), "missing_header"),
        (lambda h, b: ({**h, "Webhook-Timestamp": "soon"}, b), "invalid_timestamp"),
    ],
)
def test_tampering_is_refused(change: Change, reason: str) -> None:
    headers, body = change(_headers(SECRET, BODY), BODY)
    with pytest.raises(CallbackVerificationError) as raised:
        verify_callback(body, headers, SECRET)
    assert raised.value.reason == reason


def test_another_secret_is_refused() -> None:
    with pytest.raises(CallbackVerificationError) as raised:
        verify_callback(BODY, _headers(SECRET, BODY), _secret())
    assert raised.value.reason == "invalid_signature"


def test_timestamps_beyond_five_minutes_are_refused_even_signed() -> None:
    now = time.time()
    old = _headers(SECRET, BODY, at_s=now - 301)
    with pytest.raises(CallbackVerificationError) as raised:
        verify_callback(BODY, old, SECRET, now_s=now)
    assert raised.value.reason == "timestamp_too_old"
    future = _headers(SECRET, BODY, at_s=now + 301)
    with pytest.raises(CallbackVerificationError) as raised:
        verify_callback(BODY, future, SECRET, now_s=now)
    assert raised.value.reason == "timestamp_too_new"
    assert verify_callback(BODY, _headers(SECRET, BODY, at_s=now - 299), SECRET, now_s=now)


def test_a_signed_body_that_is_not_an_object_is_refused() -> None:
    with pytest.raises(CallbackVerificationError) as raised:
        verify_callback("[1]", _headers(SECRET, "[1]"), SECRET)
    assert raised.value.reason == "invalid_body"


def test_a_secret_that_is_not_base64_is_a_setting_error() -> None:
    with pytest.raises(ValueError, match="whsec_"):
        verify_callback(BODY, _headers(SECRET, BODY), "whsec_not base64!")


async def test_a_callback_delivered_by_the_service_verifies(
    service: Service, async_client: AsyncClient
) -> None:
    phone = "+33612000030"
    async with receiving() as receiver:
        endpoint = await async_client.webhook_endpoints.create(
            receiver.url("/hooks"), events=["message.delivered"]
        )
        await async_client.consents.grant(phone)
        message = await async_client.messages.send(phone, template=TEMPLATE)
        deadline = time.monotonic() + 30
        while not receiver.at("/hooks"):
            assert time.monotonic() < deadline, "no callback arrived"
            await asyncio.sleep(0.1)
        request = receiver.at("/hooks")[0]

    event = verify_callback(request.body, request.headers, endpoint["secret"])
    assert event["type"] == "message.delivered"
    assert event["data"]["message"]["id"] == message["id"]
    assert event["data"]["message"]["status"] == "DELIVERED"
    assert event["id"] == request.headers["webhook-id"]
    # The reference library agrees on the same request.
    assert Webhook(endpoint["secret"]).verify(request.body, request.headers) == event
    with pytest.raises(CallbackVerificationError):
        verify_callback(request.body + b" ", request.headers, endpoint["secret"])
