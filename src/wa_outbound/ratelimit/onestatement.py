"""The database limiter's decision as a single PostgreSQL statement, outside any explicit
transaction: one round trip instead of four (BEGIN, SELECT ... FOR UPDATE, UPDATE, COMMIT).

It computes exactly what `database.decide` computes, in SQL: the window roll-over, the quota and
the per-second cap (gcra.py; a null cap is NULL in LEAST, which PostgreSQL ignores). The CTE
locks both of the org's rows, so concurrent decisions for
the org queue on the lock and each sees the counter its predecessor left."""

from __future__ import annotations

from datetime import datetime

import sqlalchemy as sa
from sqlalchemy.ext.asyncio import AsyncEngine

from wa_outbound.ratelimit import gcra, store

DECIDE = sa.text(
    """
WITH current AS (
    SELECT c.org_id, c.window_started_at, c.used, c.tat,
           r.quota_limit, r.window_seconds, r.messages_per_second AS mps, r.updated_at,
           c.window_started_at + make_interval(secs => r.window_seconds) <= :now_at AS ended
    FROM rate_limit_counter AS c JOIN rate_limit AS r ON r.org_id = c.org_id
    WHERE c.org_id = :org_id
    FOR UPDATE OF c, r
), windowed AS (
    SELECT org_id, tat, quota_limit, window_seconds, mps, updated_at,
           CASE WHEN ended THEN CAST(:now_at AS timestamptz) ELSE window_started_at END
               AS started_at,
           CASE WHEN ended THEN 0 ELSE used END AS used
    FROM current
), decided AS (
    SELECT windowed.*,
           CAST(GREATEST(0, LEAST(
               :n,
               floor((:now_s - GREATEST(tat, :now_s)) * mps + GREATEST(1.0, mps) + :epsilon),
               quota_limit - used
           )) AS bigint) AS granted
    FROM windowed
)
UPDATE rate_limit_counter AS c
SET used = d.used + d.granted,
    tat = CASE WHEN d.granted > 0 AND d.mps IS NOT NULL
               THEN GREATEST(d.tat, :now_s) + d.granted / d.mps ELSE d.tat END,
    window_started_at = d.started_at,
    updated_at = :now_at
FROM decided AS d
WHERE c.org_id = d.org_id
RETURNING d.granted, c.used, c.tat, c.window_started_at,
          d.quota_limit, d.window_seconds, d.mps, d.updated_at,
          set_config('synchronous_commit', 'off', true)
"""
)


async def decide(
    engine: AsyncEngine, org_id: str, n: int, now: datetime
) -> tuple[store.Counter, int] | None:
    """(counter after the decision, granted), or None when the org has no counter row yet (its
    first decision goes through the transactional path, which creates it). The commit does not
    wait for the disk: see `store.RELAXED_COMMIT` for why that is safe."""
    async with engine.connect() as conn:
        autocommit = await conn.execution_options(isolation_level="AUTOCOMMIT")
        row = (
            await autocommit.execute(
                DECIDE,
                {
                    "org_id": org_id,
                    "n": n,
                    "now_at": now,
                    "now_s": now.timestamp(),
                    "epsilon": gcra.EPSILON,
                },
            )
        ).first()
    if row is None:
        return None
    limits = store.Limits(
        int(row[4]), int(row[5]), store.optional_float(row[6]), store.to_ms(row[7])
    )
    return store.Counter(limits, row[3], int(row[1]), float(row[2]), stored=True), int(row[0])
