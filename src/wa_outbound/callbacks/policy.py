"""What an attempt's answer means for its delivery: a pure function, written to the row later.

Any 2xx succeeds. 410 Gone disables the endpoint at once (the delivery stays pending for when it
is enabled again). Everything else, a 3xx included (redirects are not followed), is retried after
the schedule's next step ±20 %, or after `Retry-After` on a 429 or 503, until the schedule is
used up; then the delivery is `failed`.
"""

from __future__ import annotations

import random
from collections.abc import Sequence
from datetime import UTC, datetime, timedelta
from email.utils import parsedate_to_datetime
from typing import NamedTuple

from wa_outbound.callbacks.claims import Claimed

JITTER = 0.2
# A Retry-After further than this is not believed.
MAX_RETRY_AFTER_S = 86_400.0
GONE = "gone"
URL_NOT_ALLOWED = "url_not_allowed"


class Answer(NamedTuple):
    """What one attempt got: a status code, or an error before any (timeout, refused...)."""

    status_code: int | None = None
    error: str | None = None
    retry_after: str | None = None
    elapsed_s: float = 0.0


class Outcome(NamedTuple):
    """Where a claimed delivery goes: `result` is the metric's label (succeeded, retried,
    failed, gone, url_not_allowed); `status` the delivery's new status. Named tuples (one of
    each per attempt): immutable, and cheaper to make than frozen dataclasses."""

    delivery: Claimed
    result: str
    status: str
    next_attempt_at: datetime
    status_code: int | None
    error: str | None
    attempted: bool = True
    """False for a claim given back before its request began: its attempt is given back too."""

    @property
    def succeeded(self) -> bool:
        return self.status == "succeeded"

    @property
    def gone(self) -> bool:
        return self.result == GONE


def outcome_of(
    delivery: Claimed,
    answer: Answer,
    *,
    schedule: Sequence[float],
    now: datetime,
    rng: random.Random | None = None,
) -> Outcome:
    code = answer.status_code
    if code is not None and 200 <= code < 300:
        return Outcome(delivery, "succeeded", "succeeded", now, code, None)
    error = answer.error or _error_of(code)
    if code == 410:
        # Not a failure of this delivery: it is sent when the endpoint is enabled again.
        return Outcome(delivery, GONE, "pending", now, code, GONE)
    retries_done = delivery.attempt - 1
    if retries_done >= len(schedule):
        result = URL_NOT_ALLOWED if error == URL_NOT_ALLOWED else "failed"
        return Outcome(delivery, result, "failed", now, code, error)
    delay_s = schedule[retries_done] * (rng or random).uniform(1 - JITTER, 1 + JITTER)
    if code in (429, 503) and answer.retry_after is not None:
        asked_s = retry_after_s(answer.retry_after, now)
        if asked_s is not None:
            delay_s = asked_s
    result = URL_NOT_ALLOWED if error == URL_NOT_ALLOWED else "retried"
    return Outcome(delivery, result, "pending", now + timedelta(seconds=delay_s), code, error)


def retry_after_s(value: str, now: datetime) -> float | None:
    """Seconds a `Retry-After` header asks for (delta-seconds or an HTTP date), capped at a day;
    None when it is neither."""
    value = value.strip()
    try:
        seconds = float(value)
    except ValueError:
        try:
            when = parsedate_to_datetime(value)
        except (TypeError, ValueError):
            return None
        if when.tzinfo is None:
            when = when.replace(tzinfo=UTC)
        seconds = (when - now).total_seconds()
    if seconds != seconds:  # NaN
        return None
    return min(max(seconds, 0.0), MAX_RETRY_AFTER_S)


def _error_of(code: int | None) -> str:
    if code is None:
        return "no_answer"
    if 300 <= code < 400:
        return f"redirect {code} (not followed)"
    return f"HTTP {code}"
