"""Connections to a Redis server: the lane that carries the limiter's scripts, the one call the
dispatcher makes per decision (routing.py picks the server; topology.py makes redis-py's
clients for the occasional commands).

Both time out after `REDIS_TIMEOUT_S`, so a Redis that stops answering hands the decisions to
the database well within a second."""

from __future__ import annotations

import asyncio
import time
from typing import Any

from redis.asyncio import ConnectionPool
from redis.asyncio.connection import AbstractConnection
from redis.exceptions import ConnectionError as RedisConnectionError
from redis.exceptions import ResponseError

REDIS_TIMEOUT_S = 0.3
LANE_IDLE_MAX = 64
# Below the idle timeouts of NATs and load balancers that drop a quiet connection silently
# (no reset: a write would vanish and the read time out), e.g. 350 s on AWS.
LANE_IDLE_S = 30.0


def bulk(value: str | int | float) -> bytes:
    """One argument as a RESP bulk string (numbers as their shortest round-trip text, as redis-py
    sends them)."""
    data = value.encode() if isinstance(value, str) else repr(value).encode()
    return b"$%d\r\n%b\r\n" % (len(data), data)


def pack(*args: str | int | float) -> bytes:
    """A command as Redis reads it: an array of bulk strings."""
    return b"*%d\r\n" % len(args) + b"".join(bulk(arg) for arg in args)


class Lane:
    """Connections of the acquire script's own, each carrying one command at a time.

    `Redis.execute_command` spends about as long per call as Redis spends running the script:
    its pool takes a lock, probes the socket for stray data, runs observability hooks and, with
    a socket timeout set, wraps every write in a task of its own. Here a call takes an idle
    connection (or opens one), writes, reads, and puts it back under one deadline. A
    connection that failed or was cancelled mid-reply may hold half an answer: it is closed,
    never reused. An error reply (NOSCRIPT, a script error) leaves it clean, so it is kept.

    An idle connection that Redis (or a proxy) closed meanwhile fails at once: the command is
    sent again, once, on a new connection, as redis-py's single retry would. A command that
    reached Redis before its connection broke may so run twice; the acquire script then counts
    a grant nobody sends, which under-grants but never over-grants. A timeout is not retried.
    A connection left idle for longer than `idle_s` is opened afresh before use: a middlebox
    may have dropped it without a word."""

    def __init__(
        self, url: str, *, timeout_s: float = REDIS_TIMEOUT_S, idle_s: float = LANE_IDLE_S
    ) -> None:
        # Used only to make connections from the URL (TCP, TLS or a Unix socket), never to lend.
        self._factory = ConnectionPool.from_url(
            url, socket_timeout=None, socket_connect_timeout=timeout_s, health_check_interval=0
        )
        self._timeout_s = timeout_s
        self._idle_s = idle_s
        self._idle: list[tuple[AbstractConnection, float]] = []  # with when it was put back

    async def call(self, command: bytes) -> Any:
        """The reply to one packed command (see `pack`); an error reply raises its
        `ResponseError`."""
        if self._idle:
            conn, since = self._idle.pop()
            if time.monotonic() - since > self._idle_s:
                await conn.disconnect(nowait=True)  # _exchange opens it again
            try:
                return await self._exchange(conn, command)
            except RedisConnectionError:
                pass
        return await self._exchange(self._connect(), command)

    async def call_many(self, commands: list[bytes]) -> list[Any]:
        """The replies to several packed commands sent together on one connection: one round
        trip. An error reply is returned in its place (as its `ResponseError`), not raised."""
        if self._idle:
            conn, since = self._idle.pop()
            if time.monotonic() - since > self._idle_s:
                await conn.disconnect(nowait=True)
            try:
                return await self._exchange_many(conn, commands)
            except RedisConnectionError:
                pass
        return await self._exchange_many(self._connect(), commands)

    async def _exchange_many(self, conn: AbstractConnection, commands: list[bytes]) -> list[Any]:
        if not conn.is_connected:
            try:
                async with asyncio.timeout(self._timeout_s):
                    await conn.connect()  # type: ignore[no-untyped-call]  # unannotated upstream
            except BaseException:
                await conn.disconnect(nowait=True)
                raise
        replies: list[Any] = []
        try:
            async with asyncio.timeout(self._timeout_s):
                await conn.send_packed_command(b"".join(commands), check_health=False)
                for _ in commands:
                    try:
                        replies.append(await conn.read_response())
                    except ResponseError as exc:
                        replies.append(exc)
        except BaseException:
            await conn.disconnect(nowait=True)
            raise
        await self._put_back(conn)
        return replies

    async def _exchange(self, conn: AbstractConnection, command: bytes) -> Any:
        if not conn.is_connected:
            # A deadline of its own (a burst of connects is slow); any failure here, an error
            # reply to the handshake included, leaves a connection not fit for use.
            try:
                async with asyncio.timeout(self._timeout_s):
                    await conn.connect()  # type: ignore[no-untyped-call]  # unannotated upstream
            except BaseException:
                await conn.disconnect(nowait=True)
                raise
        try:
            async with asyncio.timeout(self._timeout_s):
                await conn.send_packed_command(command, check_health=False)
                reply = await conn.read_response()
        except ResponseError:
            await self._put_back(conn)
            raise
        except BaseException:
            await conn.disconnect(nowait=True)
            raise
        await self._put_back(conn)
        return reply

    def _connect(self) -> AbstractConnection:
        # What the pool's own (untyped) make_connection does; the lane connects on first write.
        return self._factory.connection_class(**self._factory.connection_kwargs)

    async def _put_back(self, conn: AbstractConnection) -> None:
        if len(self._idle) < LANE_IDLE_MAX:
            self._idle.append((conn, time.monotonic()))
        else:
            await conn.disconnect(nowait=True)

    async def close(self) -> None:
        idle, self._idle = self._idle, []
        await asyncio.gather(*(conn.disconnect() for conn, _ in idle), return_exceptions=True)
