"""The keyring alone: stored forms, rotation between keys, and what it refuses."""

from __future__ import annotations

import pytest

from crypto_helpers import new_key
from helpers import make_settings
from wa_outbound.crypto import Keyring, UndecryptableSecret

TOKEN = "EAAG-meta-access-token-0123456789"


def test_a_secret_round_trips_and_is_not_stored_in_clear() -> None:
    keyring = Keyring([new_key()])
    stored = keyring.encrypt(TOKEN)
    assert stored.startswith("fernet:")
    assert TOKEN not in stored
    assert keyring.decrypt(stored) == TOKEN
    assert keyring.is_current(stored)
    assert keyring.encrypting


def test_the_same_secret_encrypts_differently_each_time() -> None:
    keyring = Keyring([new_key()])
    first, second = keyring.encrypt(TOKEN), keyring.encrypt(TOKEN)
    assert first != second
    assert keyring.decrypt(first) == keyring.decrypt(second) == TOKEN


def test_a_secret_encrypted_with_an_old_key_still_decrypts_when_a_new_key_is_put_first() -> None:
    old, new = new_key(), new_key()
    stored = Keyring([old]).encrypt(TOKEN)
    rotated = Keyring([new, old])
    assert rotated.decrypt(stored) == TOKEN
    assert not rotated.is_current(stored)


def test_writes_use_the_first_key() -> None:
    old, new = new_key(), new_key()
    stored = Keyring([new, old]).encrypt(TOKEN)
    assert Keyring([new]).decrypt(stored) == TOKEN
    with pytest.raises(UndecryptableSecret):
        Keyring([old]).decrypt(stored)


def test_without_keys_secrets_are_stored_in_clear_and_every_keyring_reads_them() -> None:
    clear = Keyring([])
    assert not clear.encrypting
    stored = clear.encrypt(TOKEN)
    assert stored == f"plain:{TOKEN}"
    assert clear.is_current(stored)
    keyed = Keyring([new_key()])
    assert keyed.decrypt(stored) == TOKEN
    assert not keyed.is_current(stored), "a clear secret is rewritten once keys are set"


def test_a_secret_no_key_decrypts_is_refused_without_showing_it() -> None:
    stored = Keyring([new_key()]).encrypt(TOKEN)
    with pytest.raises(UndecryptableSecret) as info:
        Keyring([new_key(), new_key()]).decrypt(stored)
    assert "WA_SECRET_KEYS" in str(info.value)
    assert TOKEN not in str(info.value)
    assert stored.removeprefix("fernet:") not in str(info.value)
    assert info.value.__cause__ is None
    assert info.value.__suppress_context__


def test_an_encrypted_secret_is_refused_by_a_keyring_without_keys() -> None:
    stored = Keyring([new_key()]).encrypt(TOKEN)
    with pytest.raises(UndecryptableSecret, match="WA_SECRET_KEYS is empty"):
        Keyring([]).decrypt(stored)


@pytest.mark.parametrize(
    "stored", [TOKEN, "fernet:", "fernet:not-a-token", "fernet:é-not-ascii", "aes:abc"]
)
def test_malformed_stored_values_are_undecryptable(stored: str) -> None:
    keyring = Keyring([new_key()])
    with pytest.raises(UndecryptableSecret):
        keyring.decrypt(stored)
    assert not keyring.is_current(stored)


def test_a_refused_value_is_not_remembered_as_decrypted() -> None:
    key = new_key()
    stored = Keyring([key]).encrypt(TOKEN)
    keyring = Keyring([new_key()])
    for _ in range(2):  # the cache keeps successes only: each attempt is refused again
        with pytest.raises(UndecryptableSecret):
            keyring.decrypt(stored)


def test_decryptions_are_served_again_for_the_same_stored_value() -> None:
    keyring = Keyring([new_key()], cache_size=2)
    values = {keyring.encrypt(f"{TOKEN}-{n}"): f"{TOKEN}-{n}" for n in range(5)}
    for _ in range(3):  # more values than the cache holds: evictions never mix them up
        for stored, plain in values.items():
            assert keyring.decrypt(stored) == plain


def test_the_keyring_is_built_from_the_settings_in_their_order() -> None:
    first, second = new_key(), new_key()
    settings = make_settings("sqlite+aiosqlite:///unused.db", secret_keys=f"{first},{second}")
    keyring = Keyring.from_settings(settings)
    assert Keyring([first]).decrypt(keyring.encrypt(TOKEN)) == TOKEN
    assert keyring.decrypt(Keyring([second]).encrypt(TOKEN)) == TOKEN
