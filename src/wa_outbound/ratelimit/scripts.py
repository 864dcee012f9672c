"""The limiter's Lua scripts and key names. Scripts are loaded once and called by EVALSHA; a
Redis that lost them (restart, SCRIPT FLUSH) answers NOSCRIPT and gets them loaded again."""

from __future__ import annotations

import hashlib
from dataclasses import dataclass
from importlib import resources
from typing import Any

from redis.asyncio import Redis
from redis.exceptions import NoScriptError

from wa_outbound.ratelimit.store import Limits

PREFIX = "whatsapp:ratelimit"


def keys(org_id: str) -> tuple[str, str, str]:
    """counter, limit, throttle (see acquire.lua). The braces are a Redis Cluster hash tag: one
    org's keys share a slot, as a multi-key script requires."""
    tag = "{" + org_id + "}"
    return (
        f"{PREFIX}:counter:{tag}",
        f"{PREFIX}:limit:{tag}",
        f"{PREFIX}:throttle:{tag}",
    )


@dataclass(frozen=True, slots=True)
class Script:
    source: str
    sha: str

    @classmethod
    def load(cls, name: str) -> Script:
        source = resources.files("wa_outbound.ratelimit").joinpath(name).read_text("utf-8")
        return cls(source, hashlib.sha1(source.encode()).hexdigest())

    async def __call__(self, client: Redis, numkeys: int, *args: str | int | float) -> Any:
        try:
            return await client.evalsha(self.sha, numkeys, *args)
        except NoScriptError:
            await client.script_load(self.source)
            return await client.evalsha(self.sha, numkeys, *args)


class Scripts:
    """The two scripts bound to one client."""

    def __init__(self, client: Redis) -> None:
        self.client = client
        self._acquire = Script.load("acquire.lua")
        self._revoke = Script.load("revoke.lua")

    async def acquire(self, org_keys: tuple[str, ...], *argv: str | int | float) -> Any:
        """The acquire script's reply (see acquire.lua). The hot path: no layer of its own."""
        try:
            return await self.client.evalsha(self._acquire.sha, 3, *org_keys, *argv)
        except NoScriptError:
            return await self._acquire(self.client, 3, *org_keys, *argv)

    async def revoke(self, org_id: str, limits: Limits) -> tuple[int, int]:
        """Take back Redis's unused allotment and cache `limits`: (unused, window start ms)."""
        counter, limit, throttle = keys(org_id)
        unused, start_ms = await self._revoke(
            self.client,
            3,
            counter,
            limit,
            throttle,
            limits.quota_limit,
            limits.window_seconds,
            repr(limits.messages_per_second),
            limits.version_ms,
        )
        return int(unused), int(start_ms)

    async def inspect(self, org_id: str) -> tuple[int, int, int] | None:
        """(used, allot, window start ms) of the org's Redis counter, if it has one."""
        used, allot, start = await self.client.hmget(keys(org_id)[0], ["used", "allot", "start"])
        if used is None or allot is None or start is None:
            return None
        return int(used), int(allot), int(start)
