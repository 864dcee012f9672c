"""What the rules find and what the notifiers announce."""

from __future__ import annotations

import uuid
from dataclasses import dataclass, field
from datetime import datetime
from typing import Any, Literal

Severity = Literal["warning", "critical"]
NoticeKind = Literal["firing", "resolved"]
Figure = int | float | str

SEVERITY_RANK: dict[str, int] = {"warning": 1, "critical": 2}

# The alert types of the contract (API.md), with the title a human reads.
TITLES: dict[str, str] = {
    "dlq_growth": "Dead-letter queue growth",
    "stuck_messages": "Stuck messages",
    "queue_depth": "Queue depth",
    "failure_rate": "Failure rate",
    "escalation": "Messages at the escalation attempt count",
    "oldest_message_age": "Oldest waiting message",
    "sender_paused": "Sender paused",
    "messaging_limit": "Messaging limit reached",
    "callback_endpoint_disabled": "Callback endpoint disabled",
}

# The subject of alerts that are about the whole service rather than one channel.
ALL = "all"


@dataclass(frozen=True, slots=True)
class Finding:
    """One condition a rule found true now. `figures` are flat values shown as fields;
    `report` is the DLQ report for the DLQ alert."""

    type: str
    subject: str
    severity: Severity
    summary: str
    figures: dict[str, Figure]
    report: dict[str, Any] | None = None

    @property
    def key(self) -> tuple[str, str]:
        return (self.type, self.subject)

    def details(self) -> dict[str, Any]:
        """What the alert row keeps, and GET /v1/alerts shows, as `details`."""
        details: dict[str, Any] = dict(self.figures)
        if self.report is not None:
            details["report"] = self.report
        return details


@dataclass(frozen=True, slots=True)
class Notice:
    """One notification to send: an alert firing (new, escalated, or a reminder after the
    cooldown) or resolved."""

    alert_id: uuid.UUID
    type: str
    subject: str
    severity: Severity
    kind: NoticeKind
    summary: str
    at: datetime
    first_fired_at: datetime
    figures: dict[str, Figure] = field(default_factory=dict)
    report: dict[str, Any] | None = None

    @property
    def title(self) -> str:
        return self.type if self.subject == ALL else f"{self.type} ({self.subject})"

    @property
    def label(self) -> str:
        """`CRITICAL`, `WARNING` or `RESOLVED`: the word a subject line starts with."""
        return "RESOLVED" if self.kind == "resolved" else self.severity.upper()

    @property
    def heading(self) -> str:
        return f"[wa-outbound] {self.label} {self.title}"
