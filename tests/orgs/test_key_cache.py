"""The in-process memory of API keys that authenticated (no clock: TTL 0 or a long one), and
a revocation heard while a key's lookup is in flight."""

from __future__ import annotations

import uuid
from typing import Any

from sqlalchemy import event

from helpers import app_and_state, create_org_with_key, make_settings
from wa_outbound.app import create_app
from wa_outbound.db.schema import api_key
from wa_outbound.db.types import utcnow
from wa_outbound.orgs.auth import Principal
from wa_outbound.orgs.key_cache import ApiKeyCache

PRINCIPAL = Principal(org_id="acme", key_id=uuid.uuid4(), key_prefix="wao_abcdefgh")


def test_a_remembered_key_is_found() -> None:
    cache = ApiKeyCache(ttl_s=3600)
    cache.put("hash-1", PRINCIPAL, generation=cache.generation)
    assert cache.get("hash-1") == PRINCIPAL
    assert cache.get("hash-2") is None


def test_clear_forgets_every_key() -> None:
    cache = ApiKeyCache(ttl_s=3600)
    cache.put("hash-1", PRINCIPAL, generation=cache.generation)
    cache.clear()
    assert cache.get("hash-1") is None


def test_a_zero_ttl_remembers_nothing() -> None:
    cache = ApiKeyCache(ttl_s=0)
    cache.put("hash-1", PRINCIPAL, generation=cache.generation)
    assert cache.get("hash-1") is None


def test_a_full_cache_starts_over() -> None:
    cache = ApiKeyCache(ttl_s=3600, max_entries=2)
    cache.put("hash-1", PRINCIPAL, generation=cache.generation)
    cache.put("hash-2", PRINCIPAL, generation=cache.generation)
    cache.put("hash-3", PRINCIPAL, generation=cache.generation)
    assert cache.get("hash-1") is None
    assert cache.get("hash-3") == PRINCIPAL


def test_a_lookup_that_began_before_a_clear_is_not_remembered() -> None:
    cache = ApiKeyCache(ttl_s=3600)
    before = cache.generation
    cache.clear()  # a revocation, heard while the lookup was reading the key
    cache.put("hash-1", PRINCIPAL, generation=before)
    assert cache.get("hash-1") is None
    cache.put("hash-1", PRINCIPAL, generation=cache.generation)
    assert cache.get("hash-1") == PRINCIPAL


async def test_a_key_revoked_while_its_lookup_was_in_flight_is_refused_next_time(
    sqlite_url: str,
) -> None:
    """The lookup reads the key while it is still valid; the revocation commits and is heard
    (the cache cleared) before the lookup's answer comes back. That request may pass, but the
    key must not be remembered: the next request is refused."""
    settings = make_settings(sqlite_url, api_key_cache_seconds=60)
    async with app_and_state(create_app(settings)) as (client, state):
        _, auth = await create_org_with_key(client)
        engine = state["engine"]
        lookups = 0

        def revocation_heard_during_the_lookup(
            _conn: Any, _cursor: Any, statement: str, *_: Any
        ) -> None:
            nonlocal lookups
            if "FROM api_key" in statement and "key_hash" in statement:
                lookups += 1
                state["api_keys"].clear()

        event.listen(engine.sync_engine, "after_cursor_execute", revocation_heard_during_the_lookup)
        try:
            first = await client.get("/v1/messages", headers=auth)
        finally:
            event.remove(
                engine.sync_engine, "after_cursor_execute", revocation_heard_during_the_lookup
            )
        assert first.status_code == 200
        assert lookups == 1
        async with engine.begin() as conn:  # what the clear announced
            await conn.execute(api_key.update().values(revoked_at=utcnow()))
        second = await client.get("/v1/messages", headers=auth)
    assert second.status_code == 401, second.text


async def test_a_key_looked_up_without_a_clear_is_remembered(sqlite_url: str) -> None:
    settings = make_settings(sqlite_url, api_key_cache_seconds=60)
    async with app_and_state(create_app(settings)) as (client, state):
        _, auth = await create_org_with_key(client)
        assert (await client.get("/v1/messages", headers=auth)).status_code == 200
        async with state["engine"].begin() as conn:  # behind the cache's back: no clear
            await conn.execute(api_key.update().values(revoked_at=utcnow()))
        remembered = await client.get("/v1/messages", headers=auth)
    assert remembered.status_code == 200
