"""The documented answers of the template and opt-out gates (queueing) and of the template and
consent-history routes. Imports nothing of `responses.py`, which adds `GATES` to its own."""

from __future__ import annotations

from wa_outbound.api.openapi import Answer
from wa_outbound.errors import MarketingOptedOut, NotFound, TemplateNotApproved, TemplateNotFound

GATES = (
    Answer(
        TemplateNotApproved,
        "the template is known for the sender's WABA with a status other than `APPROVED`",
        details={"status": "PAUSED", "name": "order_update", "language": "en_US"},
    ),
    Answer(
        TemplateNotFound,
        "the sender's WABA has been read from Meta and has no template of this name and "
        "language (Meta was asked once more)",
        details={"name": "order_update", "language": "en_US"},
    ),
    Answer(
        MarketingOptedOut,
        "a `MARKETING` template to a recipient who stopped marketing messages",
        details={"phone_suffix": "5678"},
    ),
)
NO_HISTORY = Answer(
    NotFound,
    "nothing was ever recorded for this number",
    "no consent recorded for this phone number",
)
UNKNOWN_WABA = Answer(
    NotFound,
    "`waba_id` is not a WABA of the organisation's senders, or `X-Org-Id` names no organisation",
    "WABA not found",
)
