"""Every limit of a sender group, decided by each backend alike: Redis (admit.lua) on the
machine's Redis and PostgreSQL, and on a Redis Cluster of the session's own (grants confirmed by
a replica, the cluster mode's default), and the database limiter on PostgreSQL and SQLite."""

from __future__ import annotations

import asyncio
import uuid
from collections.abc import AsyncIterator, Mapping
from dataclasses import dataclass
from datetime import datetime, timedelta
from typing import Any

import pytest
from redis.asyncio import Redis
from sqlalchemy.ext.asyncio import AsyncEngine

from helpers import make_settings
from ratelimit_helpers import new_org
from wa_outbound.db.engine import create_engine
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

    async def org(self, **limits: float) -> str:
        limits.setdefault("quota", 1_000_000)
        org_id = await new_org(self.engine, **limits)  # type: ignore[arg-type]
        self.orgs.append(org_id)
        return org_id


@pytest.fixture(params=["redis", "cluster", "postgres", "sqlite"])
def urls(request: pytest.FixtureRequest) -> tuple[str, dict[str, Any]]:
    """(database URL, Redis settings) of each backend."""
    name = request.param
    url: str = request.getfixturevalue("sqlite_url" if name == "sqlite" else "postgres_url")
    redis: dict[str, Any] = {}
    if name == "redis":
        redis = {"redis_url": request.getfixturevalue("redis_url")}
    elif name == "cluster":
        redis = {"redis_url": request.getfixturevalue("redis_cluster").url, "redis_mode": "cluster"}
    return url, redis


@pytest.fixture
async def backend(urls: tuple[str, dict[str, Any]]) -> AsyncIterator[Backend]:
    url, redis = urls
    settings = make_settings(url, pair_interval_seconds=PAIR_S, **redis)
    engine = create_engine(settings)
    limiter = create_rate_limiter(settings, engine, Metrics())
    made = Backend(limiter, engine, [])
    try:
        yield made
    finally:
        await limiter.close()
        await engine.dispose()
        if settings.redis_mode == "standalone" and settings.redis_url:
            await forget_all(settings.redis_url, made.orgs)  # the shared Redis


async def forget_all(redis_url: str, orgs: list[str]) -> None:
    """Delete every key tagged with these orgs from the shared Redis (never FLUSHDB)."""
    client = Redis.from_url(redis_url)
    try:
        for org in orgs:
            mine = [k async for k in client.scan_iter(f"whatsapp:ratelimit:*{{{org}}}*")]
            if mine:
                await client.delete(*mine)
    finally:
        await client.aclose()


def group(
    org: str,
    phones: list[str],
    *,
    mps: float = 1000,
    cap: int | None = None,
    reaches: bool = False,
    sender_id: uuid.UUID | None = None,
) -> SenderGroup:
    rows = [Candidate(uuid.uuid4(), org, phone, at(i), reaches) for i, phone in enumerate(phones)]
    return SenderGroup(
        sender_id=sender_id or uuid.uuid4(),
        org_id=org,
        messages_per_second=mps,
        waba_id=f"waba-{uuid.uuid4().hex[:8]}",
        cap=cap,
        rows=rows,
    )


def at(i: int) -> datetime:
    """Creation times in list order: limits are consumed oldest first."""
    return utcnow() + timedelta(microseconds=i)


def reasons(group: SenderGroup, verdicts: Mapping[uuid.UUID, Verdict]) -> list[str | None]:
    return [verdicts[row.id].reason for row in group.rows]


def phones(n: int, start: int = 0) -> list[str]:
    return [f"+3361{i:07d}" for i in range(start, start + n)]


async def test_a_sender_grants_its_throughput_in_a_window_then_holds_about_a_second(
    backend: Backend,
) -> None:
    org = await backend.org()
    first = group(org, phones(15), mps=10)
    verdicts = await backend.limiter.admit(first)
    assert reasons(first, verdicts) == [None] * 10 + ["throughput"] * 5
    retry = verdicts[first.rows[-1].id].retry_after_s
    assert 1.0 <= retry <= 1.25, "the window is 1.1-1.2 s: the margin for jitter"
    again = group(org, phones(3, 100), mps=10, sender_id=first.sender_id)
    assert reasons(again, await backend.limiter.admit(again)) == ["throughput"] * 3
    other = group(org, phones(50, 200), mps=1000)
    assert reasons(other, await backend.limiter.admit(other)) == [None] * 50, "its own limit"


async def test_throughput_never_passes_the_cap_over_any_window_of_1_1_s(
    backend: Backend,
) -> None:
    org = await backend.org()
    sender_id = uuid.uuid4()
    grants: list[float] = []
    loop = asyncio.get_running_loop()
    started = loop.time()
    while loop.time() - started < 2.5:
        asked = group(org, phones(4, len(grants)), mps=10, sender_id=sender_id)
        verdicts = await backend.limiter.admit(asked)
        grants += [loop.time()] * sum(v.granted for v in verdicts.values())
        await asyncio.sleep(0.05)
    for at in grants:
        assert sum(1 for t in grants if at <= t < at + 1.05) <= 10
    assert len(grants) >= 20, "it still sends about its cap"


async def test_one_recipient_is_paced_oldest_first_and_others_are_not(backend: Backend) -> None:
    org = await backend.org()
    asked = group(org, ["+33610000001"] * 3 + phones(3, 50))
    loop = asyncio.get_running_loop()
    granted_at = loop.time()
    verdicts = await backend.limiter.admit(asked)
    assert reasons(asked, verdicts) == [None, "pair_interval", "pair_interval", None, None, None]
    second, third = (verdicts[row.id].retry_after_s for row in asked.rows[1:3])
    # The interval plus a 0.1 s margin for the send's jitter.
    assert second == pytest.approx(PAIR_S + 0.1, abs=0.01)
    assert third == pytest.approx(2 * (PAIR_S + 0.1), abs=0.01)
    soon = group(org, ["+33610000001"], sender_id=asked.sender_id)
    soon_reasons = reasons(soon, await backend.limiter.admit(soon))
    # Still inside the first message's slot, unless the database stalled past it (a clean-clone
    # CI run once took longer than the 0.3 s between the two decisions).
    if loop.time() - granted_at < PAIR_S:
        assert soon_reasons == ["pair_interval"]
    await asyncio.sleep(PAIR_S + 0.12)
    later = group(org, ["+33610000001"], sender_id=asked.sender_id)
    assert reasons(later, await backend.limiter.admit(later)) == [None]


async def test_the_messaging_limit_counts_distinct_recipients_outside_their_window(
    backend: Backend,
) -> None:
    org = await backend.org()
    asked = group(org, phones(3), cap=2, reaches=True)
    verdicts = await backend.limiter.admit(asked)
    assert reasons(asked, verdicts) == [None, None, "messaging_limit"]
    assert 1.0 <= verdicts[asked.rows[2].id].retry_after_s <= 300
    sender, waba = asked.sender_id, asked.waba_id
    # A recipient already reached costs nothing more; a message inside its window is not counted.
    await asyncio.sleep(PAIR_S + 0.12)
    rows = [
        Candidate(uuid.uuid4(), org, phones(1)[0], at(0), True),
        Candidate(uuid.uuid4(), org, "+33699999999", at(1), False),
        Candidate(uuid.uuid4(), org, "+33688888888", at(2), True),
    ]
    again = SenderGroup(sender, org, 1000, waba_id=waba, cap=2, rows=rows)
    assert reasons(again, await backend.limiter.admit(again)) == [None, None, "messaging_limit"]


async def test_quota_is_used_only_by_what_every_limit_granted(backend: Backend) -> None:
    org = await backend.org(quota=5)
    asked = group(org, ["+33610000001"] * 4 + phones(3, 10))
    verdicts = await backend.limiter.admit(asked)
    assert reasons(asked, verdicts) == [None] + ["pair_interval"] * 3 + [None, None, None]
    quota = await backend.limiter.quota(org)
    assert quota["used"] == 4
    more = group(org, phones(3, 20))
    assert reasons(more, await backend.limiter.admit(more)) == [None, "quota", "quota"]
    (quota_retry,) = (await backend.limiter.admit(group(org, phones(1, 30)))).values()
    assert quota_retry.reason == "quota"
    assert quota_retry.retry_after_s > 60, "until the window resets"


async def test_the_shared_sender_counts_all_orgs_together_and_each_org_s_quota(
    backend: Backend,
) -> None:
    first, second = await backend.org(quota=3), await backend.org()
    shared = uuid.uuid4()
    rows = [Candidate(uuid.uuid4(), first, p, at(i)) for i, p in enumerate(phones(6))]
    rows += [Candidate(uuid.uuid4(), second, p, at(6 + i)) for i, p in enumerate(phones(6, 10))]
    asked = SenderGroup(shared, None, 8, rows=rows)
    verdicts = await backend.limiter.admit(asked)
    assert reasons(asked, verdicts)[:6] == [None] * 3 + ["quota"] * 3
    assert reasons(asked, verdicts)[6:] == [None] * 5 + ["throughput"]
    assert (await backend.limiter.quota(first))["used"] == 3


async def test_the_throughput_counts_keep_an_expiry_and_count_every_grant(
    postgres_url: str, redis_url: str
) -> None:
    settings = make_settings(postgres_url, redis_url=redis_url, pair_interval_seconds=PAIR_S)
    engine = create_engine(settings)
    limiter = create_rate_limiter(settings, engine, Metrics())
    made = Backend(limiter, engine, [])
    client = Redis.from_url(redis_url)
    try:
        org = await made.org()
        sender_id = uuid.uuid4()
        key = f"whatsapp:ratelimit:throughput:{{{org}}}"
        for start in range(0, 40, 4):  # several grants in one 100 ms bucket, then the next ones
            asked = group(org, phones(4, start), sender_id=sender_id)
            assert reasons(asked, await limiter.admit(asked)) == [None] * 4
            assert 0 < await client.pttl(key) <= 2000
            await asyncio.sleep(0.02)
        # {bucket, grants, ...}, packed by admit.lua's msgpack
        unpack = "return cmsgpack.unpack(redis.call('HGET', KEYS[1], ARGV[1]))"
        counts = await client.eval(unpack, 1, key, sender_id.hex)
        assert sum(counts[1::2]) == 40
    finally:
        await client.aclose()
        await limiter.close()
        await engine.dispose()
        await forget_all(redis_url, made.orgs)
