"""Asking the rate limiter about the rows a claim has locked: once per organisation, never per
message, and before anything is written.

What the limiter does not grant is never claimed: it stays as it was, unlocked, and uses no
attempt. The organisation is then held in this replica's memory until the limiter's next slot
(at most `MAX_HOLD_S`, so a raised quota is seen soon), and claims skip it meanwhile: a held
backlog costs one limiter call per hold, not a claim and a release per message per round.
"""

from __future__ import annotations

import time
from collections import defaultdict
from collections.abc import Callable
from typing import Protocol

from wa_outbound.dispatch.claims import Due

MIN_HOLD_S = 0.05
MAX_HOLD_S = 5.0


class Decision(Protocol):
    @property
    def granted(self) -> int: ...
    @property
    def retry_after_s(self) -> float: ...
    @property
    def backend(self) -> str: ...


class Limiter(Protocol):
    """What the dispatcher needs of wa_outbound.ratelimit.RateLimiter."""

    async def acquire(self, org_id: str, n: int) -> Decision: ...


class Holds:
    """Organisations the limiter refused, each until its next slot (monotonic seconds)."""

    def __init__(self, clock: Callable[[], float] = time.monotonic) -> None:
        self._until: dict[str, float] = {}
        self._clock = clock

    def hold(self, org_id: str, seconds: float) -> None:
        self._until[org_id] = self._clock() + min(max(seconds, MIN_HOLD_S), MAX_HOLD_S)

    def held(self) -> list[str]:
        now = self._clock()
        for org_id in [o for o, until in self._until.items() if until <= now]:
            del self._until[org_id]
        return list(self._until)

    def next_release_s(self) -> float | None:
        """Seconds until the first hold ends, or None when nothing is held."""
        if not self._until:
            return None
        return max(0.0, min(self._until.values()) - self._clock())


async def admit(limiter: Limiter | None, due: list[Due], holds: Holds) -> list[Due]:
    """The rows the limiter granted, in queue order; the first rows of each org go first."""
    if limiter is None or not due:
        return due
    by_org: dict[str, list[Due]] = defaultdict(list)
    for row in due:
        by_org[row.org_id].append(row)
    granted: set[Due] = set()
    for org_id, rows in by_org.items():
        decision = await limiter.acquire(org_id, len(rows))
        granted.update(rows[: decision.granted])
        if decision.granted < len(rows):
            holds.hold(org_id, decision.retry_after_s)
    return [row for row in due if row in granted]
