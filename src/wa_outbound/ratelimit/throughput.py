"""A sender's throughput: at most `messages_per_second` grants in any 1.1-second span, counted
in 100 ms buckets. Shared by the database limiter and mirrored by admit.lua.

Meta counts the requests that reach it in a second; they left us at the grant plus a delay that
varies (network jitter, our own send queue). Grants capped per 1.1 s reach Meta capped per
second as long as that delay varies by less than 0.1 s. The current bucket and the eleven before
it are counted, so any two grants less than 1.1 s apart are counted together (the span counted
is between 1.1 and 1.2 s long): a sender runs at 83-91 % of its cap, the price of the margin. A
GCRA or token bucket with a burst of one second would let twice the cap into some 1-second
span (a full burst at the end of one second and the refill at the start of the next)."""

from __future__ import annotations

import math

# How much the delay from a grant to Meta's receipt may vary and still leave Meta's limits
# kept: the throughput window is this much longer than a second, and pair slots this much apart
# beyond the interval.
JITTER_S = 0.1
BUCKET_S = 0.1
WINDOW_BUCKETS = 12
EPSILON = 1e-9


def bucket_of(now_s: float) -> int:
    return math.floor(now_s / BUCKET_S + EPSILON)


def capacity(messages_per_second: float) -> int:
    """Grants per window: the cap, rounded down, and at least one."""
    return max(1, math.floor(messages_per_second + EPSILON))


def current(buckets: dict[int, int], now_s: float) -> dict[int, int]:
    """The buckets still in the window at `now_s` (older ones dropped)."""
    first = bucket_of(now_s) - WINDOW_BUCKETS + 1
    return {index: count for index, count in buckets.items() if index >= first and count > 0}


def retry_after_s(buckets: dict[int, int], now_s: float) -> float:
    """When the oldest counted bucket leaves the window (0 when nothing is counted)."""
    if not buckets:
        return 0.0
    return max(0.0, (min(buckets) + WINDOW_BUCKETS) * BUCKET_S - now_s)


def pair_spacing_s(interval_s: float) -> float:
    """Grants to one recipient are this far apart: the pair interval (0: off) plus the margin
    for jitter."""
    return interval_s + JITTER_S if interval_s > 0 else 0.0
