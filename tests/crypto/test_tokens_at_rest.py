"""Senders' tokens through the whole service across a key rotation: stored encrypted by the
senders API, sent to Meta in clear by the dispatcher, readable while the old key is listed
second, and still sent once `secrets reencrypt` ran and the old key is gone."""

from __future__ import annotations

import uuid

import httpx
import pytest

import meta_payloads as meta
from cloud_app import TOKEN, CloudApp, cloud_app
from crypto_helpers import new_key, stored_tokens
from factories import engine_for
from helpers import TEMPLATE, create_org_with_key, eventually, grant
from wa_outbound.crypto import Keyring, reencrypt

pytestmark = pytest.mark.asyncio

NUMBERS = {"2001": "token-before-rotation-2001", "2002": "token-after-rotation-2002"}
WABA = "waba-crypto"


def add_numbers(app: CloudApp) -> None:
    app.fake.add_number(meta.PHONE_NUMBER_ID, token=TOKEN, waba_id="waba-shared")
    for number, token in NUMBERS.items():
        app.fake.add_number(number, token=token, waba_id=WABA)


async def create_sender(client: httpx.AsyncClient, auth: dict[str, str], number: str) -> str:
    response = await client.post(
        "/v1/senders",
        json={"phone_number_id": number, "waba_id": WABA, "access_token": NUMBERS[number]},
        headers=auth,
    )
    assert response.status_code == 201, response.text
    return str(response.json()["id"])


async def sends_with_its_token(
    app: CloudApp, auth: dict[str, str], sender_id: str, number: str, to: str
) -> None:
    await grant(app.client, auth, to)
    response = await app.client.post(
        "/v1/messages", json={"to": to, "template": TEMPLATE, "from": sender_id}, headers=auth
    )
    assert response.status_code == 202, response.text
    await eventually(lambda: app.fake.received.count(to) >= 1)
    (request,) = app.fake.received.requests_for(to)
    assert request.phone_number_id == number
    assert request.authorization == f"Bearer {NUMBERS[number]}"


async def test_tokens_stay_encrypted_at_rest_and_usable_across_a_key_rotation(
    postgres_url: str,
) -> None:
    old, new = new_key(), new_key()
    async with cloud_app(postgres_url, secret_keys=old, dispatch_enabled=False) as app:
        add_numbers(app)
        _, auth = await create_org_with_key(app.client)
        first = await create_sender(app.client, auth, "2001")
    async with engine_for(postgres_url) as engine:
        stored = (await stored_tokens(engine))[uuid.UUID(first)] or ""
    assert stored.startswith("fernet:")
    assert NUMBERS["2001"] not in stored
    assert Keyring([old]).decrypt(stored) == NUMBERS["2001"]

    # The new key first, the old one second: the old token is read, new ones use the new key.
    async with cloud_app(postgres_url, secret_keys=f"{new},{old}") as app:
        add_numbers(app)
        second = await create_sender(app.client, auth, "2002")
        await sends_with_its_token(app, auth, first, "2001", "+33600000001")
        await sends_with_its_token(app, auth, second, "2002", "+33600000002")
    async with engine_for(postgres_url) as engine:
        tokens = await stored_tokens(engine)
        assert Keyring([new]).decrypt(tokens[uuid.UUID(second)] or "") == NUMBERS["2002"]
        assert await reencrypt(engine, Keyring([new, old])) == 1

    # The old key removed: every token still decrypts, at start-up and for the sends.
    async with cloud_app(postgres_url, secret_keys=new) as app:
        add_numbers(app)
        await sends_with_its_token(app, auth, first, "2001", "+33600000003")
        await sends_with_its_token(app, auth, second, "2002", "+33600000004")
