"""The retry policy: Meta's error codes decide, never titles or HTTP statuses (a pure module)."""

from __future__ import annotations

import random
from dataclasses import dataclass
from enum import StrEnum


class Verdict(StrEnum):
    RETRY = "retry"
    PAIR_LIMITED = "pair_limited"  # retry this recipient only, after 4^n seconds
    PERMANENT = "permanent"


RETRYABLE_CODES = frozenset({1, 2, 4, 80007, 130429, 131000, 131016, 131057, 133004})
PAIR_LIMITED_CODES = frozenset({131056})
PERMANENT_CODES = frozenset(
    {0, 3, 10, 190, 131005, *range(200, 300)}  # authentication and permissions
    | {
        100,
        131008,
        131009,
        131021,
        131051,
        131053,
        132000,
        132001,
        132005,
        132007,
        132012,
        132015,
        132016,
        132018,
        135000,
    }  # request and template
    | {131026, 131050, 130403, 130472}  # recipient
    | {368, 131031, 130497, 131042, 131045, 131037, 131063, 133010}  # account
    | {131047, 131049, 131048, 131064}  # window closed, do-not-resend, quality enforcement
)


# Errors that say the sender cannot send at all, whatever the message: the sender is paused
# rather than the message failed. The token's (190, permissions 10 and 200-299) hold that one
# sender; the account's hold every sender of its WABA.
TOKEN_INVALID = "token_invalid"
TOKEN_CODES = frozenset({190, 10, *range(200, 300)})
ACCOUNT_CODES = {368: "account_restricted", 131031: "account_restricted", 131042: "payment_issue"}


@dataclass(frozen=True, slots=True)
class ProviderError:
    """A failed send as the provider described it. `code` is Meta's `error.code` as a string, or
    our own code (`http_500`, `transport_error`, ...) when Meta gave none."""

    code: str
    title: str
    message: str
    details: str | None = None
    http_status: int | None = None
    retry_after_s: float | None = None
    transport: bool = False
    ambiguous: bool = False
    """Whether Meta may have taken the message: the request was written and its answer lost
    (a timeout, a dropped connection). Such a send is reconciled before it is repeated."""


def classify(error: ProviderError) -> Verdict:
    if error.transport:
        return Verdict.RETRY
    if error.code.isdigit():
        code = int(error.code)
        if code in PAIR_LIMITED_CODES:
            return Verdict.PAIR_LIMITED
        if code in PERMANENT_CODES:
            return Verdict.PERMANENT
        # Listed retryable codes, and codes this table does not know yet: retry, bounded by
        # max_attempts, rather than lose a message to a code Meta added last month.
        return Verdict.RETRY
    return Verdict.RETRY  # HTTP 5xx, unparseable answers


def pause_reason(error: ProviderError) -> str | None:
    """The sender's pause reason a failed send shows (`token_invalid`, or the account-level
    `account_restricted` / `payment_issue`), or None when the error is the message's own.
    Meta's OAuth errors come with HTTP 401 whatever their code."""
    if error.transport or not error.code.isdigit():
        return None
    code = int(error.code)
    if code in ACCOUNT_CODES:
        return ACCOUNT_CODES[code]
    if code in TOKEN_CODES or error.http_status == 401:
        return TOKEN_INVALID
    return None


def backoff_s(
    attempt: int,
    *,
    base_s: float,
    max_s: float,
    verdict: Verdict = Verdict.RETRY,
    retry_after_s: float | None = None,
    rng: random.Random | None = None,
) -> float:
    """Delay before the next attempt: `min(max, base * 2^(attempt-1))` with ±20% jitter, never
    sooner than the provider's Retry-After (itself capped at `max_s`: a server's Retry-After of
    years must not park a message for years); pair-limited recipients wait 4^attempt seconds."""
    if verdict is Verdict.PAIR_LIMITED:
        delay = min(max_s, 4.0**attempt)
    else:
        delay = min(max_s, base_s * 2.0 ** max(attempt - 1, 0))
    delay = min(max_s, delay * (rng or random).uniform(0.8, 1.2))
    return delay if retry_after_s is None else max(delay, min(retry_after_s, max_s))
