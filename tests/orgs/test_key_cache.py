"""The in-process memory of API keys that authenticated (no clock: TTL 0 or a long one), and
a revocation heard while a key's lookup is in flight."""

from __future__ import annotations

import asyncio
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


async def test_concurrent_misses_share_one_lookup() -> None:
    cache = ApiKeyCache(ttl_s=3600)
    release = asyncio.Event()
    lookups = 0

    async def lookup() -> Principal | None:
        nonlocal lookups
        lookups += 1
        await release.wait()
        return PRINCIPAL

    waiting = [asyncio.create_task(cache.fetch("hash-1", lookup)) for _ in range(5)]
    await asyncio.sleep(0)
    release.set()
    assert await asyncio.gather(*waiting) == [PRINCIPAL] * 5
    assert lookups == 1
    assert await cache.fetch("hash-1", lookup) == PRINCIPAL  # remembered: no second lookup
    assert lookups == 1


async def test_a_request_after_a_clear_does_not_join_the_lookup_before_it() -> None:
    cache = ApiKeyCache(ttl_s=3600)
    release = asyncio.Event()
    answers = [PRINCIPAL, None]  # the key is revoked between the two lookups

    async def lookup() -> Principal | None:
        answer = answers.pop(0)
        await release.wait()
        return answer

    before = asyncio.create_task(cache.fetch("hash-1", lookup))
    await asyncio.sleep(0)
    cache.clear()  # the revocation is heard while the first lookup is in flight
    after = asyncio.create_task(cache.fetch("hash-1", lookup))
    await asyncio.sleep(0)
    release.set()
    assert await before == PRINCIPAL  # concurrent with the revocation: may pass
    assert await after is None
    assert cache.get("hash-1") is None  # and the first answer is not remembered


async def test_a_failed_lookup_fails_every_waiter_and_is_not_remembered() -> None:
    cache = ApiKeyCache(ttl_s=3600)
    release = asyncio.Event()
    calls = 0

    async def lookup() -> Principal | None:
        nonlocal calls
        calls += 1
        await release.wait()
        if calls == 1:
            raise ConnectionError("database down")
        return PRINCIPAL

    waiting = [asyncio.create_task(cache.fetch("hash-1", lookup)) for _ in range(3)]
    await asyncio.sleep(0)
    release.set()
    results = await asyncio.gather(*waiting, return_exceptions=True)
    assert all(isinstance(r, ConnectionError) for r in results)
    assert await cache.fetch("hash-1", lookup) == PRINCIPAL  # a new lookup, which succeeds
    assert calls == 2


async def test_a_cancelled_waiter_leaves_the_lookup_to_the_others() -> None:
    cache = ApiKeyCache(ttl_s=3600)
    release = asyncio.Event()

    async def lookup() -> Principal | None:
        await release.wait()
        return PRINCIPAL

    first = asyncio.create_task(cache.fetch("hash-1", lookup))
    second = asyncio.create_task(cache.fetch("hash-1", lookup))
    await asyncio.sleep(0)
    first.cancel()  # the client that started the lookup went away
    await asyncio.sleep(0)
    release.set()
    assert await second == PRINCIPAL
    assert first.cancelled()
