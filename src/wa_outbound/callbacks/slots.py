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
        self._queued: dict[str, deque[Claimed]] = {}
        # Hosts with queued work and a free slot of their own, in turn (a dict as ordered set).
        self._ready: dict[str, None] = {}
        self._active = 0
        self._active_by_host: Counter[str] = Counter()
        self._load: Counter[str] = Counter()
        self._endpoints: dict[str, Counter[uuid.UUID]] = {}

    @property
    def held(self) -> int:
        """Deliveries claimed and not finished (queued or being attempted)."""
        return sum(self._load.values())

    def busy(self) -> int:
        """What the hosts hold, each counted up to its own connection limit: deliveries waiting
        for a host that is busy anyway do not keep other endpoints from being claimed."""
        return sum(min(n, self._per_host) for n in self._load.values())

    def saturated_endpoints(self) -> list[uuid.UUID]:
        """Endpoints of the hosts that hold enough until the next claim."""
        return [
            endpoint_id
            for host, load in self._load.items()
            if load >= self._saturated_at
            for endpoint_id in self._endpoints.get(host, ())
        ]

    def add(self, delivery: Claimed) -> None:
        host = host_of(delivery.url)
        self._queued.setdefault(host, deque()).append(delivery)
        self._load[host] += 1
        self._endpoints.setdefault(host, Counter())[delivery.endpoint_id] += 1
        if self._active_by_host[host] < self._per_host:
            self._ready[host] = None
        self._pump()

    def done(self, delivery: Claimed) -> bool:
        """An attempt ended: free its slots and start what can start. True when its host was
        saturated until now (its endpoints may be claimed again)."""
        host = host_of(delivery.url)
        was_saturated = self._load[host] >= self._saturated_at
        self._active -= 1
        self._active_by_host[host] -= 1
        if self._active_by_host[host] <= 0:
            del self._active_by_host[host]
        self._forget(host, delivery.endpoint_id)
        if host in self._queued:
            self._ready[host] = None
        self._pump()
        return was_saturated and self._load[host] < self._saturated_at

    def take_queued(self) -> list[Claimed]:
        """Shutdown: every delivery not started yet, out of the queues."""
        taken = [d for queue in self._queued.values() for d in queue]
        for delivery in taken:
            self._forget(host_of(delivery.url), delivery.endpoint_id)
        self._queued.clear()
        self._ready.clear()
        return taken

    def _pump(self) -> None:
        while self._active < self._concurrency and self._ready:
            host = next(iter(self._ready))
            del self._ready[host]
            queue = self._queued[host]
            delivery = queue.popleft()
            if not queue:
                del self._queued[host]
            self._active += 1
            self._active_by_host[host] += 1
            if host in self._queued and self._active_by_host[host] < self._per_host:
                self._ready[host] = None  # to the back: the next host's turn first
            self._start(delivery)

    def _forget(self, host: str, endpoint_id: uuid.UUID) -> None:
        self._load[host] -= 1
        if self._load[host] <= 0:
            del self._load[host]
        endpoints = self._endpoints.get(host)
        if endpoints is not None:
            endpoints[endpoint_id] -= 1
            if endpoints[endpoint_id] <= 0:
                del endpoints[endpoint_id]
            if not endpoints:
                del self._endpoints[host]
