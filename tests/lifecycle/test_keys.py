"""The erasure key: WA_ERASURE_KEY when set, else derived from the first secret key (never the
key itself), else the sandbox's fixed key; a short key is refused at start-up."""

from __future__ import annotations

import pytest
from pydantic import ValidationError

from helpers import TEST_SECRET_KEY, make_settings
from wa_outbound.lifecycle.keys import SANDBOX_ERASURE_KEY, erasure_key, key_source, warn_if_public

URL = "sqlite+aiosqlite:///unused.db"


def test_the_configured_key_wins() -> None:
    settings = make_settings(URL, erasure_key="e" * 40, secret_keys=TEST_SECRET_KEY)
    assert erasure_key(settings) == b"e" * 40
    assert key_source(settings) == "WA_ERASURE_KEY"


def test_without_one_it_is_derived_from_the_first_secret_key() -> None:
    settings = make_settings(URL, secret_keys=TEST_SECRET_KEY)
    derived = erasure_key(settings)
    assert len(derived) == 32
    assert derived != SANDBOX_ERASURE_KEY
    assert TEST_SECRET_KEY.encode() not in derived
    assert erasure_key(make_settings(URL, secret_keys=TEST_SECRET_KEY)) == derived  # stable
    assert key_source(settings) == "WA_SECRET_KEYS"


def test_the_sandbox_without_keys_uses_the_fixed_key() -> None:
    settings = make_settings(URL)
    assert erasure_key(settings) == SANDBOX_ERASURE_KEY
    assert key_source(settings) == "sandbox"


def test_a_short_key_is_refused() -> None:
    with pytest.raises(ValidationError, match="WA_ERASURE_KEY"):
        make_settings(URL, erasure_key="too-short")


def test_cloud_cannot_start_without_a_key_of_its_own() -> None:
    with pytest.raises(ValidationError, match="WA_SECRET_KEYS"):
        make_settings(URL, provider="cloud", app_secret="s", secret_keys="")


def test_the_public_key_is_announced_at_start_up(caplog: pytest.LogCaptureFixture) -> None:
    warn_if_public(make_settings(URL, secret_keys=TEST_SECRET_KEY))
    assert "public key" not in caplog.text
    warn_if_public(make_settings(URL))
    assert "public key" in caplog.text
