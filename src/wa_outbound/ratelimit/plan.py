"""The decision for one sender group, as a pure function of the limiter's state: the database
limiter runs it in its transaction, and admit.lua does the same steps in Redis.

Messages are taken oldest first. Pass one applies, per message, pair pacing and the messaging
limit; then each org's quota (and per-second cap) is asked, once per org, about those that
passed, and the sender's throughput takes the oldest of what the quotas allow. Only what every
limit granted consumes anything: quota, throughput, a pair slot, a reached recipient."""

from __future__ import annotations

import uuid
from collections.abc import Awaitable, Callable
from dataclasses import dataclass, field

from wa_outbound.ratelimit import throughput
from wa_outbound.ratelimit.senders import (
    DAY_S,
    GRANTED,
    TIER_RETRY_MAX_S,
    Candidate,
    SenderGroup,
    Verdict,
)

# A retry shorter than this is rounded up, so a held message is not looked at again at once.
MIN_RETRY_S = 0.01

QuotaAsk = Callable[[str, int], Awaitable[tuple[int, float]]]
"""(org, n) → how many of n its quota and cap would grant, and else when the next could be;
nothing consumed."""
QuotaTake = Callable[[str, int], Awaitable[None]]
"""(org, k): consume k of what `QuotaAsk` said it would grant."""


@dataclass
class SenderState:
    """What the limits know of one sender and its WABA before the decision."""

    buckets: dict[int, int] = field(default_factory=dict)
    pair_next: dict[str, float] = field(default_factory=dict)
    """Recipient → when the sender may next send to it (Unix seconds)."""
    reached: set[str] = field(default_factory=set)
    """The group's recipients the WABA reached in the last 24 hours."""
    reached_count: int = 0
    oldest_reach: float | None = None


@dataclass
class Plan:
    verdicts: dict[uuid.UUID, Verdict]
    granted: list[Candidate]
    buckets: dict[int, int]
    pair_next: dict[str, float]
    """Only the recipients whose slot moved."""
    reached: list[str]
    """Recipients newly reached or reached again (their time moves to now)."""


async def decide(
    group: SenderGroup,
    state: SenderState,
    *,
    now_s: float,
    pair_interval_s: float,
    quota_room: QuotaAsk,
    consume_quota: QuotaTake,
) -> Plan:
    rows = group.ordered()
    free_at: dict[str, float] = {}
    reached_count = state.reached_count
    fresh: set[str] = set()
    verdicts: dict[uuid.UUID, Verdict] = {}
    passing: list[Candidate] = []
    for row in rows:
        slot = free_at.get(row.to, state.pair_next.get(row.to, 0.0))
        if pair_interval_s > 0:
            # Whatever happens to this message, the next one to this recipient comes after it.
            free_at[row.to] = max(slot, now_s) + pair_interval_s
            if slot > now_s + throughput.EPSILON:
                verdicts[row.id] = Verdict("pair_interval", slot - now_s)
                continue
        new_reach = (
            row.reaches
            and group.cap is not None
            and row.to not in state.reached
            and row.to not in fresh
        )
        if new_reach:
            if reached_count >= (group.cap or 0):
                verdicts[row.id] = Verdict("messaging_limit", _tier_retry(state, now_s))
                continue
            reached_count += 1
            fresh.add(row.to)
        passing.append(row)

    # Each org's quota, then the sender's throughput over what the quotas allow, in age order.
    allowed: set[uuid.UUID] = set()
    for org_id in dict.fromkeys(row.org_id for row in passing):
        mine = [row for row in passing if row.org_id == org_id]
        count, retry_s = await quota_room(org_id, len(mine))
        allowed.update(row.id for row in mine[:count])
        for row in mine[count:]:
            verdicts[row.id] = Verdict("quota", max(retry_s, MIN_RETRY_S))
    buckets = throughput.current(state.buckets, now_s)
    room = throughput.capacity(group.messages_per_second) - sum(buckets.values())
    granted: list[Candidate] = []
    throttled: list[Candidate] = []
    for row in passing:
        if row.id in allowed:
            (granted if len(granted) < room else throttled).append(row)
    for org_id in dict.fromkeys(row.org_id for row in granted):
        await consume_quota(org_id, sum(1 for row in granted if row.org_id == org_id))

    for row in granted:
        verdicts[row.id] = GRANTED
    if granted:
        index = throughput.bucket_of(now_s)
        buckets[index] = buckets.get(index, 0) + len(granted)
    tput_retry = max(throughput.retry_after_s(buckets, now_s), MIN_RETRY_S)
    for row in throttled:
        verdicts[row.id] = Verdict("throughput", tput_retry)
    pair_next = {row.to: now_s + pair_interval_s for row in granted} if pair_interval_s else {}
    reached = [row.to for row in granted if row.reaches and group.cap is not None]
    return Plan(verdicts, granted, buckets, pair_next, list(dict.fromkeys(reached)))


def _tier_retry(state: SenderState, now_s: float) -> float:
    if state.oldest_reach is None:
        return TIER_RETRY_MAX_S
    return min(max(state.oldest_reach + DAY_S - now_s, 1.0), TIER_RETRY_MAX_S)
