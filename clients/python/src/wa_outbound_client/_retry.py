"""When a failed request is tried again, and after how long: one policy for both clients.

A request is retried when the service answered 429 or a 5xx, or gave no answer at all. What
makes that safe is the call, not the status: a send carries its Idempotency-Key on every
attempt, so the service queues at most one message however many attempts reach it. A call
that is not safe to repeat (cancel, replay, create a sender...) is retried only when it cannot
have done anything: the connection was never made, or the service answered 429 or 503 (its
503 means nothing was changed). A lost answer (timeout, reset) to such a call is raised.
"""

from __future__ import annotations

import random
from dataclasses import dataclass
from datetime import UTC, datetime
from email.utils import parsedate_to_datetime

import httpx

# The request never reached the service: repeating it cannot do anything twice.
_NOT_SENT = (httpx.ConnectError, httpx.ConnectTimeout, httpx.PoolTimeout)


@dataclass(frozen=True, slots=True)
class RetryPolicy:
    """`max_attempts` counts the first; backoff doubles from `initial_delay_s` up to
    `max_delay_s`, with jitter; a Retry-After longer than `max_retry_after_s` is not waited
    for (the error is raised with it). `RetryPolicy(max_attempts=1)` never retries."""

    max_attempts: int = 5
    initial_delay_s: float = 0.5
    max_delay_s: float = 20.0
    max_retry_after_s: float = 60.0

    def backoff_s(self, attempt: int) -> float:
        """The wait after failed attempt number `attempt` (1-based): half fixed, half random,
        so that many clients failing together do not retry together."""
        ceiling = min(self.max_delay_s, self.initial_delay_s * 2.0 ** (attempt - 1))
        return ceiling / 2 + random.uniform(0, ceiling / 2)

    def after_response(
        self, *, attempt: int, status: int, retry_after_s: float | None, replay_safe: bool
    ) -> float | None:
        """How long to wait before the next attempt after an error answer; None: raise it."""
        if attempt >= self.max_attempts:
            return None
        if not (status in (429, 503) or (status >= 500 and replay_safe)):
            return None
        if retry_after_s is not None:
            return retry_after_s if retry_after_s <= self.max_retry_after_s else None
        return self.backoff_s(attempt)

    def after_exception(
        self, *, attempt: int, exc: httpx.TransportError, replay_safe: bool
    ) -> float | None:
        """How long to wait before the next attempt after no answer; None: raise it."""
        if attempt >= self.max_attempts:
            return None
        if isinstance(exc, _NOT_SENT) or replay_safe:
            return self.backoff_s(attempt)
        return None


def retry_after_s(value: str | None, now: datetime | None = None) -> float | None:
    """A Retry-After header in seconds: delta-seconds or an HTTP date; None if absent or
    unreadable."""
    if value is None:
        return None
    value = value.strip()
    if value.isdigit():
        return float(value)
    try:
        when = parsedate_to_datetime(value)
    except (TypeError, ValueError):
        return None
    if when.tzinfo is None:
        when = when.replace(tzinfo=UTC)
    return max(0.0, (when - (now or datetime.now(UTC))).total_seconds())
