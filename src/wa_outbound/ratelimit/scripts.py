"""The limiter's Lua scripts and key names. Scripts are loaded once and called by EVALSHA; a
Redis that lost them (restart, SCRIPT FLUSH, a replica promoted: scripts are not replicated)
answers NOSCRIPT and gets them loaded again, on that server."""

from __future__ import annotations

import functools
import hashlib
import math
from dataclasses import dataclass
from importlib import resources
from typing import Any

from redis.asyncio import Redis
from redis.asyncio.cluster import RedisCluster
from redis.exceptions import NoScriptError

from wa_outbound.ratelimit.connections import bulk, pack
from wa_outbound.ratelimit.routing import Router
from wa_outbound.ratelimit.store import Limits

PREFIX = "whatsapp:ratelimit"


@functools.lru_cache(maxsize=16_384)
def keys(org_id: str) -> tuple[str, str, str]:
    """counter, limit, throttle (see acquire.lua). The braces are a Redis Cluster hash tag: one
    org's keys share a slot, as a multi-key script requires."""
    tag = "{" + org_id + "}"
    return (
        f"{PREFIX}:counter:{tag}",
        f"{PREFIX}:limit:{tag}",
        f"{PREFIX}:throttle:{tag}",
    )


def sender_tag(org_id: str | None, sender_id: str) -> str:
    """The hash tag of a sender group's keys: its org's, so one script may touch the org's quota
    and the sender's keys together; the shared sender (many orgs) has one of its own, which no
    org id can spell (org ids have no colon)."""
    return org_id if org_id is not None else f"sender:{sender_id}"


def throughput_key(tag: str) -> str:
    """The hash of the grants per 100 ms of every sender under the tag, a field per sender."""
    return f"{PREFIX}:throughput:{{{tag}}}"


def reach_keys(tag: str, waba_id: str | None) -> tuple[str, str]:
    """reach, reach-loaded (see admit.lua)."""
    waba = waba_id or "-"
    return f"{PREFIX}:reach:{{{tag}}}:{waba}", f"{PREFIX}:reach_loaded:{{{tag}}}:{waba}"


def pair_keys(tag: str, interval_s: float, now_s: float) -> tuple[str, str]:
    """The pair-slot hashes (a field per sender and recipient) of this epoch and the one
    before. An epoch lasts at least the pair interval, so a slot written two epochs ago is
    past: hashes expire instead of every recipient's field being deleted."""
    return pair_keys_of(tag, pair_epoch(interval_s, now_s))


def pair_epoch(interval_s: float, now_s: float) -> int:
    return int(now_s * 1000) // epoch_length_ms(interval_s)


def pair_keys_of(tag: str, epoch: int) -> tuple[str, str]:
    base = f"{PREFIX}:pair:{{{tag}}}:"
    return f"{base}{epoch}", f"{base}{epoch - 1}"


def pair_field(sender_id: str, phone: str) -> str:
    """A pair slot's field: the sender's id in 32 hex digits, a colon, the recipient (admit.lua
    reads the recipient from the 34th byte)."""
    return f"{sender_id}:{phone}"


def epoch_length_ms(interval_s: float) -> int:
    return max(1000, math.ceil(interval_s * 1000))


ACQUIRE_HEAD_ARGS = 6  # EVALSHA, sha, 3, the three keys


@functools.lru_cache(maxsize=16_384)
def acquire_head(sha: str, org_id: str) -> bytes:
    """`EVALSHA sha 3 counter limit throttle` without the array header: `pack` minus its
    first line."""
    packed = pack("EVALSHA", sha, 3, *keys(org_id))
    return packed[packed.index(b"\n") + 1 :]


ADMIT_KEYS = 6  # and two per sender
ADMIT_SETTINGS = 4  # pair interval, quota on, epoch length, senders
SENDER_ARGS = 5  # id, mps, cap, n, which messages reach


@functools.lru_cache(maxsize=16_384)
def admit_head(sha: str, quota_tag: str, tag: str, epoch: int, senders: int) -> bytes:
    """`EVALSHA sha numkeys <admit.lua's keys but the senders' reach>` without the array
    header, encoded once per tag, pair epoch and number of senders (see `acquire_head`)."""
    packed = pack(
        "EVALSHA",
        sha,
        ADMIT_KEYS + 2 * senders,
        *keys(quota_tag),
        throughput_key(tag),
        *pair_keys_of(tag, epoch),
    )
    return packed[packed.index(b"\n") + 1 :]


@functools.lru_cache(maxsize=16_384)
def admit_reach(tag: str, waba_id: str | None) -> bytes:
    """A sender's two keys at the end of admit.lua's keys."""
    return b"".join(map(bulk, reach_keys(tag, waba_id)))


@functools.lru_cache(maxsize=1024)
def admit_settings(interval_s: float, quota_on: int, senders: int) -> bytes:
    """admit.lua's argv after `now` up to the senders' settings."""
    argv: tuple[str | int, ...] = (repr(interval_s), quota_on, epoch_length_ms(interval_s), senders)
    return b"".join(map(bulk, argv))


@functools.lru_cache(maxsize=16_384)
def sender_settings(sender_id: str, mps: float, cap: int, n: int) -> bytes:
    """One sender's settings in admit.lua's argv but which messages reach, encoded once per
    distinct group."""
    argv: tuple[str | int, ...] = (sender_id, repr(mps), cap, n)
    return b"".join(map(bulk, argv))


@dataclass(frozen=True, slots=True)
class Script:
    source: str
    sha: str

    @classmethod
    def load(cls, name: str) -> Script:
        source = resources.files("wa_outbound.ratelimit").joinpath(name).read_text("utf-8")
        return cls(source, hashlib.sha1(source.encode()).hexdigest())

    async def __call__(
        self, client: Redis | RedisCluster, numkeys: int, *args: str | int | float
    ) -> Any:
        try:
            return await client.evalsha(self.sha, numkeys, *args)
        except NoScriptError:
            await client.script_load(self.source)
            return await client.evalsha(self.sha, numkeys, *args)


class Scripts:
    """The scripts bound to one Redis: what decides (or must be confirmed by replicas) through
    the router's lanes, the rest on the redis-py client."""

    def __init__(self, client: Redis | RedisCluster, router: Router) -> None:
        self.client = client
        self.router = router
        self._acquire = Script.load("acquire.lua")
        self._revoke = Script.load("revoke.lua")
        self._admit = Script.load("admit.lua")
        self._refund = Script.load("refund.lua")

    async def acquire(self, org_id: str, *argv: str | int | float) -> Any:
        """The acquire script's reply (see acquire.lua). The hot path: the command's head
        (EVALSHA, the script, the org's keys) is encoded once per org, only argv every call."""
        head = acquire_head(self._acquire.sha, org_id)
        command = b"*%d\r\n" % (ACQUIRE_HEAD_ARGS + len(argv)) + head
        command += b"".join(map(bulk, argv))
        key = keys(org_id)[0]
        try:
            return await self.router.call(key, command)
        except NoScriptError:
            await self.router.load(key, self._acquire.source)
            return await self.router.call(key, command)

    async def admit(self, key: str, command: bytes) -> Any:
        """The reply to one packed admit call (see `admit_command`) whose keys share `key`'s
        slot."""
        try:
            return await self.router.call(key, command)
        except NoScriptError:
            await self.router.load(key, self._admit.source)
            return await self.router.call(key, command)

    @property
    def admit_sha(self) -> str:
        return self._admit.sha

    async def admit_many(self, calls: list[tuple[str, bytes]]) -> list[Any]:
        """Several packed admit calls (key, command), pipelined: one round trip per server. A
        server that lost the script gets it loaded, and only the calls it refused are sent
        again (the others ran)."""
        replies = await self.router.call_many(calls)
        missing = [i for i, reply in enumerate(replies) if isinstance(reply, NoScriptError)]
        if missing:
            for key in {calls[i][0] for i in missing}:
                await self.router.load(key, self._admit.source)
            again = await self.router.call_many([calls[i] for i in missing])
            for i, reply in zip(missing, again, strict=True):
                replies[i] = reply
        for reply in replies:
            if isinstance(reply, Exception):
                raise reply
        return replies

    async def refund(self, org_id: str, count: int) -> None:
        """Give back quota granted to messages another limit then refused."""
        await self._refund(self.client, 1, keys(org_id)[0], count)

    async def load_reach(
        self, tag: str, waba_id: str, reached: list[tuple[str, float]], ttl_s: int
    ) -> None:
        """Add the database's reached recipients to the WABA's cache and mark it loaded. Only
        adds: a recipient another replica granted meanwhile is never dropped."""
        reach, loaded = reach_keys(tag, waba_id)
        async with self.client.pipeline(transaction=False) as pipe:
            for start in range(0, len(reached), 1000):
                chunk = reached[start : start + 1000]
                pipe.zadd(reach, {phone: round(at * 1000) for phone, at in chunk})
            pipe.pexpire(reach, 90_000_000)
            pipe.set(loaded, "1", ex=ttl_s)
            await pipe.execute()

    async def forget_reach(self, tag: str, waba_id: str) -> None:
        """The cache missed grants made elsewhere (the database decided): load it again. Through
        the router: replicas must hold the deletion before the database's grants are left to
        Redis again."""
        loaded = reach_keys(tag, waba_id)[1]
        await self.router.call(loaded, pack("DEL", loaded))

    async def revoke(self, org_id: str, limits: Limits) -> tuple[int, int]:
        """Take back Redis's unused allotment and cache `limits`: (unused, window start ms)."""
        counter, limit, throttle = keys(org_id)
        # Through the router: replicas must hold the revocation before the database counts
        # the unused allotment as free again.
        command = pack(
            "EVALSHA",
            self._revoke.sha,
            3,
            counter,
            limit,
            throttle,
            limits.quota_limit,
            limits.window_seconds,
            repr(limits.messages_per_second or 0),
            limits.version_ms,
        )
        try:
            unused, start_ms = await self.router.call(counter, command)
        except NoScriptError:
            await self.router.load(counter, self._revoke.source)
            unused, start_ms = await self.router.call(counter, command)
        return int(unused), int(start_ms)

    async def inspect(self, org_id: str) -> tuple[int, int, int] | None:
        """(used, allot, window start ms) of the org's Redis counter, if it has one."""
        used, allot, start = await self.client.hmget(keys(org_id)[0], ["used", "allot", "start"])
        if used is None or allot is None or start is None:
            return None
        return int(used), int(allot), int(start)
