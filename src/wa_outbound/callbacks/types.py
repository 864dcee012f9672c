"""The event types an endpoint can subscribe to: the one list the API validates against and the
emission writes."""

from __future__ import annotations

from typing import Literal, get_args

EventType = Literal[
    "message.accepted",
    "message.sent",
    "message.delivered",
    "message.read",
    "message.failed",
    "message.cancelled",
    "message.received",
    "consent.changed",
    "sender.updated",
    "template.updated",
]
EVENT_TYPES: tuple[str, ...] = get_args(EventType)


def subscribed(events: list[str] | None, event_type: str) -> bool:
    """Whether an endpoint with these `events` is sent `event_type` (null: every type, future
    ones included)."""
    return events is None or event_type in events
