"""The dead-letter queue report: what is in the DLQ, why, and what to do about it."""

from __future__ import annotations

from datetime import datetime, timedelta
from typing import Any

import sqlalchemy as sa
from sqlalchemy.ext.asyncio import AsyncConnection

from wa_outbound.db import dlq_counts as counts
from wa_outbound.db.schema import outbound_message
from wa_outbound.status import CHANNEL_WHATSAPP

m = outbound_message.c

WINDOW_HOURS = 24
TOP_CODES = 10
UNKNOWN_CODE = "unknown"

# Keyed by Meta's error code (never by title or HTTP status), as the retry policy is.
ADVICE: dict[str, str] = {
    "0": "authentication failed: check WA_ACCESS_TOKEN and the app's permissions",
    "3": "the app lacks a permission: grant whatsapp_business_messaging to the token",
    "10": "permission denied: check the token's permissions and the phone number's access",
    "190": "the access token is invalid or expired: rotate WA_ACCESS_TOKEN, then replay",
    "100": "invalid parameter: fix the request (template components, phone format), then replay",
    "131005": "access denied: check the token's permissions for this phone number",
    "131008": "a required parameter is missing: fix the template's components, then replay",
    "131009": "a parameter value is invalid: fix the template's components, then replay",
    "131021": "the recipient is the sender's own number: do not send to it",
    "131026": "the recipient cannot receive this message (not on WhatsApp, old app, or "
    "terms not accepted): do not replay; reach them another way",
    "131031": "the business account is locked: resolve it in WhatsApp Manager",
    "131047": "the 24-hour service window is closed: send a template instead of text",
    "131048": "spam rate limit (quality enforcement): pause sending, review content and opt-ins",
    "131049": "Meta chose not to deliver (ecosystem engagement): do not resend within 24 hours",
    "131050": "the user stopped marketing messages from you: do not replay",
    "131051": "unsupported message type: change the message type",
    "131056": "pair rate limit: too many messages to one recipient; space them out",
    "131064": "quality enforcement: pause sending, review content and opt-ins before resuming",
    "130429": "throughput limit reached: lower messages_per_second or ask Meta for a higher tier",
    "130472": "the user is part of a Meta experiment: do not replay",
    "132000": "the template's parameter count does not match: fix the components",
    "132001": "the template does not exist in this language: check the template name and "
    "language, and that it is approved",
    "132005": "the translated template text is too long: shorten the parameters",
    "132007": "the template violates a policy: edit it in WhatsApp Manager",
    "132012": "template parameter format mismatch: fix the parameter types",
    "132015": "the template is paused for low quality: fix it or use another",
    "132016": "the template is disabled: use another template",
    "133010": "the phone number is not registered: register it with the Cloud API",
    "368": "the account is restricted for policy violations: see WhatsApp Manager",
    "consent_revoked": "the recipient revoked consent: do not replay",
    "lease_expired": "the sending process died on the message's last attempt: check the "
    "service's restarts and logs, then replay",
}
GENERIC_ADVICE = "see Meta's error code reference and the messages' timelines before replaying"


# Our own codes for failures Meta gave no code for (see wa_outbound.whatsapp.retry.ProviderError).
_SERVER_ADVICE = (
    "Meta's API (or the network to it) kept failing until the attempts ran out: check Meta's "
    "status page and the service's connectivity, then replay"
)


def recommendation(code: str, title: str | None) -> str:
    """One line of advice for an error code, naming the code and its title."""
    label = f"{code} ({title})" if title else code
    advice = ADVICE.get(code)
    if advice is None and (code.startswith("http_5") or code == "transport_error"):
        advice = _SERVER_ADVICE
    return f"{label}: {advice or GENERIC_ADVICE}"


async def report(conn: AsyncConnection, *, org_id: str | None, now: datetime) -> dict[str, Any]:
    """The body of GET /v1/dlq/report; `org_id=None` covers every organisation.

    Both reads stay flat with the size of the outbox and of the DLQ: the totals are the
    counters' rows (db/dlq_counts.py), the top codes a range of the dead-letter indexes bounded by
    `failed_at` (the last 24 hours' failures)."""
    by_channel = {CHANNEL_WHATSAPP: 0} | await counts.by_channel(conn, org_id=org_id)
    scope: list[sa.ColumnElement[bool]] = [m.dead_lettered.is_(True)]
    if org_id is not None:
        scope.append(m.org_id == org_id)

    code = sa.func.coalesce(m.error_code, UNKNOWN_CODE)
    count = sa.func.count().label("n")
    rows = await conn.execute(
        sa.select(code.label("code"), sa.func.max(m.error_title).label("title"), count)
        .where(*scope, m.failed_at >= now - timedelta(hours=WINDOW_HOURS))
        .group_by(code)
        .order_by(count.desc(), code)
        .limit(TOP_CODES)
    )
    top = [{"code": r.code, "title": r.title, "count": int(r.n)} for r in rows]
    return {
        "total_failed": sum(by_channel.values()),
        "by_channel": by_channel,
        "top_error_codes": top,
        "window_hours": WINDOW_HOURS,
        "recommendations": [recommendation(item["code"], item["title"]) for item in top],
    }
