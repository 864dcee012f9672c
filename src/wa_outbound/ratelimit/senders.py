"""What the dispatcher asks the limiter about a claimed batch: one `SenderGroup` per sender, and
one `Verdict` per message back.

Every limit is decided for the group at once: the sender's throughput, pair pacing per
(sender, recipient), its WABA's messaging limit, and the quota and optional per-second cap of
each org in it. A message is granted only when every limit grants it, and only then does it
consume anything (quota, throughput, a pair slot, a reached recipient)."""

from __future__ import annotations

import uuid
from collections.abc import Iterator, Mapping, Sequence
from dataclasses import dataclass, field
from datetime import datetime
from typing import Literal

Reason = Literal["throughput", "pair_interval", "messaging_limit", "quota"]
REASON_CODES: tuple[Reason, ...] = ("throughput", "pair_interval", "messaging_limit", "quota")

DAY_S = 86_400.0
# A message held by the messaging limit is looked at again after at most this long, even when
# the oldest reached recipient leaves the 24 hours later (a raised limit is then seen soon).
TIER_RETRY_MAX_S = 300.0

# Meta's messaging limits: distinct recipients reached outside a service window in 24 hours.
TIER_CAPS: dict[str, int | None] = {
    "TIER_250": 250,
    "TIER_2K": 2_000,
    "TIER_10K": 10_000,
    "TIER_100K": 100_000,
    "TIER_UNLIMITED": None,
}


def tier_cap(messaging_limit: str | None) -> int | None:
    """The cap of a stored messaging limit; None is no cap (unlimited, unknown or unset). A
    number written straight into the row (tests, a tier Meta may add) counts as itself."""
    if messaging_limit is None:
        return None
    if messaging_limit in TIER_CAPS:
        return TIER_CAPS[messaging_limit]
    return int(messaging_limit) if messaging_limit.isdigit() else None


@dataclass(frozen=True, slots=True)
class Candidate:
    """One message of a group. `reaches` is whether it counts toward the messaging limit: a
    template to a recipient outside its service window with this sender."""

    id: uuid.UUID
    org_id: str
    to: str
    created_at: datetime
    reaches: bool = False


@dataclass(frozen=True, slots=True)
class SenderGroup:
    sender_id: uuid.UUID
    org_id: str | None
    """None for the shared sender, whose messages belong to many orgs."""
    messages_per_second: float
    waba_id: str | None = None
    cap: int | None = None
    """The WABA's messaging limit in recipients (None: no cap)."""
    rows: list[Candidate] = field(default_factory=list)

    def ordered(self) -> list[Candidate]:
        """Oldest first: the order in which every limit is consumed (ties by id: its integer
        orders as its bytes do, and is cheaper to read)."""
        return sorted(self.rows, key=lambda row: (row.created_at, row.id.int))


@dataclass(frozen=True, slots=True)
class Verdict:
    """`reason` is None when granted; else the first limit that refused it, and in how long
    that limit could grant it."""

    reason: Reason | None = None
    retry_after_s: float = 0.0

    @property
    def granted(self) -> bool:
        return self.reason is None


GRANTED = Verdict()


class AllGranted(Mapping[uuid.UUID, Verdict]):
    """The verdicts of a group whose every message was granted, the common case, without a
    dict of them built (a UUID's hash runs in Python, per message). Looked up only by the
    group's own ids."""

    __slots__ = ("_rows",)

    def __init__(self, rows: Sequence[Candidate]) -> None:
        self._rows = rows

    def __getitem__(self, key: uuid.UUID) -> Verdict:
        return GRANTED

    def __iter__(self) -> Iterator[uuid.UUID]:
        return (row.id for row in self._rows)

    def __len__(self) -> int:
        return len(self._rows)

    def __contains__(self, key: object) -> bool:
        return any(row.id == key for row in self._rows)
