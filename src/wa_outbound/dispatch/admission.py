"""Asking the rate limiter about a claimed batch: once per organisation, never per message."""

from __future__ import annotations

from collections import defaultdict
from datetime import datetime, timedelta
from typing import Protocol

from wa_outbound.dispatch.claims import Claimed
from wa_outbound.dispatch.outcomes import Outcome
from wa_outbound.status import Status

MIN_WAIT_S = 0.05


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


async def admit(
    limiter: Limiter | None, batch: list[Claimed], now: datetime
) -> tuple[list[Claimed], list[Outcome]]:
    """The messages granted, and outcomes for the rest: back to their previous status with a
    later `next_attempt_at` and their attempt given back (waiting is not failing)."""
    if limiter is None or not batch:
        return batch, []
    by_org: dict[str, list[Claimed]] = defaultdict(list)
    for message in batch:
        by_org[message.org_id].append(message)
    granted: list[Claimed] = []
    held: list[Outcome] = []
    for org_id, messages in by_org.items():
        decision = await limiter.acquire(org_id, len(messages))
        granted += messages[: decision.granted]
        later = now + timedelta(seconds=max(decision.retry_after_s, MIN_WAIT_S))
        details = {"backend": decision.backend, "retry_after_s": round(decision.retry_after_s, 3)}
        held += [
            Outcome(
                m,
                Status(m.from_status),
                "rate_limited",
                next_attempt_at=later,
                give_back_attempt=True,
                details=details,
            )
            for m in messages[decision.granted :]
        ]
    return granted, held
