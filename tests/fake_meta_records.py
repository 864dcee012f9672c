"""What the fake Meta Graph API received: counters for everything, and the latest requests in a
bounded list, cheap enough for the benchmark's hot path."""

from __future__ import annotations

from collections import Counter, deque
from typing import Any, NamedTuple


class RecordedRequest(NamedTuple):
    """One request to the messages endpoint; `status` 0 means it was left hanging."""

    at: float  # time.monotonic() on arrival
    to: str  # `to` without its leading '+', "" when the body had none
    body: Any  # the parsed JSON body, None when it did not parse
    authorization: str | None
    status: int
    wamid: str | None
    phone_number_id: str = ""  # the number in the path


class Received:
    """Every request counted (in all and by `to`), the latest `max_records` kept in full.
    Methods take `to` with or without its leading '+'."""

    def __init__(self, max_records: int = 100_000) -> None:
        self._records: deque[RecordedRequest] = deque(maxlen=max_records)
        self._total = 0
        self._by_to: Counter[str] = Counter()
        self._accepted_by_to: Counter[str] = Counter()

    def add(self, request: RecordedRequest) -> None:
        self._total += 1
        self._by_to[request.to] += 1
        if request.wamid is not None:
            self._accepted_by_to[request.to] += 1
        self._records.append(request)

    def clear(self) -> None:
        self._records.clear()
        self._total = 0
        self._by_to.clear()
        self._accepted_by_to.clear()

    @property
    def total(self) -> int:
        return self._total

    @property
    def accepted(self) -> int:
        return self._accepted_by_to.total()

    @property
    def requests(self) -> list[RecordedRequest]:
        """The latest requests (up to `max_records`), oldest first."""
        return list(self._records)

    @property
    def wamids(self) -> list[str]:
        """The wamids issued, in order (as far back as the kept requests go)."""
        return [r.wamid for r in self._records if r.wamid is not None]

    def count(self, to: str) -> int:
        """Requests to `to`, whatever their answer."""
        return self._by_to[to.lstrip("+")]

    def requests_for(self, to: str) -> list[RecordedRequest]:
        key = to.lstrip("+")
        return [r for r in self._records if r.to == key]

    def duplicates(self) -> dict[str, int]:
        """Recipients that got more than one accepted send, with how many."""
        return {to: n for to, n in self._accepted_by_to.items() if n > 1}

    def summary(self) -> dict[str, Any]:
        return {
            "total": self._total,
            "accepted": self.accepted,
            "by_to": dict(self._by_to),
            "duplicates": self.duplicates(),
        }
