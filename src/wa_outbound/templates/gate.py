"""The registry as a gate, when a message is queued and when it is claimed.

Queueing: a template the registry knows for the sender's WABA with a status other than
APPROVED is refused (`template_not_approved`); a name and language it does not know, once the
WABA has been read from Meta, is `template_not_found` (the caller asks Meta for that name once
first, see `outbox.gated`); a WABA never read is advisory. A MARKETING template to a recipient
who stopped marketing messages is `marketing_opted_out`.

Claiming: `screen` says what becomes of a due template message whose template changed while it
waited: PAUSED waits, any other status but APPROVED fails, and so does a marketing template to
a recipient who opted out since.
"""

from __future__ import annotations

import uuid
from collections.abc import Collection
from dataclasses import dataclass

import sqlalchemy as sa
from sqlalchemy.ext.asyncio import AsyncConnection

from wa_outbound.contacts.consents import MARKETING_OPTED_OUT, opted_out_phones
from wa_outbound.db.schema import sender
from wa_outbound.db.template_schema import template, template_sync
from wa_outbound.errors import (
    MarketingOptedOut,
    ServiceError,
    TemplateNotApproved,
    TemplateNotFound,
)
from wa_outbound.templates.registry import APPROVED, MARKETING, PAUSED

__all__ = ["MARKETING_OPTED_OUT", "Asked", "TemplateKey", "refusals", "screen", "unknown"]

TemplateKey = tuple[str, str, str]  # (waba_id, name, language)
t, ts = template.c, template_sync.c


@dataclass(frozen=True, slots=True)
class Asked:
    """A template message being queued: its position in the call, recipient and sender."""

    index: int
    to: str
    name: str
    language: str
    sender_id: uuid.UUID


async def refusals(
    conn: AsyncConnection,
    *,
    org_id: str,
    asked: list[Asked],
    advisory: Collection[TemplateKey] = (),
) -> dict[int, ServiceError]:
    """The refused messages among `asked`, by index. `advisory`: templates Meta could not be
    asked about just now, accepted although their WABA was synced."""
    if not asked:
        return {}
    wabas = await _wabas(conn, {a.sender_id for a in asked})
    keys = {(wabas[a.sender_id], a.name, a.language) for a in asked if wabas.get(a.sender_id)}
    if not keys:
        return {}
    known = await conn.execute(
        sa.select(t.waba_id, t.name, t.language, t.status, t.category).where(
            sa.tuple_(t.waba_id, t.name, t.language).in_(sorted(keys))
        )
    )
    rows = {(r.waba_id, r.name, r.language): (r.status, r.category) for r in known}
    synced = set(
        (
            await conn.execute(
                sa.select(ts.waba_id).where(
                    ts.waba_id.in_({key[0] for key in keys}), ts.synced_at.is_not(None)
                )
            )
        ).scalars()
    )
    marketing = {
        a.to
        for a in asked
        if rows.get((wabas.get(a.sender_id) or "", a.name, a.language), ("", ""))[1] == MARKETING
    }
    stopped = await opted_out_phones(conn, org_id=org_id, phones=marketing)
    refused: dict[int, ServiceError] = {}
    for a in asked:
        waba_id = wabas.get(a.sender_id)
        if not waba_id:
            continue
        key = (waba_id, a.name, a.language)
        names = {"name": a.name, "language": a.language}
        if key in rows:
            status, category = rows[key]
            if status != APPROVED:
                refused[a.index] = TemplateNotApproved(status=status, **names)
            elif category == MARKETING and a.to in stopped:
                refused[a.index] = MarketingOptedOut(phone_suffix=a.to[-4:])
        elif waba_id in synced and key not in advisory:
            refused[a.index] = TemplateNotFound(waba_id=waba_id, **names)
    return refused


async def _wabas(conn: AsyncConnection, sender_ids: set[uuid.UUID]) -> dict[uuid.UUID, str | None]:
    rows = await conn.execute(
        sa.select(sender.c.id, sender.c.waba_id).where(sender.c.id.in_(sender_ids))
    )
    return {row.id: row.waba_id for row in rows}


def unknown(errors: Collection[ServiceError | None]) -> set[TemplateKey]:
    """The templates these refusals did not find: what Meta is asked about once."""
    return {
        (e.details["waba_id"], e.details["name"], e.details["language"])
        for e in errors
        if isinstance(e, TemplateNotFound)
    }


# At claim time -------------------------------------------------------------------------------

TEMPLATE_DISABLED = "template_disabled"
TEMPLATE_NOT_APPROVED = "template_not_approved"


def screen(status: str | None, opted_out: bool) -> str | None:
    """What a due template message's registry entry says: None (send it), `template_paused`
    (it waits), or the code it fails with."""
    if status is None or status == APPROVED:
        return MARKETING_OPTED_OUT if opted_out else None
    if status == PAUSED:
        return "template_paused"
    return TEMPLATE_DISABLED if status == "DISABLED" else TEMPLATE_NOT_APPROVED
