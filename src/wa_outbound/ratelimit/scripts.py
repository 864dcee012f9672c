"""The limiter's Lua scripts and key names. Scripts are loaded once and called by EVALSHA; a
Redis that lost them (restart, SCRIPT FLUSH) answers NOSCRIPT and gets them loaded again."""

from __future__ import annotations

import functools
import hashlib
from dataclasses import dataclass
from importlib import resources
from typing import Any

from redis.asyncio import Redis
from redis.exceptions import NoScriptError

from wa_outbound.ratelimit.connections import Lane, bulk, pack
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


ACQUIRE_HEAD_ARGS = 6  # EVALSHA, sha, 3, the three keys


@functools.lru_cache(maxsize=16_384)
def acquire_head(sha: str, org_id: str) -> bytes:
    """`EVALSHA sha 3 counter limit throttle` without the array header: `pack` minus its
    first line."""
    packed = pack("EVALSHA", sha, 3, *keys(org_id))
    return packed[packed.index(b"\n") + 1 :]


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
    """The two scripts bound to one Redis: acquire on the lane, the rest on the client."""

    def __init__(self, client: Redis, lane: Lane) -> None:
        self.client = client
        self.lane = lane
        self._acquire = Script.load("acquire.lua")
        self._revoke = Script.load("revoke.lua")

    async def acquire(self, org_id: str, *argv: str | int | float) -> Any:
        """The acquire script's reply (see acquire.lua). The hot path: the command's head
        (EVALSHA, the script, the org's keys) is encoded once per org, only argv every call."""
        head = acquire_head(self._acquire.sha, org_id)
        command = b"*%d\r\n" % (ACQUIRE_HEAD_ARGS + len(argv)) + head
        command += b"".join(map(bulk, argv))
        try:
            return await self.lane.call(command)
        except NoScriptError:
            await self.client.script_load(self._acquire.source)
            return await self.lane.call(command)

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
