"""The database side of the per-sender limits: the state `plan.decide` reads and writes for a
batch's sender groups, under the caller's transaction, in a few statements for the whole batch.

The senders' `sender_throughput` rows are locked first, in the order of their ids, and
serialise every database decision for those senders across replicas; the WABAs' rows are
locked next (in order) when their messaging limit is asked, since a WABA's senders share it.
`waba_reach` is the authoritative record of the recipients each WABA reached (the Redis limiter
writes its grants here too)."""

from __future__ import annotations

import uuid
from collections.abc import Iterable, Mapping
from dataclasses import dataclass, field
from datetime import UTC, datetime, timedelta

import orjson
import sqlalchemy as sa
from sqlalchemy.ext.asyncio import AsyncConnection

from wa_outbound.db import dialect
from wa_outbound.db.schema import pair_slot, sender_throughput, waba, waba_reach
from wa_outbound.ratelimit.plan import Plan, SenderState
from wa_outbound.ratelimit.senders import DAY_S, SenderGroup

t = sender_throughput.c
p = pair_slot.c
r = waba_reach.c

# On PostgreSQL the batch's senders and pairs go as arrays: one statement, prepared once,
# whatever their number (an IN list or an executemany is a statement, or a row, each).
_PG_PAIRS = sa.text(
    """
    SELECT p.sender_id, p.phone, p.next_at FROM pair_slot AS p
    JOIN unnest(CAST(:senders AS uuid[]), CAST(:phones AS text[])) AS a(sender_id, phone)
      ON p.sender_id = a.sender_id AND p.phone = a.phone
    """
).columns(p.sender_id, p.phone, p.next_at)
_PG_WRITE_THROUGHPUT = sa.text(
    """
    INSERT INTO sender_throughput (sender_id, buckets, updated_at)
    SELECT a.sender_id, CAST(a.buckets AS jsonb), :now
    FROM unnest(CAST(:senders AS uuid[]), CAST(:buckets AS text[])) AS a(sender_id, buckets)
    ON CONFLICT (sender_id) DO UPDATE
    SET buckets = excluded.buckets, updated_at = excluded.updated_at
    """
).bindparams(sa.bindparam("now", type_=t.updated_at.type))
_PG_WRITE_PAIRS = sa.text(
    """
    INSERT INTO pair_slot (sender_id, phone, next_at)
    SELECT * FROM unnest(CAST(:senders AS uuid[]), CAST(:phones AS text[]),
                         CAST(:next_at AS timestamptz[]))
    ON CONFLICT (sender_id, phone) DO UPDATE SET next_at = excluded.next_at
    """
)


@dataclass
class BatchState:
    """What the limits know of a batch's senders and WABAs, brought up to date as its groups
    are decided one after another (a later group of the same sender or WABA sees what an
    earlier one consumed), and what is to be written back."""

    buckets: dict[uuid.UUID, dict[int, int]] = field(default_factory=dict)
    pairs: dict[uuid.UUID, dict[str, float]] = field(default_factory=dict)
    reached: dict[str, set[str]] = field(default_factory=dict)
    """WABA → the batch's recipients it reached in the last 24 hours."""
    reached_count: dict[str, int] = field(default_factory=dict)
    oldest_reach: dict[str, float] = field(default_factory=dict)
    pair_writes: dict[tuple[uuid.UUID, str], float] = field(default_factory=dict)
    reach_writes: dict[str, dict[str, None]] = field(default_factory=dict)

    def state_of(self, group: SenderGroup) -> SenderState:
        waba_id = group.waba_id or ""
        return SenderState(
            buckets=self.buckets[group.sender_id],
            pair_next=self.pairs.setdefault(group.sender_id, {}),
            reached=self.reached.get(waba_id, set()),
            reached_count=self.reached_count.get(waba_id, 0),
            oldest_reach=self.oldest_reach.get(waba_id),
        )

    def apply(self, group: SenderGroup, plan: Plan, now_s: float) -> None:
        """What `plan` consumed, for the groups decided after it and for the writes."""
        self.buckets[group.sender_id] = plan.buckets
        self.pairs[group.sender_id].update(plan.pair_next)
        for phone, at in plan.pair_next.items():
            self.pair_writes[(group.sender_id, phone)] = at
        if not plan.reached or not group.waba_id:
            return
        waba_id = group.waba_id
        reached = self.reached.setdefault(waba_id, set())
        fresh = [phone for phone in plan.reached if phone not in reached]
        reached.update(fresh)
        self.reached_count[waba_id] = self.reached_count.get(waba_id, 0) + len(fresh)
        self.oldest_reach[waba_id] = min(self.oldest_reach.get(waba_id, now_s), now_s)
        self.reach_writes.setdefault(waba_id, {}).update(dict.fromkeys(plan.reached))


async def read_batch(
    conn: AsyncConnection, groups: list[SenderGroup], now: datetime, *, pairs: bool
) -> BatchState:
    """Lock the batch's senders (and the WABAs whose messaging limit is asked) and read their
    state: the pair slots only with `pairs` (pair pacing on)."""
    state = BatchState()
    senders = sorted({group.sender_id for group in groups})
    state.buckets = await _lock_throughput(conn, senders)
    missing = [sender_id for sender_id in senders if sender_id not in state.buckets]
    if missing:
        # A sender's first decision: its row, then the lock (another replica may create it too).
        await conn.execute(
            dialect.insert(conn, sender_throughput).on_conflict_do_nothing(),
            [{"sender_id": sender_id, "buckets": {}, "updated_at": now} for sender_id in missing],
        )
        state.buckets.update(await _lock_throughput(conn, missing))
    if pairs:
        asked = sorted({(group.sender_id, row.to) for group in groups for row in group.rows})
        if dialect.is_postgres(conn):
            found = await conn.execute(
                _PG_PAIRS,
                {"senders": [a[0] for a in asked], "phones": [a[1] for a in asked]},
            )
        else:
            found = await conn.execute(
                sa.select(p.sender_id, p.phone, p.next_at).where(
                    sa.tuple_(p.sender_id, p.phone).in_(asked)
                )
            )
        for sender_id, phone, next_at in found:
            state.pairs.setdefault(sender_id, {})[phone] = next_at.timestamp()
    reaching: dict[str, set[str]] = {}
    for group in groups:
        if group.cap is not None and group.waba_id:
            phones = {row.to for row in group.rows if row.reaches}
            if phones:
                reaching.setdefault(group.waba_id, set()).update(phones)
    if reaching:
        await _read_reach(conn, state, reaching, now)
    return state


async def _lock_throughput(
    conn: AsyncConnection, senders: list[uuid.UUID]
) -> dict[uuid.UUID, dict[int, int]]:
    rows = await conn.execute(
        sa.select(t.sender_id, t.buckets)
        .where(dialect.any_of(conn, t.sender_id, senders))
        .order_by(t.sender_id)
        .with_for_update()
    )
    return {
        sender_id: {int(k): int(v) for k, v in (buckets or {}).items()}
        for sender_id, buckets in rows
    }


async def _read_reach(
    conn: AsyncConnection, state: BatchState, reaching: dict[str, set[str]], now: datetime
) -> None:
    wabas = sorted(reaching)
    await conn.execute(
        sa.select(waba.c.waba_id)
        .where(waba.c.waba_id.in_(wabas))
        .order_by(waba.c.waba_id)
        .with_for_update()
    )
    since = now - timedelta(seconds=DAY_S)
    in_day = sa.and_(r.waba_id.in_(wabas), r.reached_at > since)
    counted = await conn.execute(
        sa.select(r.waba_id, sa.func.count(), sa.func.min(r.reached_at))
        .where(in_day)
        .group_by(r.waba_id)
    )
    for waba_id, count, oldest in counted:
        state.reached_count[waba_id] = int(count)
        state.oldest_reach[waba_id] = oldest.timestamp()
    pairs = sorted((waba_id, phone) for waba_id, phones in reaching.items() for phone in phones)
    found = await conn.execute(
        sa.select(r.waba_id, r.phone).where(in_day, sa.tuple_(r.waba_id, r.phone).in_(pairs))
    )
    for waba_id, phone in found:
        state.reached.setdefault(waba_id, set()).add(phone)


async def write_batch(conn: AsyncConnection, state: BatchState, now: datetime) -> None:
    """Store what the batch's decisions consumed (every sender's throughput row even when
    nothing was granted: its old buckets are dropped)."""
    # The rows exist (locked above): an upsert is how one statement updates them all.
    if dialect.is_postgres(conn):
        await conn.execute(
            _PG_WRITE_THROUGHPUT,
            {
                "now": now,
                "senders": list(state.buckets),
                "buckets": [_buckets_json(made) for made in state.buckets.values()],
            },
        )
        if state.pair_writes:
            await conn.execute(
                _PG_WRITE_PAIRS,
                {
                    "senders": [sender_id for sender_id, _ in state.pair_writes],
                    "phones": [phone for _, phone in state.pair_writes],
                    "next_at": [
                        datetime.fromtimestamp(at, UTC) for at in state.pair_writes.values()
                    ],
                },
            )
    else:
        await _write_batch_rows(conn, state, now)
    if state.reach_writes:
        await record_reaches(conn, state.reach_writes, now)


async def _write_batch_rows(conn: AsyncConnection, state: BatchState, now: datetime) -> None:
    """`write_batch`'s upserts elsewhere than on PostgreSQL: a row each."""
    stmt = dialect.insert(conn, sender_throughput)
    await conn.execute(
        stmt.on_conflict_do_update(
            index_elements=[t.sender_id],
            set_={"buckets": stmt.excluded.buckets, "updated_at": stmt.excluded.updated_at},
        ),
        [
            {
                "sender_id": sender,
                "buckets": {str(k): v for k, v in made.items()},
                "updated_at": now,
            }
            for sender, made in state.buckets.items()
        ],
    )
    if state.pair_writes:
        stmt = dialect.insert(conn, pair_slot)
        await conn.execute(
            stmt.on_conflict_do_update(
                index_elements=[p.sender_id, p.phone], set_={"next_at": stmt.excluded.next_at}
            ),
            [
                {"sender_id": sender_id, "phone": phone, "next_at": datetime.fromtimestamp(at, UTC)}
                for (sender_id, phone), at in state.pair_writes.items()
            ],
        )


def _buckets_json(made: Mapping[int, int]) -> str:
    return orjson.dumps({str(k): v for k, v in made.items()}).decode()


async def record_reached(
    conn: AsyncConnection, waba_id: str, phones: Iterable[str], now: datetime
) -> None:
    """These recipients were reached now (again: their 24 hours start over)."""
    await record_reaches(conn, {waba_id: phones}, now)


async def record_reaches(
    conn: AsyncConnection, reached: Mapping[str, Iterable[str]], now: datetime
) -> None:
    """`record_reached` for several WABAs in one statement."""
    values = [
        {"waba_id": waba_id, "phone": phone, "reached_at": now}
        for waba_id, phones in reached.items()
        for phone in phones
    ]
    if not values:
        return
    stmt = dialect.insert(conn, waba_reach)
    await conn.execute(
        stmt.on_conflict_do_update(
            index_elements=[r.waba_id, r.phone], set_={"reached_at": stmt.excluded.reached_at}
        ),
        values,
    )


async def reached_since(
    conn: AsyncConnection, waba_id: str, now: datetime
) -> list[tuple[str, float]]:
    """(recipient, when reached) of the WABA's last 24 hours: what Redis's cache is seeded from."""
    since = now - timedelta(seconds=DAY_S)
    rows = await conn.execute(
        sa.select(r.phone, r.reached_at).where(r.waba_id == waba_id, r.reached_at > since)
    )
    return [(phone, at.timestamp()) for phone, at in rows]


async def prune(conn: AsyncConnection, now: datetime) -> None:
    """Drop pair slots long past and reaches older than 24 hours."""
    await conn.execute(pair_slot.delete().where(p.next_at < now - timedelta(minutes=10)))
    await conn.execute(waba_reach.delete().where(r.reached_at < now - timedelta(seconds=DAY_S)))


def _seconds(at: datetime | None) -> float | None:
    return at.timestamp() if at is not None else None
