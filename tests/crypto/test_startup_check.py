"""The app's start-up with stored secrets: every one must decrypt, the keyring is handed to the
app, and the sandbox without keys says once that it stores secrets in clear."""

from __future__ import annotations

import logging

import pytest
from pydantic import ValidationError
from sqlalchemy.ext.asyncio import AsyncEngine

from crypto_helpers import new_key, set_token
from factories import insert_org, insert_sender
from helpers import app_client, make_settings
from wa_outbound.app import create_app
from wa_outbound.crypto import Keyring, StoredSecretUnreadable
from wa_outbound.crypto.stored import CLEAR_WARNING

KEY, OTHER = new_key(), new_key()


async def a_sender_holding(engine: AsyncEngine, stored: str) -> str:
    async with engine.begin() as conn:
        sender_id = await insert_sender(conn, await insert_org(conn))
    await set_token(engine, sender_id, stored)
    return str(sender_id)


async def test_the_app_starts_when_every_secret_decrypts_and_holds_the_keyring(
    database_url: str, db_engine: AsyncEngine
) -> None:
    await a_sender_holding(db_engine, Keyring([OTHER]).encrypt("old-key-token"))
    await a_sender_holding(db_engine, "plain:clear-token")
    app = create_app(make_settings(database_url, secret_keys=f"{KEY},{OTHER}"))
    async with app_client(app) as client:
        assert (await client.get("/health/ready")).status_code == 200
        keyring: Keyring = app.state.keyring
        assert Keyring([KEY]).decrypt(keyring.encrypt("new-token")) == "new-token"


async def test_a_secret_no_key_decrypts_stops_start_up_naming_its_row(
    database_url: str, db_engine: AsyncEngine
) -> None:
    await a_sender_holding(db_engine, Keyring([KEY]).encrypt("readable"))
    lost = await a_sender_holding(db_engine, Keyring([OTHER]).encrypt("lost-token"))
    app = create_app(make_settings(database_url, secret_keys=KEY))
    with pytest.raises(StoredSecretUnreadable) as info:
        async with app_client(app):
            pass
    assert f"sender row {lost}" in str(info.value)
    assert "WA_SECRET_KEYS" in str(info.value)
    assert "lost-token" not in str(info.value)


async def test_the_sandbox_without_keys_stores_in_clear_and_warns_once(
    database_url: str, db_engine: AsyncEngine, caplog: pytest.LogCaptureFixture
) -> None:
    app = create_app(make_settings(database_url))
    with caplog.at_level(logging.WARNING, logger="wa_outbound"):
        async with app_client(app) as client:
            keyring: Keyring = app.state.keyring
            stored = [keyring.encrypt(f"token-{n}") for n in range(3)]
            assert (await client.get("/health/ready")).status_code == 200
    assert stored == ["plain:token-0", "plain:token-1", "plain:token-2"]
    warnings = [r for r in caplog.records if r.getMessage() == CLEAR_WARNING]
    assert len(warnings) == 1
    # Those rows are read back at the next start-up, by a keyring with or without keys.
    await a_sender_holding(db_engine, stored[0])
    async with app_client(create_app(make_settings(database_url, secret_keys=KEY))):
        pass


def test_cloud_without_keys_refuses_to_start() -> None:
    with pytest.raises(ValidationError, match="WA_SECRET_KEYS"):
        make_settings(
            "sqlite+aiosqlite:///unused.db",
            provider="cloud",
            phone_number_id="1234567890",
            access_token="token",
            app_secret="secret",
            secret_keys="",
        )
