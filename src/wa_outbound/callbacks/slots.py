"""Which claimed deliveries are attempted now: at most `concurrency` at once, and at most
`per_host` to one host.

A claimed delivery waits in its host's queue, not in a task: an attempt is started only when both
a global slot and one of its host's slots are free, and the free global slots go round the hosts
that have work, so an endpoint that hangs keeps its host's slots busy and no one else's. What
each host holds (queued or attempted) also decides how much the worker may claim, and which
endpoints it leaves out of its next claim.
"""

from __future__ import annotations

import uuid
from collections import Counter, deque
from collections.abc import Callable
from functools import lru_cache
from urllib.parse import urlsplit

from wa_outbound.callbacks.claims import Claimed


@lru_cache(maxsize=4096)
def host_of(url: str) -> str:
    """The connection pool's key of a URL (scheme, host and port), for the per-host limits."""
    try:
        parts = urlsplit(url)
        return f"{parts.scheme}://{parts.hostname}:{parts.port or ''}"
    except ValueError:
        return url


class _Host:
    """What one host holds: its queue, its attempts in flight, and its deliveries by endpoint."""

    __slots__ = ("active", "endpoints", "load", "queue")

    def __init__(self) -> None:
        self.queue: deque[Claimed] = deque()
        self.active = 0
        self.load = 0
        """Queued and in flight."""
        self.endpoints: Counter[uuid.UUID] = Counter()


class Slots:
    def __init__(
        self,
        *,
        concurrency: int,
        per_host: int,
        saturated_at: int,
        start: Callable[[Claimed], None],
    ) -> None:
        self._concurrency = concurrency
        self._per_host = per_host
        self._saturated_at = saturated_at
        self._start = start
        # The hosts holding anything, by host key (one lookup per add and per done).
        self._hosts: dict[str, _Host] = {}
        # Hosts with queued work and a free slot of their own, in turn (a dict as ordered set).
        self._ready: dict[str, _Host] = {}
        self._active = 0

    @property
    def held(self) -> int:
        """Deliveries claimed and not finished (queued or being attempted)."""
        return sum(h.load for h in self._hosts.values())

    def busy(self) -> int:
        """What the hosts hold, each counted up to its own connection limit: deliveries waiting
        for a host that is busy anyway do not keep other endpoints from being claimed."""
        return sum(min(h.load, self._per_host) for h in self._hosts.values())

    def saturated_endpoints(self) -> list[uuid.UUID]:
        """Endpoints of the hosts that hold enough until the next claim."""
        return [
            endpoint_id
            for h in self._hosts.values()
            if h.load >= self._saturated_at
            for endpoint_id in h.endpoints
        ]

    def add(self, delivery: Claimed) -> None:
        key = host_of(delivery.endpoint.url)
        host = self._hosts.get(key)
        if host is None:
            host = self._hosts[key] = _Host()
        host.queue.append(delivery)
        host.load += 1
        host.endpoints[delivery.endpoint_id] += 1
        if host.active < self._per_host:
            self._ready[key] = host
        self._pump()

    def done(self, delivery: Claimed) -> bool:
        """An attempt ended: free its slots and start what can start. True when its host was
        saturated until now (its endpoints may be claimed again)."""
        key = host_of(delivery.endpoint.url)
        host = self._hosts[key]
        was_saturated = host.load >= self._saturated_at
        self._active -= 1
        host.active -= 1
        self._forget(key, host, delivery.endpoint_id)
        if host.queue:
            self._ready[key] = host
        self._pump()
        return was_saturated and host.load < self._saturated_at

    def take_queued(self) -> list[Claimed]:
        """Shutdown: every delivery not started yet, out of the queues."""
        taken: list[Claimed] = []
        for key, host in list(self._hosts.items()):
            while host.queue:
                delivery = host.queue.popleft()
                taken.append(delivery)
                self._forget(key, host, delivery.endpoint_id)
        self._ready.clear()
        return taken

    def _pump(self) -> None:
        ready = self._ready
        while self._active < self._concurrency and ready:
            key = next(iter(ready))
            host = ready.pop(key)
            delivery = host.queue.popleft()
            self._active += 1
            host.active += 1
            if host.queue and host.active < self._per_host:
                ready[key] = host  # to the back: the next host's turn first
            self._start(delivery)

    def _forget(self, key: str, host: _Host, endpoint_id: uuid.UUID) -> None:
        host.load -= 1
        endpoints = host.endpoints
        endpoints[endpoint_id] -= 1
        if endpoints[endpoint_id] <= 0:
            del endpoints[endpoint_id]
        if host.load <= 0:
            del self._hosts[key]
