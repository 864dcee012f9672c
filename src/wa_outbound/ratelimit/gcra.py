"""The per-second cap as a generic cell rate algorithm (GCRA), shared by the database limiter
and mirrored line for line by the Lua script.

State is one number, the theoretical arrival time `tat` (Unix seconds) of the next message. With
emission interval T = 1/mps and a burst of max(1, mps) messages (one second's worth), k messages
fit at `now` while max(tat, now) + k*T - now <= burst*T. An org with no cap (mps None) admits
any number and its `tat` does not move."""

from __future__ import annotations

import math

# Guards floor() against 79.99999999 when exactly 80 fit.
EPSILON = 1e-9


UNCAPPED = 2**62


def burst(mps: float) -> float:
    return max(1.0, mps)


def allowed(tat: float, now: float, mps: float | None) -> int:
    """How many messages the per-second cap admits at `now`."""
    if not mps:
        return UNCAPPED
    start = max(tat, now)
    return max(0, math.floor((now - start) * mps + burst(mps) + EPSILON))


def advance(tat: float, now: float, mps: float | None, granted: int) -> float:
    """The new `tat` after `granted` messages went out at `now`."""
    if granted <= 0 or not mps:
        return tat
    return max(tat, now) + granted / mps


def next_allowed_in(tat: float, now: float, mps: float | None) -> float:
    """Seconds until the cap admits one more message."""
    if not mps:
        return 0.0
    return max(0.0, tat + 1.0 / mps - burst(mps) / mps - now)
