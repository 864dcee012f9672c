"""A short-lived, in-process memory of API keys that authenticated: most requests then skip the
database lookup of their key.

Only successful lookups are remembered, for at most `ttl_s` (WA_API_KEY_CACHE_SECONDS, 1 s by
default): an unknown key is looked up every time. A revocation clears the cache of the replica
that made it, and of every other replica when PostgreSQL delivers its notification (listener.py,
within milliseconds); a replica whose listening connection was down then forgets the key when
its entry expires.

A lookup that was in flight when the cache was cleared may have read the key before it was
revoked: its result must not be remembered. Every clear starts a new generation; a lookup takes
the generation before it reads, and `put` drops a result from an earlier generation.

`fetch` looks a key up once however many requests ask for it meanwhile: when an entry expires
under load, the requests in flight with that key (32 in the enqueue benchmark) share one lookup
instead of each making its own (three round trips: BEGIN, SELECT, ROLLBACK). A request that
arrives after a clear never joins a lookup that began before it.
"""

from __future__ import annotations

import asyncio
import time
from collections.abc import Awaitable, Callable

from wa_outbound.orgs.auth import Principal

Lookup = Callable[[], Awaitable[Principal | None]]


class ApiKeyCache:
    def __init__(self, *, ttl_s: float = 1.0, max_entries: int = 10_000) -> None:
        self._ttl_s = ttl_s
        self._max_entries = max_entries
        self._entries: dict[str, tuple[float, Principal]] = {}
        self._generation = 0
        self._in_flight: dict[tuple[str, int], asyncio.Future[Principal | None]] = {}

    @property
    def generation(self) -> int:
        """Take this before looking a key up; hand it to `put` with the result."""
        return self._generation

    def get(self, key_hash: str) -> Principal | None:
        entry = self._entries.get(key_hash)
        if entry is None:
            return None
        expires_at, principal = entry
        if time.monotonic() >= expires_at:
            del self._entries[key_hash]
            return None
        return principal

    async def fetch(self, key_hash: str, lookup: Lookup) -> Principal | None:
        """The remembered principal of `key_hash`, else `lookup()`'s answer (remembered when it
        is one), shared with every caller asking for the same key in the same generation while
        it runs. A caller cancelled while waiting leaves the lookup to the others. With a TTL
        of 0 every call looks its key up itself."""
        if self._ttl_s <= 0:
            return await lookup()
        principal = self.get(key_hash)
        if principal is not None:
            return principal
        flight = (key_hash, self._generation)
        pending = self._in_flight.get(flight)
        if pending is None:
            pending = asyncio.ensure_future(self._look_up(key_hash, lookup, self._generation))
            self._in_flight[flight] = pending
            pending.add_done_callback(lambda done: self._landed(flight, done))
        return await asyncio.shield(pending)

    async def _look_up(self, key_hash: str, lookup: Lookup, generation: int) -> Principal | None:
        principal = await lookup()
        if principal is not None:
            self.put(key_hash, principal, generation=generation)
        return principal

    def _landed(self, flight: tuple[str, int], done: asyncio.Future[Principal | None]) -> None:
        if self._in_flight.get(flight) is done:
            del self._in_flight[flight]
        if not done.cancelled():
            done.exception()  # retrieved here too: every waiter may have been cancelled

    def put(self, key_hash: str, principal: Principal, *, generation: int) -> None:
        if self._ttl_s <= 0 or generation != self._generation:
            return
        if len(self._entries) >= self._max_entries:
            # Many distinct keys within one TTL: start over rather than track an LRU order.
            self._entries.clear()
        self._entries[key_hash] = (time.monotonic() + self._ttl_s, principal)

    def clear(self) -> None:
        self._generation += 1
        self._entries.clear()
        self._in_flight.clear()  # lookups under way finish for their callers, remembered by none
