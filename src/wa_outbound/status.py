"""Message statuses, their ranks, and which transitions each part of the service may make; the
message kinds."""

from __future__ import annotations

from enum import StrEnum


class Status(StrEnum):
    QUEUED = "QUEUED"
    SENDING = "SENDING"
    RETRYING = "RETRYING"
    ACCEPTED = "ACCEPTED"
    SENT = "SENT"
    DELIVERED = "DELIVERED"
    READ = "READ"
    FAILED = "FAILED"
    CANCELLED = "CANCELLED"


# Ranks order the statuses that Meta reports after it accepted a send. A status update applies
# only when it raises the rank, so duplicates and reordered webhooks never move a message back.
RANK: dict[Status, int] = {
    Status.ACCEPTED: 1,
    Status.SENT: 2,
    Status.DELIVERED: 3,
    Status.READ: 4,
}

CLAIMABLE: tuple[Status, ...] = (Status.QUEUED, Status.RETRYING)
CANCELLABLE: tuple[Status, ...] = (Status.QUEUED, Status.RETRYING)
# Statuses a message is still waiting in (counted as queue depth).
PENDING: tuple[Status, ...] = (Status.QUEUED, Status.RETRYING, Status.SENDING)

CHANNEL_WHATSAPP = "WHATSAPP"

# What a message holds (its `kind`), and the key of a stored payload that keeps the wamid it
# replies to: ours, never the caller's (every kind's object refuses keys it does not know), and
# neither shown nor sent as part of the object.
KINDS = ("template", "text", "media", "interactive")
REPLY_TO = "_reply_to"

# Meta's delivery statuses that the webhook receiver applies, and what became of each one
# (the labels of the webhook status metrics).
META_STATUSES = ("sent", "delivered", "read", "failed")
RECEIPT_APPLIED, RECEIPT_IGNORED, RECEIPT_PENDING = "applied", "ignored", "pending"
