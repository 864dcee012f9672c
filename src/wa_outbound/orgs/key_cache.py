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
"""

from __future__ import annotations

import time

from wa_outbound.orgs.auth import Principal


class ApiKeyCache:
    def __init__(self, *, ttl_s: float = 1.0, max_entries: int = 10_000) -> None:
        self._ttl_s = ttl_s
        self._max_entries = max_entries
        self._entries: dict[str, tuple[float, Principal]] = {}
        self._generation = 0

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
