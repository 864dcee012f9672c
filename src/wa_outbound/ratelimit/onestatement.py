"""The database limiter's decision as a single PostgreSQL statement, outside any explicit
transaction: one round trip instead of four (BEGIN, SELECT ... FOR UPDATE, UPDATE, COMMIT).

The statement goes to the asyncpg connection under the engine's (`db/raw`), prepared once per
connection, not through SQLAlchemy's execution layer: measured in-process at one caller, that
layer cost about 450 µs of CPU a decision where the statement through asyncpg costs about 100
(docs/performance.md, "Database limiter").

It computes exactly what `database.decide` computes, in SQL: the window roll-over, the quota and
the per-second cap (gcra.py; a null cap is NULL in LEAST, which PostgreSQL ignores). The CTE
locks both of the org's rows, so concurrent decisions for
the org queue on the lock and each sees the counter its predecessor left."""

from __future__ import annotations

from datetime import datetime
from typing import Any

from sqlalchemy.ext.asyncio import AsyncConnection, AsyncEngine

from wa_outbound.db import raw
from wa_outbound.ratelimit import gcra, store

# $1 org_id, $2 n, $3 now (timestamptz), $4 now in Unix seconds, $5 gcra.EPSILON.
DECIDE = """
WITH current AS (
    SELECT c.org_id, c.window_started_at, c.used, c.tat,
           r.quota_limit, r.window_seconds, r.messages_per_second AS mps, r.updated_at,
           c.window_started_at + make_interval(secs => r.window_seconds) <= $3 AS ended
    FROM rate_limit_counter AS c JOIN rate_limit AS r ON r.org_id = c.org_id
    WHERE c.org_id = $1
    FOR UPDATE OF c, r
), windowed AS (
    SELECT org_id, tat, quota_limit, window_seconds, mps, updated_at,
           CASE WHEN ended THEN CAST($3 AS timestamptz) ELSE window_started_at END
               AS started_at,
           CASE WHEN ended THEN 0 ELSE used END AS used
    FROM current
), decided AS (
    SELECT windowed.*,
           CAST(GREATEST(0, LEAST(
               $2,
               floor(($4 - GREATEST(tat, $4)) * mps + GREATEST(1.0, mps) + $5),
               quota_limit - used
           )) AS bigint) AS granted
    FROM windowed
)
UPDATE rate_limit_counter AS c
SET used = d.used + d.granted,
    tat = CASE WHEN d.granted > 0 AND d.mps IS NOT NULL
               THEN GREATEST(d.tat, $4) + d.granted / d.mps ELSE d.tat END,
    window_started_at = d.started_at,
    updated_at = $3
FROM decided AS d
WHERE c.org_id = d.org_id
RETURNING d.granted, c.used, c.tat, c.window_started_at,
          d.quota_limit, d.window_seconds, d.mps, d.updated_at,
          set_config('synchronous_commit', 'off', true)
"""


class OneStatement:
    """The decision on a connection of its own: taken from the engine's pool when first needed
    and kept, so a decision costs the statement alone. A pool checkout and checkin (a greenlet
    switch each way, and a task to check in) cost about twice the statement's own CPU in a loop
    at one caller. A decision that finds the connection busy (concurrent callers) takes a
    pooled one, as before; a decision that fails or is cancelled on it gives it back to the
    pool (or drops it, when the connection was lost) and the next one takes a fresh one."""

    def __init__(self, engine: AsyncEngine) -> None:
        self.engine = engine
        self._held: AsyncConnection | None = None
        self._driver: Any = None  # the asyncpg connection under `_held`
        self._busy = False
        self._closed = False

    async def decide(self, org_id: str, n: int, now: datetime) -> tuple[store.Counter, int] | None:
        """(counter after the decision, granted), or None when the org has no counter row yet
        (its first decision goes through the transactional path, which creates it). The commit
        does not wait for the disk: see `store.RELAXED_COMMIT` for why that is safe."""
        args = (org_id, n, now, now.timestamp(), gcra.EPSILON)
        if self._busy or self._closed:
            async with self.engine.connect() as conn:
                row = await _fetch(conn, args)
        else:
            self._busy = True
            try:
                row = await self._on_held(args)
            finally:
                self._busy = False
        if row is None:
            return None
        limits = store.Limits(
            int(row[4]), int(row[5]), store.optional_float(row[6]), store.to_ms(row[7])
        )
        counter = store.Counter(limits, row[3], int(row[1]), float(row[2]), stored=True)
        return counter, int(row[0])

    async def _on_held(self, args: tuple[Any, ...]) -> Any:
        if self._held is None:
            self._held = await self.engine.connect()
            self._driver = await raw.driver(self._held)
        conn = self._held
        try:
            row = await _fetch(conn, args, self._driver)
        except BaseException:
            self._held = self._driver = None
            if not conn.invalidated:  # raw.connection_lost invalidated a lost one already
                await conn.close()
            raise
        if self._closed:  # closed while this decision was on it
            self._held = self._driver = None
            await conn.close()
        return row

    async def close(self) -> None:
        """Gives the connection back to the pool (a decision on it gives it back when done);
        later decisions take pooled ones."""
        self._closed = True
        if self._held is not None and not self._busy:
            held, self._held, self._driver = self._held, None, None
            await held.close()


async def _fetch(conn: AsyncConnection, args: tuple[Any, ...], driver: Any = None) -> Any:
    # Outside SQLAlchemy's transaction: the statement commits on its own (autocommit).
    try:
        if driver is None:
            driver = await raw.driver(conn)
        return await driver.fetchrow(DECIDE, *args)
    except raw.CONNECTION_LOST as exc:
        raise await raw.connection_lost(conn, exc) from exc
