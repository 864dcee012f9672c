"""The Redis limiter on a Redis Cluster and behind Sentinel, engines of the session's own
(tests/redis_engines.py): every key of a decision in one hash slot, scripts loaded on each master
that needs them, and a master killed mid-run (its replica promoted): the database decides
meanwhile, Redis again after, and the quota is never over-granted."""

from __future__ import annotations

import asyncio
import time
import uuid
from collections.abc import AsyncIterator
from dataclasses import dataclass, field
from datetime import timedelta

import pytest
from redis.crc import key_slot
from sqlalchemy.ext.asyncio import AsyncEngine

from helpers import make_settings
from ratelimit_helpers import db_used, new_org
from redis_engines import (
    SENTINEL_NAME,
    SENTINEL_PORTS,
    Cluster,
    Engines,
    SentinelGroup,
    client,
    cut_replication,
    fail_over,
)
from wa_outbound.config import Settings
from wa_outbound.db.types import utcnow
from wa_outbound.metrics import Metrics
from wa_outbound.ratelimit import DatabaseLimiter, RedisLimiter, RedisTarget
from wa_outbound.ratelimit.allotment import Allotter
from wa_outbound.ratelimit.connections import pack
from wa_outbound.ratelimit.database import default_limits
from wa_outbound.ratelimit.routing import SLOTS, ClusterRouter, node_url
from wa_outbound.ratelimit.scripts import (
    admit_head,
    admit_reach,
    keys,
    pair_epoch,
    sender_tag,
)
from wa_outbound.ratelimit.senders import Candidate, SenderGroup
from wa_outbound.ratelimit.topology import url_options


def cluster_target(cluster: Cluster, wait_replicas: int = 1) -> RedisTarget:
    return RedisTarget(cluster.url, "cluster", wait_replicas=wait_replicas)


def sentinel_target() -> RedisTarget:
    sentinels = tuple(("127.0.0.1", port) for port in SENTINEL_PORTS)
    return RedisTarget("redis://", "sentinel", sentinels, SENTINEL_NAME, wait_replicas=1)


def build(pg_engine: AsyncEngine, postgres_url: str, target: RedisTarget) -> RedisLimiter:
    settings = make_settings(postgres_url, pair_interval_seconds=60)
    metrics = Metrics()
    return RedisLimiter(
        target,
        DatabaseLimiter(pg_engine, settings, metrics),
        Allotter(pg_engine, default_limits(settings)),
        metrics,
        backoff_s=(0.05, 0.2),
    )


@pytest.fixture
async def on_cluster(
    pg_engine: AsyncEngine, postgres_url: str, redis_cluster: Cluster
) -> AsyncIterator[RedisLimiter]:
    limiter = build(pg_engine, postgres_url, cluster_target(redis_cluster))
    yield limiter
    await limiter.close()


def bulk_strings(packed: bytes) -> list[bytes]:
    """The bulk strings of a packed command (without its array header)."""
    out, at = [], 0
    while at < len(packed):
        assert packed[at : at + 1] == b"$"
        end = packed.index(b"\r\n", at)
        size = int(packed[at + 1 : end])
        out.append(packed[end + 2 : end + 2 + size])
        at = end + 4 + size
    return out


def decision_keys(quota_tag: str, tag: str, wabas: list[str | None]) -> list[bytes]:
    """The keys of one admit.lua call, read from the command as the limiter encodes it."""
    head = admit_head("0" * 40, quota_tag, tag, pair_epoch(6.0, time.time()), len(wabas))
    head += b"".join(admit_reach(tag, waba) for waba in wabas)
    _, _, numkeys, *rest = bulk_strings(head)
    assert len(rest) == int(numkeys)
    return rest


@pytest.mark.parametrize("org_id", ["org_3f2a9c", "acme", "a{b", "a}b", "x:y", "ünï"])
def test_every_key_of_one_decision_is_in_one_hash_slot(org_id: str) -> None:
    sender = uuid.uuid4().hex
    org_call = decision_keys(org_id, sender_tag(org_id, sender), ["waba-1", None, "waba-2"])
    assert len(org_call) == 6 + 2 * 3
    assert len({key_slot(key) for key in org_call}) == 1
    assert {key_slot(key) for key in org_call} == {key_slot(keys(org_id)[0].encode())}
    # The shared sender's call: its own tag for its limits and its (unused) quota keys; its
    # orgs' quotas are asked apart, one acquire.lua call each, with the org's three keys.
    shared = sender_tag(None, sender)
    assert len({key_slot(key) for key in decision_keys(shared, shared, ["waba-s"])}) == 1
    assert len({key_slot(key.encode()) for key in keys(org_id)}) == 1


def test_a_sentinel_target_keeps_the_url_s_credentials_for_the_master() -> None:
    settings = Settings(
        _env_file=None,
        redis_mode="sentinel",
        redis_sentinels="10.0.0.1:26379,[::1]:26380",
        redis_sentinel_master="main",
        redis_url="rediss://:secret@ignored:1/3",
    )
    target = RedisTarget.from_settings(settings)
    assert target.sentinels == (("10.0.0.1", 26379), ("::1", 26380))
    assert (target.mode, target.master, target.wait_replicas) == ("sentinel", "main", 1)
    assert node_url(target.url, "10.0.0.9", 6380) == "rediss://:secret@10.0.0.9:6380/3"
    assert url_options(target.url) == {"password": "secret", "db": 3, "ssl": True}


def group(
    org: str | None,
    phones: list[str],
    mps: float = 1000,
    *,
    waba: str | None = None,
    cap: int | None = None,
    row_org: str | None = None,
) -> SenderGroup:
    now = utcnow()
    rows = [
        Candidate(
            uuid.uuid4(),
            row_org or org or "",
            phone,
            now + timedelta(microseconds=i),
            cap is not None,
        )
        for i, phone in enumerate(phones)
    ]
    return SenderGroup(uuid.uuid4(), org, mps, waba_id=waba, cap=cap, rows=rows)


async def test_a_batch_over_orgs_on_every_master_is_decided_on_each_orgs_master(
    on_cluster: RedisLimiter, pg_engine: AsyncEngine, redis_cluster: Cluster
) -> None:
    orgs = [await new_org(pg_engine, quota=5) for _ in range(9)]
    masters = {org: redis_cluster.master_port(keys(org)[0]) for org in orgs}
    assert len(set(masters.values())) >= 2  # nine random tags: one master would be a fluke
    groups = [group(org, [f"+3360000{i:04d}" for i in range(7)]) for org in orgs]
    results = await on_cluster.admit_many(groups)
    assert on_cluster.backend == "redis"
    for asked, verdicts in zip(groups, results, strict=True):
        reasons = [verdicts[row.id].reason for row in asked.rows]
        assert reasons == [None] * 5 + ["quota"] * 2
    for org, port in masters.items():
        assert port is not None
        with client(port) as node:  # the org's counter lives on its slot's master
            assert node.hget(keys(org)[0], "used") == b"5"
        assert await db_used(pg_engine, org) == 5


async def test_on_a_cluster_the_quota_api_limit_changes_and_messaging_limits_hold(
    on_cluster: RedisLimiter, pg_engine: AsyncEngine
) -> None:
    org = await new_org(pg_engine, quota=100, mps=50)
    assert (await on_cluster.acquire(org, 10)).granted == 10
    assert (await on_cluster.quota(org))["used"] == 10  # Redis's unused allotment left out
    await on_cluster.configure(
        org, limit=12, window_seconds=None, messages_per_second=None, actor="admin"
    )
    decision = await on_cluster.acquire(org, 5)
    assert (decision.granted, decision.backend) == (2, "redis")
    # A WABA's messaging limit: its reached recipients loaded into the cache on the tag's
    # master (redis-py's cluster pipeline), then counted there.
    other = await new_org(pg_engine, quota=1000)
    waba = f"waba-{uuid.uuid4().hex[:8]}"
    capped = group(other, ["+33600000001", "+33600000002", "+33600000003"], waba=waba, cap=2)
    verdicts = await on_cluster.admit(capped)
    assert [verdicts[row.id].reason for row in capped.rows] == [None, None, "messaging_limit"]
    # The shared sender: its orgs asked apart, on their own masters.
    shared = group(None, ["+33611111111"], 2, row_org=other)
    shared.rows.extend(group(org, ["+33622222222"]).rows)  # its quota is used up
    verdicts = await on_cluster.admit(shared)
    assert sorted(str(v.reason) for v in verdicts.values()) == ["None", "quota"]
    assert on_cluster.backend == "redis"


async def test_a_stale_slot_map_is_read_again_when_a_master_answers_moved(
    redis_cluster: Cluster,
) -> None:
    router = ClusterRouter(cluster_target(redis_cluster, wait_replicas=0))
    key = f"whatsapp:ratelimit:test:{{{uuid.uuid4().hex}}}"
    owner = redis_cluster.master_port(key)
    try:
        await router.check()
        other = next(a for a in set(router._slots) if a is not None and a[1] != owner)
        router._slots = [other] * SLOTS  # as if slots had moved since the map was read
        assert await router.call(key, pack("SET", key, "1", "EX", 60)) == b"OK"
        router._slots = [other] * SLOTS
        assert await router.call_many([(key, pack("GET", key))]) == [b"1"]
        assert owner is not None
        with client(owner) as node:
            assert node.get(key) == b"1"
    finally:
        await router.close()


async def test_a_master_that_lost_the_scripts_gets_them_loaded_and_decides(
    on_cluster: RedisLimiter, pg_engine: AsyncEngine, redis_cluster: Cluster
) -> None:
    orgs = [await new_org(pg_engine, quota=100) for _ in range(6)]
    assert all([(await on_cluster.acquire(org, 1)).backend == "redis" for org in orgs])
    for port, server in redis_cluster.servers.items():
        if server.process is not None:
            with client(port) as node:
                node.script_flush()
    groups = [group(org, ["+33600000001", "+33600000002"]) for org in orgs]
    results = await on_cluster.admit_many(groups)
    assert on_cluster.backend == "redis"
    assert all(v.reason is None for verdicts in results for v in verdicts.values())
    decisions = [await on_cluster.acquire(org, 3) for org in orgs]
    assert {(d.granted, d.backend) for d in decisions} == {(3, "redis")}


async def test_behind_sentinel_the_master_it_names_decides(
    pg_engine: AsyncEngine, postgres_url: str, redis_sentinel: SentinelGroup
) -> None:
    limiter = build(pg_engine, postgres_url, sentinel_target())
    try:
        org = await new_org(pg_engine, quota=10)
        decision = await limiter.acquire(org, 4)
        assert (decision.granted, decision.backend) == (4, "redis")
        with client(redis_sentinel.master_of()[0]) as master:
            assert master.hget(keys(org)[0], "used") == b"4"
        assert await limiter.probe() is True
        assert (await limiter.quota(org))["used"] == 4
    finally:
        await limiter.close()


@dataclass
class Run:
    """What a limiter decided through a failover, in order."""

    quota: int
    granted: dict[str, int] = field(default_factory=lambda: {"redis": 0, "database": 0})
    timeline: list[tuple[float, str]] = field(default_factory=list)

    @property
    def total(self) -> int:
        return sum(self.granted.values())

    def on_database_s(self) -> float:
        """From the first decision on the database to the first on Redis after it."""
        first = next(t for t, b in self.timeline if b == "database")
        back = next(t for t, b in self.timeline if b == "redis" and t > first)
        return back - first


async def decide(limiter: RedisLimiter, org: str, n: int, run: Run) -> int:
    decision = await limiter.acquire(org, n)
    run.granted[decision.backend] += decision.granted
    run.timeline.append((time.monotonic(), decision.backend))
    return decision.granted


async def run_through_a_failover(limiter: RedisLimiter, org: str, engines: Engines) -> Run:
    """Grants on Redis; then the org's master writes on with no replica receiving (its grants
    must not be acted on), is killed and its replica promoted, while decisions go on; then
    the quota is used up. Every grant acted on is counted in `run`."""
    run = Run(quota=1000)
    for _ in range(5):
        await decide(limiter, org, 10, run)
    assert run.granted == {"redis": 50, "database": 0}
    master, replica = cut_replication(engines, keys(org)[0])
    for _ in range(3):
        await decide(limiter, org, 10, run)
    failover = asyncio.create_task(
        asyncio.to_thread(fail_over, engines, keys(org)[0], master, replica)
    )
    while not failover.done() or run.timeline[-1][1] != "redis":
        await decide(limiter, org, 20, run)
        await asyncio.sleep(0.02)
        assert len(run.timeline) < 5000, "decisions never came back to Redis"
    await failover
    # Use up the quota, on Redis (at the org's 200 per second).
    while True:
        decision = await limiter.acquire(org, 50)
        run.granted[decision.backend] += decision.granted
        if decision.granted == 0 and decision.retry_after_s > 3600:
            break
        await asyncio.sleep(min(decision.retry_after_s, 0.05))
    return run


async def test_a_cluster_master_killed_mid_run_never_over_grants(
    on_cluster: RedisLimiter, pg_engine: AsyncEngine, redis_cluster: Cluster
) -> None:
    org = await new_org(pg_engine, quota=1000, mps=200)
    run = await run_through_a_failover(on_cluster, org, redis_cluster)
    print(f"cluster failover: {run.granted}, {run.on_database_s():.2f} s on the database")
    assert run.total <= run.quota  # no over-grant
    assert run.total >= run.quota - 2 * 200  # at most the blocks Redis held are lost
    assert run.granted["database"] > 0
    assert on_cluster.backend == "redis"
    assert await db_used(pg_engine, org) == run.quota


@pytest.mark.slow  # about 13 s: the sentinels take the old master back on their 10 s round
async def test_behind_sentinel_a_master_killed_mid_run_never_over_grants(
    pg_engine: AsyncEngine, postgres_url: str, redis_sentinel: SentinelGroup
) -> None:
    limiter = build(pg_engine, postgres_url, sentinel_target())
    try:
        org = await new_org(pg_engine, quota=1000, mps=200)
        run = await run_through_a_failover(limiter, org, redis_sentinel)
        print(f"sentinel failover: {run.granted}, {run.on_database_s():.2f} s on the database")
        assert run.total <= run.quota
        assert run.total >= run.quota - 2 * 200
        assert run.granted["database"] > 0
        assert limiter.backend == "redis"
    finally:
        await limiter.close()


async def test_without_replicas_confirming_grants_a_promoted_replica_grants_again(
    pg_engine: AsyncEngine, postgres_url: str, redis_cluster: Cluster
) -> None:
    """Why grants wait for a replica: with `wait_replicas` 0, what the killed master granted
    after its replica's last copy is granted a second time by the promoted replica."""
    limiter = build(pg_engine, postgres_url, cluster_target(redis_cluster, wait_replicas=0))
    try:
        org = await new_org(pg_engine, quota=1000, mps=200)
        run = await run_through_a_failover(limiter, org, redis_cluster)
        print(f"cluster failover, no WAIT: {run.granted}, {run.on_database_s():.2f} s")
        assert run.total > run.quota
    finally:
        await limiter.close()
