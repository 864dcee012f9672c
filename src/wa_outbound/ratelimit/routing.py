"""Which Redis server runs each of the limiter's commands, on the lanes (connections.py).

Every command names the key whose hash slot it lives in (all the keys of one command share it:
the `{tag}` hash tags). A router sends it to the master serving that slot:

- `Single`: the one server (standalone);
- `SentinelRouter`: the master Sentinel names, asked again at every probe;
- `ClusterRouter`: the master of the key's slot in the cluster's slot map, read from the
  startup node (`CLUSTER SLOTS`); a `MOVED` answer (the command did not run) reads the map
  again and sends the command once more, an `ASK` sends it to the slot's importing node.

Replication: with `wait_replicas` above 0, the commands sent together are followed by
`WAIT wait_replicas 100`, and their replies are returned only once that many replicas hold
what they wrote; else `NotReplicated` is raised and what they granted is never acted on (an
under-grant). A replica promoted after a master died thus holds every grant acted on."""

from __future__ import annotations

import asyncio
import functools
from typing import Any
from urllib.parse import urlsplit, urlunsplit

from redis.crc import key_slot
from redis.exceptions import AskError, MovedError, RedisError

from wa_outbound.ratelimit.connections import Lane, pack
from wa_outbound.ratelimit.topology import WAIT_TIMEOUT_MS, RedisTarget, sentinel_manager

SLOTS = 16384


class NotReplicated(RedisError):
    """Fewer replicas than required confirmed a write in time."""


class NotMaster(RedisError):
    """The server asked is not (or no longer) a master."""


def node_url(url: str, host: str, port: int) -> str:
    """`url` (its scheme, credentials, database) pointing at another server."""
    parts = urlsplit(url)
    userinfo = parts.netloc.rpartition("@")[0]
    where = f"[{host}]:{port}" if ":" in host else f"{host}:{port}"
    netloc = f"{userinfo}@{where}" if userinfo else where
    return urlunsplit((parts.scheme, netloc, parts.path, parts.query, parts.fragment))


@functools.lru_cache(maxsize=65_536)
def slot_of(key: str) -> int:
    return int(key_slot(key.encode()))


class Router:
    """The common part: sending to one lane, with `WAIT` when replicas must confirm."""

    def __init__(self, target: RedisTarget) -> None:
        self._target = target
        self._wait = target.wait_replicas
        self._wait_command = pack("WAIT", target.wait_replicas, WAIT_TIMEOUT_MS)

    async def _lane(self, key: str) -> Lane:
        raise NotImplementedError

    async def call(self, key: str, command: bytes) -> Any:
        """The reply to one packed command on the master of `key`'s slot; an error reply
        raises."""
        lane = await self._lane(key)
        if not self._wait:
            return await lane.call(command)
        (reply,) = await self._send(lane, [command])
        if isinstance(reply, Exception):
            raise reply
        return reply

    async def call_many(self, calls: list[tuple[str, bytes]]) -> list[Any]:
        """The replies to several (key, packed command), one round trip per master; an error
        reply is returned in its place."""
        by_lane: dict[Lane, list[int]] = {}
        for i, (key, _) in enumerate(calls):
            by_lane.setdefault(await self._lane(key), []).append(i)
        if len(by_lane) == 1:  # one server: no task to gather
            (lane,) = by_lane
            return await self._send(lane, [command for _, command in calls])
        replies: list[Any] = [None] * len(calls)
        sent = await asyncio.gather(
            *(self._send(lane, [calls[i][1] for i in owned]) for lane, owned in by_lane.items())
        )
        for owned, got in zip(by_lane.values(), sent, strict=True):
            for i, reply in zip(owned, got, strict=True):
                replies[i] = reply
        return replies

    async def _send(self, lane: Lane, commands: list[bytes]) -> list[Any]:
        if not self._wait:
            return await lane.call_many(commands)
        replies = await lane.call_many([*commands, self._wait_command])
        acked = replies.pop()
        if isinstance(acked, Exception) or acked < self._wait:
            raise NotReplicated(
                f"{acked} of {self._wait} replicas confirmed within {WAIT_TIMEOUT_MS} ms"
            )
        return replies

    async def load(self, key: str, source: str) -> None:
        """Load a script on the master of `key`'s slot (scripts are not replicated)."""
        lane = await self._lane(key)
        await lane.call(pack("SCRIPT", "LOAD", source))

    async def check(self) -> None:
        """Raise unless every master answers (and has its replicas, when they must confirm)."""
        raise NotImplementedError

    async def _check_lane(self, lane: Lane) -> None:
        role = await lane.call(pack("ROLE"))
        if role[0] != b"master":
            raise NotMaster(f"the server is a {role[0].decode()}")
        if self._wait:
            acked = await lane.call(pack("WAIT", self._wait, WAIT_TIMEOUT_MS))
            if acked < self._wait:
                raise NotReplicated(f"{acked} of {self._wait} replicas connected")

    async def close(self) -> None:
        raise NotImplementedError


class Single(Router):
    def __init__(self, target: RedisTarget) -> None:
        super().__init__(target)
        self._the_lane = Lane(target.url)

    async def _lane(self, key: str) -> Lane:
        return self._the_lane

    async def call(self, key: str, command: bytes) -> Any:
        if not self._wait:  # the hot path of a single server: straight to the lane
            return await self._the_lane.call(command)
        return await super().call(key, command)

    async def check(self) -> None:
        await self._the_lane.call(pack("PING"))
        if self._wait:
            await self._check_lane(self._the_lane)

    async def close(self) -> None:
        await self._the_lane.close()


class SentinelRouter(Router):
    """The master Sentinel names, found on first use and again at every `check` (a failover
    moves it); a lane to an old master is closed when Sentinel names another."""

    def __init__(self, target: RedisTarget) -> None:
        super().__init__(target)
        self._sentinel = sentinel_manager(target)
        self._address: tuple[str, int] | None = None
        self._master: Lane | None = None

    async def _lane(self, key: str) -> Lane:
        if self._master is None:
            await self._discover()
        assert self._master is not None
        return self._master

    async def _discover(self) -> Lane:
        host, port = await self._sentinel.discover_master(self._target.master)
        if (host, port) != self._address or self._master is None:
            old, self._master = self._master, Lane(node_url(self._target.url, host, port))
            self._address = (host, port)
            if old is not None:
                await old.close()
        return self._master

    async def check(self) -> None:
        await self._check_lane(await self._discover())

    async def close(self) -> None:
        if self._master is not None:
            await self._master.close()
        for sentinel in self._sentinel.sentinels:
            await sentinel.aclose()


class ClusterRouter(Router):
    """Routes by the cluster's slot map, read from any node it knows (the startup node first)."""

    def __init__(self, target: RedisTarget) -> None:
        super().__init__(target)
        start = urlsplit(target.url)
        self._startup = (start.hostname or "127.0.0.1", start.port or 6379)
        self._lanes: dict[tuple[str, int], Lane] = {}
        self._slots: list[tuple[str, int] | None] = [None] * SLOTS
        self._refreshing: asyncio.Lock = asyncio.Lock()

    def _lane_at(self, address: tuple[str, int]) -> Lane:
        lane = self._lanes.get(address)
        if lane is None:
            lane = self._lanes[address] = Lane(node_url(self._target.url, *address))
        return lane

    async def _lane(self, key: str) -> Lane:
        address = self._slots[slot_of(key)]
        if address is None:
            await self.refresh()
            address = self._slots[slot_of(key)]
            if address is None:
                raise RedisError(f"no master serves slot {slot_of(key)}")
        return self._lane_at(address)

    async def refresh(self) -> None:
        """Read the slot map from the first node that answers; close lanes to nodes that serve
        no slot any more."""
        async with self._refreshing:
            known = [self._startup, *(a for a in self._lanes if a != self._startup)]
            error: Exception | None = None
            for address in known:
                try:
                    ranges = await self._lane_at(address).call(pack("CLUSTER", "SLOTS"))
                    break
                except (RedisError, OSError) as exc:
                    error = exc
            else:
                raise error or RedisError("no cluster node answers")
            slots: list[tuple[str, int] | None] = [None] * SLOTS
            for first, last, master, *_ in ranges:
                host = master[0].decode() or address[0]
                slots[first : last + 1] = [(host, int(master[1]))] * (last - first + 1)
            self._slots = slots
            serving = set(slots)
            for gone in [a for a in self._lanes if a not in serving and a != self._startup]:
                await self._lanes.pop(gone).close()

    async def call(self, key: str, command: bytes) -> Any:
        try:
            return await super().call(key, command)
        except MovedError:  # not run: sent again once the map is read afresh
            await self.refresh()
            return await super().call(key, command)
        except AskError as exc:
            lane = self._lane_at((exc.host, int(exc.port)))
            reply = (await self._send(lane, [pack("ASKING"), command]))[1]
            if isinstance(reply, Exception):
                raise reply from None
            return reply

    async def call_many(self, calls: list[tuple[str, bytes]]) -> list[Any]:
        replies = await super().call_many(calls)
        moved = [i for i, r in enumerate(replies) if isinstance(r, MovedError)]
        if moved:  # not run: sent again once the map is read afresh
            await self.refresh()
            again = await super().call_many([calls[i] for i in moved])
            for i, reply in zip(moved, again, strict=True):
                replies[i] = reply
        for i, reply in enumerate(replies):
            if isinstance(reply, AskError) and not isinstance(reply, MovedError):
                lane = self._lane_at((reply.host, int(reply.port)))
                replies[i] = (await self._send(lane, [pack("ASKING"), calls[i][1]]))[1]
        return replies

    async def check(self) -> None:
        await self.refresh()
        if None in self._slots:
            raise RedisError("the cluster's slots are not all served")
        masters = {address for address in self._slots if address is not None}
        await asyncio.gather(*(self._check_lane(self._lane_at(a)) for a in masters))

    async def close(self) -> None:
        lanes, self._lanes = list(self._lanes.values()), {}
        await asyncio.gather(*(lane.close() for lane in lanes), return_exceptions=True)


def create_router(target: RedisTarget) -> Router:
    if target.mode == "cluster":
        return ClusterRouter(target)
    if target.mode == "sentinel":
        return SentinelRouter(target)
    return Single(target)
