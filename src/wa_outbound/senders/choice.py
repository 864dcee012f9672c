"""Which sender a new message goes from: `from` (a sender id or its display_phone_number), else
the org's default sender, else, for an org with no sender of its own, the shared sender."""

from __future__ import annotations

import uuid
from dataclasses import dataclass

from sqlalchemy.ext.asyncio import AsyncConnection

from wa_outbound.db.schema import SHARED_SENDER_ID
from wa_outbound.errors import NoSender, UnknownSender
from wa_outbound.senders import store
from wa_outbound.senders.store import Sender


def digits(number: str) -> str:
    return "".join(ch for ch in number if ch.isdigit())


def as_uuid(value: str) -> uuid.UUID | None:
    try:
        return uuid.UUID(value)
    except ValueError:
        return None


@dataclass(frozen=True, slots=True)
class Choice:
    """An org's senders, read once per enqueue call."""

    own: list[Sender]
    shared_available: bool

    def paused(self, sender_id: uuid.UUID) -> bool:
        """Whether one of the org's own senders is paused: its new messages wait from the start,
        marked so (the claim passes over marked messages without looking at them)."""
        return any(c.id == sender_id and c.paused for c in self.own)

    def pick(self, wanted: str | None) -> uuid.UUID:
        if wanted is None:
            for candidate in self.own:
                if candidate.is_default:
                    return candidate.id
            if self.own:  # cannot happen while every org with senders has a default
                return self.own[0].id
            if self.shared_available:
                return SHARED_SENDER_ID
            raise NoSender()
        wanted_id = as_uuid(wanted)
        wanted_digits = digits(wanted)
        for candidate in self.own:
            if candidate.id == wanted_id:
                return candidate.id
            shown = candidate.display_phone_number
            if wanted_id is None and wanted_digits and shown and digits(shown) == wanted_digits:
                return candidate.id
        raise UnknownSender(sender=wanted)


async def load(conn: AsyncConnection, org_id: str, *, shared_available: bool) -> Choice:
    return Choice(await store.of_org(conn, org_id), shared_available)
