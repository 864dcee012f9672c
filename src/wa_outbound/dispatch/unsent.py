"""Outcomes of claimed messages that are not sent: consent revoked since queuing, a sender that
is gone, a claim released (shutdown, or the senders could not be read)."""

from __future__ import annotations

import logging
from datetime import datetime, timedelta

from wa_outbound.dispatch.claims import Claimed
from wa_outbound.dispatch.outcomes import Outcome
from wa_outbound.dispatch.policy import CONSENT_REVOKED
from wa_outbound.logs import message_fields
from wa_outbound.phone import mask
from wa_outbound.status import Status
from wa_outbound.whatsapp.retry import ProviderError

log = logging.getLogger(__name__)

# A sender whose token this replica cannot decrypt: its messages are looked at again this late.
UNREADABLE_RETRY = timedelta(seconds=30)

NO_SENDER = ProviderError(
    code="no_sender",
    title="No sender",
    message="The message's sender no longer exists (the deployment has no shared sender).",
)


def consent_revoked(message: Claimed) -> Outcome:
    log.info(
        "consent revoked since queuing; not sent",
        extra=message_fields(
            message_id=message.id,
            org_id=message.org_id,
            attempt=message.attempt,
            error_code=CONSENT_REVOKED.code,
            to=mask(message.to),
        ),
    )
    return Outcome(message, Status.FAILED, "consent_revoked", error=CONSENT_REVOKED)


def released(message: Claimed, started: bool, now: datetime, reason: str = "shutdown") -> Outcome:
    """A claim given back unsent. One that never started gives its attempt back; one cut off
    mid-request (shutdown) keeps it (Meta may have received it) and is retried."""
    return Outcome(
        message,
        Status.RETRYING if started else Status(message.from_status),
        "released",
        next_attempt_at=now,
        give_back_attempt=not started,
        details={"reason": reason},
    )


def no_sender(message: Claimed) -> Outcome:
    """The message's sender is gone: the shared sender of a deployment that no longer has one
    (WA_PHONE_NUMBER_ID unset since it was queued). Failed and dead-lettered."""
    return Outcome(message, Status.FAILED, "failed", error=NO_SENDER, dead_lettered=True)
