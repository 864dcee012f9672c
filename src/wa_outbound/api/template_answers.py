"""The documented answers of the template and opt-out gates (queueing) and of the template and
consent-history routes. Imports nothing of `responses.py`, which adds `GATES` to its own."""

from __future__ import annotations

from typing import Any

from wa_outbound.api.openapi import Answer, example, invalid, success
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

BAD_WABA = invalid(
    "`waba_id` is longer than 64 characters",
    ("query", "waba_id"),
    "String should have at most 64 characters",
    "string_too_long",
)
TEMPLATE = {
    "waba_id": "102290129340398",
    "name": "order_update",
    "language": "en_US",
    "status": "APPROVED",
    "category": "UTILITY",
    "quality": "GREEN",
    "components": [{"type": "BODY", "text": "Your order {{1}} has shipped."}],
    "updated_at": "2026-12-02T08:00:00Z",
}
TEMPLATES: dict[int | str, Any] = {
    200: success(
        "The templates, by WABA, name and language",
        listed=example(
            None,
            {
                "items": [
                    TEMPLATE,
                    TEMPLATE | {"name": "promo_offer", "category": "MARKETING", "status": "PAUSED"},
                ]
            },
        ),
    )
}
SYNC: dict[int | str, Any] = {
    202: success(
        "The WABAs being read from Meta now, in the background",
        started=example(None, {"waba_ids": ["102290129340398"]}),
    )
}
CONSENT_EVENTS: dict[int | str, Any] = {
    200: success(
        "Every change, oldest first",
        history=example(
            None,
            {
                "items": [
                    {
                        "at": "2026-12-01T09:00:00Z",
                        "status": "granted",
                        "from_status": None,
                        "marketing_opt_out": False,
                        "from_marketing_opt_out": None,
                        "source": "signup-form",
                        "actor": "api_key:7c1e",
                    },
                    {
                        "at": "2026-12-02T18:30:00Z",
                        "status": "revoked",
                        "from_status": "granted",
                        "marketing_opt_out": False,
                        "from_marketing_opt_out": False,
                        "source": "keyword:STOP",
                        "actor": "webhook",
                    },
                ]
            },
        ),
    )
}
