"""Consent changes a webhook carries, each applied for the organisation that owns the number it
came to: opt-out and opt-in keywords in inbound text messages, and Meta's `user_preferences`.

The shared number's messages belong to the organisation whose message they reply to (as for
`message.received`); a preference report has no such reply, so on the shared number it changes
nothing. Button replies and messages without a phone number (`from`) change nothing.
"""

from __future__ import annotations

from sqlalchemy.ext.asyncio import AsyncConnection

from wa_outbound.contacts import keywords as words
from wa_outbound.contacts.keywords import Keywords
from wa_outbound.webhooks import routing
from wa_outbound.webhooks.payload import Inbound, Preference, WebhookContent
from wa_outbound.webhooks.received import replied_to
from wa_outbound.webhooks.routing import Routes


async def apply_consent_changes(
    conn: AsyncConnection,
    inbound: list[Inbound],
    preferences: list[Preference],
    routes: Routes,
    keywords: Keywords,
) -> int:
    """Apply them in order; how many preferences came to a number no sender has."""
    said = [
        (item, found)
        for item in inbound
        if item.type == "text" and item.phone and (found := keywords.match(item.text))
    ]
    if said:
        replies = await replied_to(conn, [item for item, _ in said], routes)
        for item, (status, word) in said:
            owner = routes.live.get(item.phone_number_id or "")
            if owner is None or item.phone is None:
                continue
            if owner.is_shared:
                context = replies.get((item.phone_number_id or "", item.context_id or ""))
                org_id = context[1] if context is not None else None
            else:
                org_id = owner.org_id
            if org_id is not None:
                await words.apply_keyword(
                    conn, org_id=org_id, phone=item.phone, status=status, word=word
                )
    if not preferences:
        return 0
    numbers = WebhookContent(numbers=[p.phone_number_id for p in preferences])
    owners = await routing.resolve(conn, numbers)
    unrouted = 0
    for preference in preferences:
        owner = owners.live.get(preference.phone_number_id or "")
        if not owners.knows(preference.phone_number_id):
            unrouted += 1
        if owner is None or owner.org_id is None:
            continue
        await words.apply_preference(
            conn,
            org_id=owner.org_id,
            phone=preference.phone,
            category=preference.category,
            value=preference.value,
        )
    return unrouted
