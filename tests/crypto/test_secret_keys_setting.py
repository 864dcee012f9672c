"""WA_SECRET_KEYS as a setting: its format, and cloud refusing to start without it."""

from __future__ import annotations

import base64
import os

import pytest
from pydantic import ValidationError

from crypto_helpers import new_key
from wa_outbound.config import Settings, describe_error

CLOUD = {
    "WA_PROVIDER": "cloud",
    "WA_PHONE_NUMBER_ID": "1234567890",
    "WA_ACCESS_TOKEN": "access-token",
    "WA_APP_SECRET": "app-secret",
}


def test_keys_are_read_comma_separated_in_order_and_kept_secret(
    monkeypatch: pytest.MonkeyPatch,
) -> None:
    first, second = new_key(), new_key()
    monkeypatch.setenv("WA_SECRET_KEYS", f" {first} ,{second},")
    settings = Settings(_env_file=None)
    assert [key.get_secret_value() for key in settings.secret_keys] == [first, second]
    assert first not in repr(settings)
    assert first not in str(settings.secret_keys)


def test_no_keys_by_default() -> None:
    assert Settings(_env_file=None).secret_keys == []


@pytest.mark.parametrize(
    "bad",
    [
        "not base64 at all!",
        base64.urlsafe_b64encode(os.urandom(16)).decode(),
        base64.urlsafe_b64encode(os.urandom(33)).decode(),
        base64.urlsafe_b64encode(os.urandom(32)).decode().rstrip("="),
        os.urandom(32).hex(),
    ],
    ids=["not-base64", "16-bytes", "33-bytes", "unpadded", "hex"],
)
def test_a_key_that_is_not_32_bytes_of_base64_is_refused_by_position_never_shown(
    monkeypatch: pytest.MonkeyPatch, bad: str
) -> None:
    monkeypatch.setenv("WA_SECRET_KEYS", f"{new_key()},{bad}")
    with pytest.raises(ValidationError) as info:
        Settings(_env_file=None)
    message = describe_error(info.value)
    assert "WA_SECRET_KEYS" in message
    assert "key 2 of 2" in message
    assert bad not in message
    assert bad not in str(info.value)


def test_cloud_without_keys_refuses_to_start_naming_the_variable(
    monkeypatch: pytest.MonkeyPatch,
) -> None:
    for name, value in CLOUD.items():
        monkeypatch.setenv(name, value)
    with pytest.raises(ValidationError) as info:
        Settings(_env_file=None)
    assert "WA_SECRET_KEYS" in describe_error(info.value)
    assert "access-token" not in str(info.value), "errors never repeat the settings' values"
    monkeypatch.setenv("WA_SECRET_KEYS", new_key())
    assert Settings(_env_file=None).provider == "cloud"


def test_the_sandbox_starts_without_keys(monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setenv("WA_PROVIDER", "sandbox")
    assert Settings(_env_file=None).secret_keys == []
