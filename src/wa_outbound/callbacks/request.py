"""The request of one attempt: the event's body and its headers, signed for this attempt."""

from __future__ import annotations

from collections.abc import Callable
from datetime import datetime

from wa_outbound.callbacks import signing
from wa_outbound.callbacks.claims import Claimed
from wa_outbound.callbacks.transport import Request
from wa_outbound.events.outgoing import body


def body_of(delivery: Claimed) -> bytes:
    """`{"id", "type", "timestamp", "data"}`: the same bytes on every attempt of the event."""
    return body(
        event_id=delivery.event_id,
        seq=delivery.event_seq,
        type=delivery.event_type,
        occurred_at=delivery.occurred_at,
        data=delivery.data,
        message_id=delivery.message_id,
    )


def secrets_of(
    delivery: Claimed, decrypt: Callable[[str], str], now: Callable[[], datetime]
) -> list[str]:
    """The secrets that sign now: the current one, and the previous one during a rotation (the
    clock is read only then)."""
    endpoint = delivery.endpoint
    secrets = [decrypt(endpoint.secret)]
    until = endpoint.previous_secret_until
    if endpoint.previous_secret is not None and until is not None and until > now():
        secrets.append(decrypt(endpoint.previous_secret))
    return secrets


def request_of(
    delivery: Claimed, *, decrypt: Callable[[str], str], now: Callable[[], datetime], timestamp: int
) -> Request:
    """The attempt's request; raises crypto.UndecryptableSecret when no key opens a secret."""
    content = body_of(delivery)
    headers = signing.headers(
        secrets_of(delivery, decrypt, now),
        webhook_id=str(delivery.event_id),
        timestamp=timestamp,
        body=content,
    )
    return Request(delivery.endpoint.url, content, headers)
