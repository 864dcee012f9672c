"""Whether Redis decides, and when to ask it again: the Redis limiter's view of Redis's health,
shown by `/health/ready` and the `outbound_ratelimit_backend` gauge."""

from __future__ import annotations

import logging
import time
from datetime import datetime
from typing import Any

from wa_outbound.db.types import utcnow
from wa_outbound.metrics import Metrics

log = logging.getLogger(__name__)


class RedisHealth:
    """Up until a call fails; then down, probed after `backoff_s[0]` seconds, then after a
    doubling delay of up to `backoff_s[1]`, until a probe is answered."""

    def __init__(self, metrics: Metrics, backoff_s: tuple[float, float]) -> None:
        self._gauge = metrics.ratelimit_backend
        self._backoff_s = backoff_s
        self.up = True
        self._delay_s = backoff_s[0]
        self._next_probe_at = 0.0
        self._down_since: datetime | None = None
        self._last_error: str | None = None
        self._show()

    def mark_down(self, exc: BaseException) -> None:
        if self.up:
            log.warning("redis does not answer (%s): the database rate limiter decides", exc)
            self._down_since = utcnow()
            self._next_probe_at = time.monotonic() + self._delay_s
        self.up = False
        self._last_error = f"{type(exc).__name__}: {exc}"
        self._show()

    def probe_failed(self, exc: BaseException) -> None:
        self._last_error = f"{type(exc).__name__}: {exc}"
        self._delay_s = min(self._delay_s * 2, self._backoff_s[1])
        self._next_probe_at = time.monotonic() + self._delay_s

    def mark_up(self) -> None:
        if not self.up:
            log.warning("redis answers again: the Redis rate limiter decides")
        self.up = True
        self._delay_s = self._backoff_s[0]
        self._down_since = None
        self._last_error = None
        self._show()

    @property
    def probe_due(self) -> bool:
        return not self.up and time.monotonic() >= self._next_probe_at

    def view(self) -> dict[str, Any]:
        if self.up:
            return {"status": "up"}
        return {
            "status": "down",
            "down_since": self._down_since.isoformat() if self._down_since else None,
            "error": self._last_error,
            "next_probe_in_s": round(max(0.0, self._next_probe_at - time.monotonic()), 3),
        }

    def _show(self) -> None:
        self._gauge.labels(backend="redis").set(1 if self.up else 0)
        self._gauge.labels(backend="database").set(0 if self.up else 1)
