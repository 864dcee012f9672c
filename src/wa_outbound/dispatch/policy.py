"""From the result of one send to the message's next state (pure, apart from its log line)."""

from __future__ import annotations

import logging
from datetime import datetime, timedelta

from wa_outbound.dispatch.claims import Claimed
from wa_outbound.dispatch.outcomes import Outcome
from wa_outbound.logs import message_fields
from wa_outbound.phone import mask
from wa_outbound.status import Status
from wa_outbound.whatsapp.provider import SendResult
from wa_outbound.whatsapp.retry import (
    ProviderError,
    Verdict,
    backoff_s,
    classify,
    pause_reason,
)

log = logging.getLogger(__name__)

SEND_UNKNOWN = "send_unknown"
CONSENT_REVOKED = ProviderError(
    code="consent_revoked",
    title="Consent revoked",
    message="The recipient revoked consent after the message was queued; it was not sent.",
)


def outcome_of(
    message: Claimed,
    result: SendResult,
    *,
    now: datetime,
    base_s: float,
    max_s: float,
    stored_token: str | None = None,
    reconcile_s: float = 60.0,
) -> Outcome:
    """ACCEPTED with the wamid; back to waiting, its attempt given back, when the error shows
    its sender cannot send (the sender is paused, see outcomes.py); RETRYING after a backoff; or
    FAILED and dead-lettered when the error is permanent or the attempts are used up.

    `stored_token`: the sender's token as stored when the send used it (None: not known, or
    the shared sender's), so a token error pauses the sender only if it still has that token.

    A send whose outcome is unknown (Meta may have it) waits `reconcile_s` for a status webhook
    naming it (`send_unknown`) before it is sent again; on its last attempt it fails as any
    other, and a status naming it later still reconciles it (receipts/reconcile.py)."""
    if result.wamid is not None:
        return Outcome(message, Status.ACCEPTED, "accepted", wamid=result.wamid)
    error = result.error or ProviderError(code="unknown", title="Unknown", message="")
    reason = pause_reason(error)
    if reason is not None:
        return _sender_paused(message, error, reason, now, stored_token)
    verdict = classify(error)
    log.info(
        "send failed",
        extra=message_fields(
            message_id=message.id,
            org_id=message.org_id,
            attempt=message.attempt,
            error_code=error.code,
            verdict=verdict.value,
            to=mask(message.to),
        ),
    )
    if error.ambiguous and message.attempt < message.max_attempts:
        until = now + timedelta(seconds=reconcile_s)
        return Outcome(
            message,
            Status.RETRYING,
            SEND_UNKNOWN,
            error=error,
            retryable=True,
            next_attempt_at=until,
            waiting_reason=SEND_UNKNOWN,
            details={"waiting_reason": SEND_UNKNOWN},
        )
    if verdict is Verdict.PERMANENT or message.attempt >= message.max_attempts:
        event = "failed" if verdict is Verdict.PERMANENT else "attempts_exhausted"
        # Exhausted on a retryable error: the error says so, and a replay may well succeed.
        return Outcome(
            message,
            Status.FAILED,
            event,
            error=error,
            dead_lettered=True,
            retryable=verdict is not Verdict.PERMANENT,
        )
    delay_s = backoff_s(
        message.attempt,
        base_s=base_s,
        max_s=max_s,
        verdict=verdict,
        retry_after_s=error.retry_after_s,
    )
    return Outcome(
        message,
        Status.RETRYING,
        "retry_scheduled",
        error=error,
        retryable=True,
        next_attempt_at=now + timedelta(seconds=delay_s),
    )


def _sender_paused(
    message: Claimed, error: ProviderError, reason: str, now: datetime, stored_token: str | None
) -> Outcome:
    log.warning(
        "send refused for its sender; the sender is paused",
        extra=message_fields(
            message_id=message.id,
            org_id=message.org_id,
            attempt=message.attempt,
            error_code=error.code,
            reason=reason,
            sender_id=str(message.sender_id),
        ),
    )
    # Not the message's fault: it waits as it was before the claim, its attempt given back,
    # and is not claimed while its sender is paused.
    return Outcome(
        message,
        Status(message.from_status),
        "sender_paused",
        error=error,
        next_attempt_at=now,
        give_back_attempt=True,
        pause=reason,
        stored_token=stored_token,
        details={"reason": reason, "sender_id": str(message.sender_id)},
    )
