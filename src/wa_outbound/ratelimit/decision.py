"""What the dispatcher sees of the rate limiter: one `Decision` per (org, n) or one `Verdict` per
message of a sender group, and the protocol
that both backends (Redis with database fallback, database only) implement."""

from __future__ import annotations

import uuid
from collections.abc import Mapping
from dataclasses import dataclass
from typing import Any, Literal, Protocol

from wa_outbound.ratelimit.senders import SenderGroup, Verdict

Backend = Literal["redis", "database"]


@dataclass(frozen=True, slots=True)
class Decision:
    """`granted` of the n asked for may be sent now. When fewer than n were granted,
    `retry_after_s` is the time until the next one could be (the per-second cap or the window
    reset, whichever binds); it is 0.0 when all n were granted."""

    granted: int
    retry_after_s: float
    backend: Backend


class RateLimiter(Protocol):
    """Per-organisation quota per window plus a per-second throughput cap. Never fails open:
    when no backend can decide, `acquire` raises instead of granting."""

    async def acquire(self, org_id: str, n: int) -> Decision: ...

    async def admit(self, group: SenderGroup) -> Mapping[uuid.UUID, Verdict]:
        """Every limit of one sender's messages (see senders.py), one verdict per message."""
        ...

    async def admit_many(self, groups: list[SenderGroup]) -> list[Mapping[uuid.UUID, Verdict]]:
        """`admit` for each of a batch's groups, in their order, asked together."""
        ...

    async def quota(self, org_id: str) -> dict[str, Any]:
        """The body of `GET /v1/rate-limits/whatsapp/quota`."""
        ...

    async def configure(
        self,
        org_id: str,
        *,
        limit: int | None,
        window_seconds: int | None,
        messages_per_second: float | None,
        actor: str,
    ) -> dict[str, Any]:
        """Change the org's limits (None keeps a value); effective at once, audited."""
        ...

    @property
    def backend(self) -> Backend: ...

    def health(self) -> dict[str, Any]:
        """For `/health/ready`: which backend decides, and how Redis is doing."""
        ...

    async def close(self) -> None: ...
