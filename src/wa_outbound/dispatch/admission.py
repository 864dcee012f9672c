"""Asking the rate limiter about the rows a claim has locked: once per sender, never per message,
and before anything is written.

What the limiter does not grant is never claimed and uses no attempt. A short wait stays in
this replica's memory and costs no write: a sender whose throughput is spent is held until its
window moves (about a second), an org whose own per-second cap refused is held likewise, and
claims skip them meanwhile. A longer wait (pair pacing, the messaging limit, a quota used up)
is written to the row once, `next_attempt_at` and `waiting_reason`, so the message shows why it
waits and no round looks at it before then.
"""

from __future__ import annotations

import time
import uuid
from collections.abc import Callable, Hashable, Mapping, Sequence
from dataclasses import dataclass, field
from datetime import datetime, timedelta
from typing import Generic, Protocol, TypeVar

from wa_outbound.db.schema import SHARED_SENDER_ID
from wa_outbound.dispatch import refusals
from wa_outbound.dispatch.due import Due, Wait
from wa_outbound.ratelimit.senders import AllGranted, Candidate, SenderGroup, Verdict, tier_cap

MIN_HOLD_S = 0.05
MAX_HOLD_S = 5.0
# A quota wait shorter than this (the org's own per-second cap) is held in memory, not written.
WRITE_WAIT_S = 1.0

K = TypeVar("K", bound=Hashable)


class HasId(Protocol):
    @property
    def id(self) -> uuid.UUID: ...


C = TypeVar("C", bound=HasId)


Throttled = Callable[[str, str], None]
"""(the sender's phone_number_id, reason): counts one message a limit held back."""


class Limiter(Protocol):
    """What the dispatcher needs of wa_outbound.ratelimit.RateLimiter."""

    async def admit_many(
        self, groups: list[SenderGroup]
    ) -> Sequence[Mapping[uuid.UUID, Verdict]]: ...


class Holds(Generic[K]):
    """Senders (or orgs) the limiter refused, each until its next slot (monotonic seconds)."""

    def __init__(self, clock: Callable[[], float] = time.monotonic) -> None:
        self._until: dict[K, float] = {}
        self._clock = clock

    def hold(self, key: K, seconds: float) -> None:
        until = self._clock() + min(max(seconds, MIN_HOLD_S), MAX_HOLD_S)
        self._until[key] = max(until, self._until.get(key, 0.0))

    def held(self) -> list[K]:
        now = self._clock()
        for key in [k for k, until in self._until.items() if until <= now]:
            del self._until[key]
        return list(self._until)

    def next_release_s(self) -> float | None:
        """Seconds until the first hold ends, or None when nothing is held."""
        if not self._until:
            return None
        return max(0.0, min(self._until.values()) - self._clock())


@dataclass
class Admission:
    granted: list[Due]
    """In queue order."""
    waits: list[Wait] = field(default_factory=list)
    refused: list[tuple[Due, str]] = field(default_factory=list)
    """Template messages that fail at claim time, each with its code (dispatch.refusals)."""

    def send_order(self, claimed: list[C]) -> list[C]:
        """Sends start in this order and take the send slots first come, first served: the
        slowest senders' go first, so waiting for a slot adds the least to their spacing at
        Meta (their throughput margin is 0.1 s). Queue order is kept within a sender."""
        pace = {row.id: row.messages_per_second for row in self.granted}
        return sorted(claimed, key=lambda message: pace.get(message.id, 0.0))


class Gate:
    """A replica's holds (senders and orgs it skips for now) and the limiter's questions."""

    def __init__(self, throttled: Throttled | None = None) -> None:
        self.senders: Holds[uuid.UUID] = Holds()
        self.orgs: Holds[str] = Holds()
        self._throttled = throttled

    def next_release_s(self) -> float | None:
        """Seconds until the first hold (of a sender or an org) ends, or None."""
        ends = [holds.next_release_s() for holds in (self.senders, self.orgs)]
        return min((end for end in ends if end is not None), default=None)

    async def admit(self, limiter: Limiter | None, due: list[Due], now: datetime) -> Admission:
        return await admit(
            limiter, due, senders=self.senders, orgs=self.orgs, now=now, throttled=self._throttled
        )


async def admit(
    limiter: Limiter | None,
    due: list[Due],
    *,
    senders: Holds[uuid.UUID],
    orgs: Holds[str],
    now: datetime,
    throttled: Throttled | None = None,
) -> Admission:
    """One limiter question per sender of the batch, asked together; what waits is held in memory or
    listed in `waits` for the claim to write. Template messages whose template changed while
    they waited are set apart first: they are not sends."""
    due, held, refused = refusals.split(due, now)
    if limiter is None or not due:
        return Admission(due, held, refused)
    # Keyed by the ids' integers (a UUID's own hash runs in Python, and this runs per message).
    by_sender: dict[int, list[Due]] = {}
    for row in due:
        by_sender.setdefault(row.sender_id.int, []).append(row)
    # The senders' questions are independent: asked together, in one round trip to Redis.
    asked_at = time.monotonic()
    answers = await limiter.admit_many(
        [_group(rows[0].sender_id, rows, now) for rows in by_sender.values()]
    )
    # Retries count from the limiter's answer: a wait written from `now` would end early.
    later = now + timedelta(seconds=time.monotonic() - asked_at)
    granted: set[int] = set()  # id() of the granted rows, which `due` holds meanwhile
    waits: list[Wait] = held
    for rows, verdicts in zip(by_sender.values(), answers, strict=True):
        if verdicts.__class__ is AllGranted:
            granted.update(map(id, rows))
            continue
        sender_id = rows[0].sender_id
        for row in rows:
            verdict = verdicts[row.id]
            if verdict.reason is None:
                granted.add(id(row))
                continue
            if throttled is not None:
                throttled(row.phone_number_id, verdict.reason)
            if verdict.reason == "throughput":
                senders.hold(sender_id, verdict.retry_after_s)
            elif verdict.reason == "quota" and verdict.retry_after_s < WRITE_WAIT_S:
                orgs.hold(row.org_id, verdict.retry_after_s)
            else:
                until = later + timedelta(seconds=verdict.retry_after_s)
                waits.append(Wait(row.id, row.org_id, until, verdict.reason))
    return Admission([row for row in due if id(row) in granted], waits, refused)


def _group(sender_id: uuid.UUID, rows: list[Due], now: datetime) -> SenderGroup:
    first = rows[0]
    return SenderGroup(
        sender_id=sender_id,
        org_id=None if sender_id == SHARED_SENDER_ID else first.org_id,
        messages_per_second=first.messages_per_second,
        waba_id=first.waba_id,
        cap=tier_cap(first.messaging_limit),
        rows=[Candidate(r.id, r.org_id, r.to, r.created_at or now, r.reaches) for r in rows],
    )
