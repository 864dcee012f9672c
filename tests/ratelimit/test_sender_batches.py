"""A batch's sender groups decided together (`admit_many`), by each backend alike: one call per
org on Redis, a few statements for the batch on PostgreSQL and SQLite. The groups are decided
one after another in the order given, as separate calls would decide them."""

from __future__ import annotations

import asyncio
import uuid
from collections.abc import AsyncIterator, Mapping
from dataclasses import dataclass

import pytest
from redis.asyncio import Redis
from sqlalchemy.ext.asyncio import AsyncEngine

from helpers import make_settings
from ratelimit_helpers import new_org
from wa_outbound.db.engine import create_engine
from wa_outbound.db.schema import rate_limit
from wa_outbound.db.types import utcnow
from wa_outbound.metrics import Metrics
from wa_outbound.ratelimit import RateLimiter, create_rate_limiter
from wa_outbound.ratelimit.senders import Candidate, SenderGroup, Verdict

PAIR_S = 0.3


@dataclass
class Backend:
    limiter: RateLimiter
    engine: AsyncEngine
    orgs: list[str]

    async def org(self, *, quota: int = 1_000_000, capped: bool = True) -> str:
        """A fresh org; `capped=False` leaves it without a per-second cap of its own."""
        org_id = await new_org(self.engine, quota=quota)
        if not capped:
            async with self.engine.begin() as conn:
                await conn.execute(
                    rate_limit.update()
                    .where(rate_limit.c.org_id == org_id)
                    .values(messages_per_second=None)
                )
        self.orgs.append(org_id)
        return org_id


@pytest.fixture(params=["redis", "postgres", "sqlite"])
def urls(request: pytest.FixtureRequest) -> tuple[str, str]:
    """(database URL, Redis URL or "") of each backend."""
    name = request.param
    url: str = request.getfixturevalue("sqlite_url" if name == "sqlite" else "postgres_url")
    return url, request.getfixturevalue("redis_url") if name == "redis" else ""


@pytest.fixture
async def backend(urls: tuple[str, str]) -> AsyncIterator[Backend]:
    url, redis_url = urls
    settings = make_settings(url, redis_url=redis_url, pair_interval_seconds=PAIR_S)
    engine = create_engine(settings)
    made = Backend(create_rate_limiter(settings, engine, Metrics()), engine, [])
    try:
        yield made
    finally:
        await made.limiter.close()
        await engine.dispose()
        if redis_url:
            client = Redis.from_url(redis_url)
            for org in made.orgs:
                mine = [k async for k in client.scan_iter(f"whatsapp:ratelimit:*{{{org}}}*")]
                if mine:
                    await client.delete(*mine)
            await client.aclose()


_order = iter(range(10**9))


def group(
    org: str,
    phones: list[str],
    *,
    mps: float = 1000,
    cap: int | None = None,
    reaches: bool = False,
    waba_id: str | None = None,
    sender_id: uuid.UUID | None = None,
) -> SenderGroup:
    now = utcnow()
    rows = [
        Candidate(uuid.UUID(int=next(_order) + 1), org, phone, now, reaches) for phone in phones
    ]
    waba = waba_id or f"waba-{uuid.uuid4().hex[:8]}"
    return SenderGroup(sender_id or uuid.uuid4(), org, mps, waba, cap, rows)


def reasons(group: SenderGroup, verdicts: Mapping[uuid.UUID, Verdict]) -> list[str | None]:
    return [verdicts[row.id].reason for row in group.rows]


def phones(n: int, start: int = 0) -> list[str]:
    return [f"+3362{i:07d}" for i in range(start, start + n)]


async def test_an_org_s_quota_goes_to_its_senders_in_the_order_asked(backend: Backend) -> None:
    org, other = await backend.org(quota=5), await backend.org(quota=5)
    asked = [group(org, phones(3)), group(other, phones(4)), group(org, phones(3, 3))]
    asked.append(group(org, phones(2, 6)))
    answers = await backend.limiter.admit_many(asked)
    assert [reasons(g, v) for g, v in zip(asked, answers, strict=True)] == [
        [None] * 3,
        [None] * 4,
        [None, None, "quota"],
        ["quota", "quota"],
    ]
    assert (await backend.limiter.quota(org))["used"] == 5
    assert (await backend.limiter.quota(other))["used"] == 4


async def test_senders_past_the_quota_allotted_so_far_are_decided_from_where_it_ran_out(
    backend: Backend,
) -> None:
    # Without a per-second cap, Redis is allotted 100 at a time: the second sender needs more.
    org = await backend.org(quota=1_000, capped=False)
    asked = [group(org, phones(60)), group(org, phones(60, 60)), group(org, phones(30, 120))]
    answers = await backend.limiter.admit_many(asked)
    assert all(v.granted for verdicts in answers for v in verdicts.values())
    assert (await backend.limiter.quota(org))["used"] == 150


async def test_each_sender_of_an_org_has_its_own_pair_slots_and_throughput(
    backend: Backend,
) -> None:
    org = await backend.org()
    same = phones(1) * 3  # one recipient, three times
    slow, fast = group(org, same, mps=2), group(org, same + phones(4, 1), mps=1000)
    slow_answer, fast_answer = await backend.limiter.admit_many([slow, fast])
    assert reasons(slow, slow_answer) == [None, "pair_interval", "pair_interval"]
    assert reasons(fast, fast_answer) == [None, "pair_interval", "pair_interval", *[None] * 4]
    again = group(org, phones(3, 10), mps=2, sender_id=slow.sender_id)
    (verdicts,) = await backend.limiter.admit_many([again])
    assert reasons(again, verdicts) == [None, "throughput", "throughput"]


async def test_senders_of_one_waba_share_its_messaging_limit_within_a_batch(
    backend: Backend,
) -> None:
    org = await backend.org()
    waba = f"waba-{uuid.uuid4().hex[:8]}"
    first = group(org, phones(2), cap=3, reaches=True, waba_id=waba)
    second = group(org, phones(2, 2), cap=3, reaches=True, waba_id=waba)
    repeat = group(org, phones(1), cap=3, reaches=True, waba_id=waba)  # reached already
    answers = await backend.limiter.admit_many([first, second, repeat])
    assert [reasons(g, v) for g, v in zip([first, second, repeat], answers, strict=True)] == [
        [None, None],
        [None, "messaging_limit"],
        [None],
    ]
    assert (await backend.limiter.quota(org))["used"] == 4


async def test_batches_asking_the_same_senders_and_orgs_in_opposite_orders_never_deadlock(
    backend: Backend,
) -> None:
    first, second = await backend.org(), await backend.org()
    senders = [uuid.uuid4(), uuid.uuid4()]
    owners = [(first, senders[0]), (second, senders[1])]  # a sender belongs to one org

    def batch(start: int, order: list[tuple[str, uuid.UUID]]) -> list[SenderGroup]:
        return [
            group(org, phones(3, start + 3 * i), mps=20, sender_id=sender)
            for i, (org, sender) in enumerate(order)
        ]

    asked = [batch(100 * i, owners) for i in range(5)]
    asked += [batch(1000 + 100 * i, owners[::-1]) for i in range(5)]
    answers = await asyncio.gather(*(backend.limiter.admit_many(b) for b in asked))
    granted = dict.fromkeys(senders, 0)
    for groups, verdicts in zip(asked, answers, strict=True):
        for g, v in zip(groups, verdicts, strict=True):
            granted[g.sender_id] += sum(1 for row in g.rows if v[row.id].granted)
    assert granted == dict.fromkeys(senders, 20), "each sender's throughput, no more"
