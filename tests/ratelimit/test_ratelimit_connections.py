"""The acquire script's lane: replies go to the call that asked, whatever happened to the calls
before it (a timeout, a cancellation, an error reply, a restarted server)."""

from __future__ import annotations

import asyncio
from collections.abc import AsyncIterator

import pytest
from redis.asyncio import Connection
from redis.exceptions import NoScriptError, ResponseError

from helpers import PrivateRedis
from wa_outbound.ratelimit.connections import Lane, pack
from wa_outbound.ratelimit.redis_limiter import REDIS_DOWN

ECHO = "return ARGV[1]"


@pytest.fixture
async def lane(private_redis: PrivateRedis) -> AsyncIterator[Lane]:
    # Long enough for 50 connections to open at once on a loaded machine.
    lane = Lane(private_redis.url, timeout_s=1.0)
    yield lane
    await lane.close()


async def echo(lane: Lane, value: str) -> object:
    return await lane.call(pack("EVAL", ECHO, 0, value))


def test_commands_are_packed_as_redis_py_packs_them() -> None:
    args = ("EVALSHA", "f" * 40, 3, "k:{é}", "l", "t", 100, 1764506123.456789, -1, 0.1 + 0.2)
    assert pack(*args) == b"".join(Connection().pack_command(*args))


async def test_concurrent_calls_each_get_their_own_reply(lane: Lane) -> None:
    values = [f"call-{i}" for i in range(50)]
    replies = await asyncio.gather(*(echo(lane, v) for v in values))
    assert replies == [v.encode() for v in values]


async def test_an_error_reply_raises_and_the_connection_stays_in_step(lane: Lane) -> None:
    with pytest.raises(NoScriptError):
        await lane.call(pack("EVALSHA", "0" * 40, 0))
    assert await echo(lane, "after the error") == b"after the error"


@pytest.mark.parametrize("how", ["timeout", "cancel"])
async def test_an_interrupted_call_does_not_leave_its_late_reply_for_the_next(
    lane: Lane, private_redis: PrivateRedis, how: str
) -> None:
    """A call on a warm connection while the server hangs, ended by the lane's deadline or by a
    cancellation; the server then answers it late on that connection."""
    assert await echo(lane, "before") == b"before"
    private_redis.pause()
    try:
        if how == "timeout":
            with pytest.raises(TimeoutError):
                await echo(lane, "late")
        else:
            call = asyncio.ensure_future(echo(lane, "late"))
            await asyncio.sleep(0.05)
            call.cancel()
            with pytest.raises(asyncio.CancelledError):
                await call
    finally:
        private_redis.resume()
    assert await echo(lane, "next") == b"next"


async def test_a_refused_handshake_never_leaves_a_connection_on_another_database(
    private_redis: PrivateRedis,
) -> None:
    lane = Lane(private_redis.url.rsplit("/", 1)[0] + "/99", timeout_s=1.0)
    try:
        for _ in range(2):  # the second call must not find a half-set-up connection to db 0
            with pytest.raises(ResponseError, match="DB index"):
                await echo(lane, "x")
    finally:
        await lane.close()


async def test_a_connection_is_reused_while_fresh_and_reopened_after_idling(
    private_redis: PrivateRedis,
) -> None:
    lane = Lane(private_redis.url, timeout_s=1.0, idle_s=1.0)
    try:
        first = await lane.call(pack("CLIENT", "ID"))
        assert await lane.call(pack("CLIENT", "ID")) == first
        await asyncio.sleep(1.2)
        reopened = await lane.call(pack("CLIENT", "ID"))
        assert reopened != first
        assert await lane.call(pack("CLIENT", "ID")) == reopened
    finally:
        await lane.close()


async def test_connections_closed_while_idle_are_replaced_without_an_error(
    lane: Lane, private_redis: PrivateRedis
) -> None:
    assert list(await asyncio.gather(echo(lane, "a"), echo(lane, "b"))) == [b"a", b"b"]
    private_redis.stop()
    private_redis.start()  # both idle connections are now closed
    assert list(await asyncio.gather(echo(lane, "c"), echo(lane, "d"))) == [b"c", b"d"]
    assert await echo(lane, "e") == b"e"


async def test_a_restarted_server_is_reconnected_to(
    lane: Lane, private_redis: PrivateRedis
) -> None:
    assert await echo(lane, "before") == b"before"
    private_redis.stop()
    with pytest.raises(REDIS_DOWN):
        await echo(lane, "while stopped")
    private_redis.start()
    assert await echo(lane, "after") == b"after"
