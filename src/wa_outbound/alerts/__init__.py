"""Alerting: rules over the outbox, alert state, and the notifiers (log, email, Slack).

May import `dlq` (the report in a DLQ alert), `db` and the shared top-level modules.
"""

from wa_outbound.alerts.evaluator import AlertEvaluator, Evaluation
from wa_outbound.alerts.model import Finding, Notice

__all__ = ["AlertEvaluator", "Evaluation", "Finding", "Notice"]
