"""The in-process memory of API keys that authenticated (no clock: TTL 0 or a long one)."""

from __future__ import annotations

import uuid

from wa_outbound.orgs.auth import Principal
from wa_outbound.orgs.key_cache import ApiKeyCache

PRINCIPAL = Principal(org_id="acme", key_id=uuid.uuid4(), key_prefix="wao_abcdefgh")


def test_a_remembered_key_is_found() -> None:
    cache = ApiKeyCache(ttl_s=3600)
    cache.put("hash-1", PRINCIPAL)
    assert cache.get("hash-1") == PRINCIPAL
    assert cache.get("hash-2") is None


def test_clear_forgets_every_key() -> None:
    cache = ApiKeyCache(ttl_s=3600)
    cache.put("hash-1", PRINCIPAL)
    cache.clear()
    assert cache.get("hash-1") is None


def test_a_zero_ttl_remembers_nothing() -> None:
    cache = ApiKeyCache(ttl_s=0)
    cache.put("hash-1", PRINCIPAL)
    assert cache.get("hash-1") is None


def test_a_full_cache_starts_over() -> None:
    cache = ApiKeyCache(ttl_s=3600, max_entries=2)
    cache.put("hash-1", PRINCIPAL)
    cache.put("hash-2", PRINCIPAL)
    cache.put("hash-3", PRINCIPAL)
    assert cache.get("hash-1") is None
    assert cache.get("hash-3") == PRINCIPAL
