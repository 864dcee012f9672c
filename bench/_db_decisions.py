"""The database limiter's ceiling for bench/ratelimit.py: its single-statement decision
(`onestatement.DECIDE`, the same arguments) through asyncpg alone."""

from __future__ import annotations

from collections.abc import Awaitable, Callable

import asyncpg

from wa_outbound.db.types import utcnow
from wa_outbound.ratelimit import gcra, onestatement


class BareDecisions:
    """The database limiter's ceiling: its decision statement through asyncpg alone, on a
    connection of its own, no pool and no SQLAlchemy (what `acquire` could cost at best)."""

    def __init__(self, dsn: str) -> None:
        self.dsn = dsn
        self.conns: list[asyncpg.Connection] = []

    async def open(self, callers: int) -> None:
        while len(self.conns) < callers:
            self.conns.append(await asyncpg.connect(self.dsn))

    async def call(self, index: int, org_id: str, n: int) -> object:
        now = utcnow()
        return await self.conns[index].fetchrow(
            onestatement.DECIDE, org_id, n, now, now.timestamp(), gcra.EPSILON
        )

    def caller(self, org_ids: list[str]) -> Callable[[int], Awaitable[object]]:
        """A `compare` case: caller i decides one message for `org_ids[i]`."""
        return lambda i: self.call(i, org_ids[i], 1)

    async def close(self) -> None:
        for conn in self.conns:
            await conn.close()
