"""What a user's own words and Meta's preference reports do to their consent: an inbound text
that is exactly an opt-out keyword (trimmed, case-folded) revokes it, an opt-in keyword grants
it (`source`: `keyword:<WORD>`); a `user_preferences` report of `marketing_messages` sets or
clears `marketing_opt_out`. A repeat that changes nothing writes nothing."""

from __future__ import annotations

from collections.abc import Iterable
from dataclasses import dataclass, field
from typing import Literal

from sqlalchemy.ext.asyncio import AsyncConnection

from wa_outbound.config import OPT_IN_KEYWORDS, OPT_OUT_KEYWORDS, Settings
from wa_outbound.contacts.consents import GRANTED, REVOKED, set_consent

MARKETING = "marketing_messages"
PREFERENCE_SOURCE = "meta:user_preferences"
ACTOR = "webhook"


@dataclass(frozen=True)
class Keywords:
    """The opt-out and opt-in keywords, by their case-folded form."""

    opt_out: dict[str, str] = field(default_factory=dict)
    opt_in: dict[str, str] = field(default_factory=dict)

    @classmethod
    def of(cls, opt_out: Iterable[str], opt_in: Iterable[str]) -> Keywords:
        return cls(
            {word.strip().casefold(): word.strip() for word in opt_out if word.strip()},
            {word.strip().casefold(): word.strip() for word in opt_in if word.strip()},
        )

    @classmethod
    def from_settings(cls, settings: Settings) -> Keywords:
        return cls.of(settings.opt_out_keywords, settings.opt_in_keywords)

    def match(self, text: str | None) -> tuple[Literal["granted", "revoked"], str] | None:
        """(the consent status a text asks for, the keyword), or None for any other text."""
        if not text:
            return None
        said = text.strip().casefold()
        if said in self.opt_out:
            return REVOKED, self.opt_out[said]
        if said in self.opt_in:
            return GRANTED, self.opt_in[said]
        return None


DEFAULT_KEYWORDS = Keywords.of(OPT_OUT_KEYWORDS, OPT_IN_KEYWORDS)


async def apply_keyword(
    conn: AsyncConnection,
    *,
    org_id: str,
    phone: str,
    status: Literal["granted", "revoked"],
    word: str,
) -> None:
    await set_consent(
        conn,
        org_id=org_id,
        phone=phone,
        status=status,
        source=f"keyword:{word}",
        actor=ACTOR,
        only_if_changed=True,
    )


async def apply_preference(
    conn: AsyncConnection, *, org_id: str, phone: str, category: str, value: str
) -> bool:
    """A `user_preferences` report; whether it was one this service acts on."""
    choice = value.strip().lower()
    if category != MARKETING or choice not in ("stop", "resume"):
        return False
    await set_consent(
        conn,
        org_id=org_id,
        phone=phone,
        status=None,
        source=PREFERENCE_SOURCE,
        actor=ACTOR,
        marketing_opt_out=choice == "stop",
        only_if_changed=True,
    )
    return True
