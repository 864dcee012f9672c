"""A short-lived, in-process memory of API keys that authenticated: most requests then skip the
database lookup of their key.

Only successful lookups are remembered, for at most `ttl_s` (WA_API_KEY_CACHE_SECONDS, 1 s by
default): an unknown key is looked up every time. A revocation clears the cache of the replica
that made it, and of every other replica when PostgreSQL delivers its notification (listener.py,
within milliseconds); a replica whose listening connection was down then forgets the key when
its entry expires.
"""

from __future__ import annotations

import time

from wa_outbound.orgs.auth import Principal


class ApiKeyCache:
    def __init__(self, *, ttl_s: float = 1.0, max_entries: int = 10_000) -> None:
        self._ttl_s = ttl_s
        self._max_entries = max_entries
        self._entries: dict[str, tuple[float, Principal]] = {}

    def get(self, key_hash: str) -> Principal | None:
        entry = self._entries.get(key_hash)
        if entry is None:
            return None
        expires_at, principal = entry
        if time.monotonic() >= expires_at:
            del self._entries[key_hash]
            return None
        return principal

    def put(self, key_hash: str, principal: Principal) -> None:
        if self._ttl_s <= 0:
            return
        if len(self._entries) >= self._max_entries:
            # Many distinct keys within one TTL: start over rather than track an LRU order.
            self._entries.clear()
        self._entries[key_hash] = (time.monotonic() + self._ttl_s, principal)

    def clear(self) -> None:
        self._entries.clear()
