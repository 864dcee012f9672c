"""Prometheus metrics, one registry per app (tests build many apps; no global registry)."""

from __future__ import annotations

from prometheus_client import CollectorRegistry, Counter, Gauge, Histogram

from wa_outbound.status import (
    CHANNEL_WHATSAPP,
    META_STATUSES,
    RECEIPT_APPLIED,
    RECEIPT_IGNORED,
    RECEIPT_PENDING,
)

LATENCY_BUCKETS = (0.005, 0.01, 0.025, 0.05, 0.1, 0.25, 0.5, 1.0, 2.5, 5.0, 10.0, 30.0)
# Queue to acceptance spans the dispatcher's poll, backoff and quota waits: seconds to hours.
QUEUE_BUCKETS = (0.05, 0.1, 0.25, 0.5, 1.0, 2.5, 5.0, 10.0, 30.0, 60.0, 300.0, 900.0, 3600.0)
BATCH_BUCKETS = (1, 2, 5, 10, 25, 50, 100, 250, 500, 1000, 2500)
# The tables retention deletes from (lifecycle.retention).
RETENTION_TABLES = (
    "outbound_message",
    "message_event",
    "message_wamid",
    "callback_event",
    "callback_delivery",
    "webhook_event",
)
# The webhook fields routed by number (messages) or by WABA (the management ones).
ROUTED_FIELDS = (
    "messages",
    "account_update",
    "phone_number_quality_update",
    "business_capability_update",
)

CALLBACK_RESULTS = ("succeeded", "retried", "failed", "gone", "url_not_allowed", "released")


class Metrics:
    """Every metric the service exports. Label values are bounded: no phone numbers or ids
    other than the organisation's."""

    def __init__(self) -> None:
        self.registry = CollectorRegistry(auto_describe=True)
        r = self.registry
        self.queue_depth = Gauge(
            "outbound_message_queue_depth",
            "Messages waiting to be sent, per organisation",
            ["org_id"],
            registry=r,
        )
        self.dlq_size = Gauge(
            "outbound_message_dlq_size", "Messages in the dead-letter queue", registry=r
        )
        self.sent = Counter(
            "outbound_message_sent_total",
            "Messages accepted by the provider",
            ["channel"],
            registry=r,
        )
        self.duplicate_sends = Counter(
            "outbound_duplicate_sends_total",
            "Sends accepted by the provider after their claim was lost (another replica may "
            "have sent the message too); each is on its message's timeline",
            ["channel"],
            registry=r,
        )
        self.failed = Counter(
            "outbound_message_failed_total",
            "Messages that failed, by provider error code",
            ["channel", "error_code"],
            registry=r,
        )
        self.alert_email_sent = Counter(
            "outbound_alert_email_sent_total", "Alert emails sent", ["severity"], registry=r
        )
        self.alert_slack_sent = Counter(
            "outbound_alert_slack_sent_total",
            "Alert Slack messages sent",
            ["severity"],
            registry=r,
        )
        self.alert_notify_failures = Counter(
            "outbound_alert_notification_failures_total",
            "Alert notifications that failed",
            ["notifier"],
            registry=r,
        )
        self.send_latency = Histogram(
            "outbound_send_latency_seconds",
            "Time of one send request to the provider",
            ["channel", "outcome"],
            buckets=LATENCY_BUCKETS,
            registry=r,
        )
        self.sender_sends = Counter(
            "outbound_sender_sends_total",
            "Send requests to Meta per sender (its phone_number_id), by result",
            ["sender", "result"],
            registry=r,
        )
        self.webhook_statuses = Counter(
            "outbound_webhook_statuses_total",
            "Statuses received by webhook, by outcome",
            ["status", "outcome"],
            registry=r,
        )
        self.webhook_pending_dropped = Counter(
            "outbound_webhook_pending_dropped_total",
            "Pending statuses dropped because their wamid stayed unknown too long",
            ["status"],
            registry=r,
        )
        self.webhook_unused = Counter(
            "outbound_webhook_unused_total",
            "Webhook parts recorded but not used (other fields, value-level errors, malformed)",
            ["kind"],
            registry=r,
        )
        self.webhook_unrouted = Counter(
            "outbound_webhook_unrouted_total",
            "Webhook changes for a business number or WABA that no sender has (stored, not "
            "applied)",
            ["field"],
            registry=r,
        )
        self.sender_paused = Gauge(
            "outbound_sender_paused",
            "1 while a sender is paused (by its phone_number_id), 0 while it sends",
            ["sender"],
            registry=r,
        )
        self.webhook_processing_failures = Counter(
            "outbound_webhook_processing_failures_total",
            "Stored webhook bodies whose processing failed (the sweep retries them)",
            registry=r,
        )
        for status in ("sent", "delivered", "read", "failed", "other"):
            for outcome in ("applied", "ignored", "pending"):
                self.webhook_statuses.labels(status=status, outcome=outcome)
        self.ratelimit_decisions = Counter(
            "outbound_ratelimit_decisions_total",
            "Rate-limiter decisions",
            ["backend", "result"],
            registry=r,
        )
        self.ratelimit_backend = Gauge(
            "outbound_ratelimit_backend",
            "1 for the backend currently deciding",
            ["backend"],
            registry=r,
        )
        for backend in ("redis", "database"):
            self.ratelimit_backend.labels(backend=backend)
        self.sender_throttled = Counter(
            "outbound_sender_throttled_total",
            "Messages a limit held back at claim time, by sender (its phone_number_id) and limit",
            ["sender", "reason"],
            registry=r,
        )
        self.sent.labels(channel="WHATSAPP")
        self.duplicate_sends.labels(channel="WHATSAPP")

        # Dispatcher, queue and latency metrics of the observability issue.
        self.enqueue_to_accepted = Histogram(
            "outbound_message_enqueue_to_accepted_seconds",
            "From queuing a message to the provider accepting it, waits included",
            ["channel"],
            buckets=QUEUE_BUCKETS,
            registry=r,
        )
        self.oldest_queued_age = Gauge(
            "outbound_message_oldest_queued_age_seconds",
            "How long the oldest due message (QUEUED or RETRYING) has waited; 0 when none",
            registry=r,
        )
        self.dispatcher_claims = Counter(
            "outbound_dispatcher_claims_total",
            "Claim statements run by the dispatcher, by whether they found messages",
            ["result"],
            registry=r,
        )
        self.dispatcher_batch_size = Histogram(
            "outbound_dispatcher_batch_size",
            "Messages per claimed batch (claims that found none are not observed)",
            buckets=BATCH_BUCKETS,
            registry=r,
        )
        self.retention_deleted = Counter(
            "outbound_retention_deleted_total",
            "Rows deleted by retention (WA_RETENTION_DAYS), by table",
            ["table"],
            registry=r,
        )
        # Callbacks to the organisations' endpoints (wa_outbound.callbacks).
        self.callback_deliveries = Counter(
            "outbound_callback_deliveries_total",
            "Callback delivery attempts, by result (succeeded, retried, failed, gone, "
            "url_not_allowed, released)",
            ["result"],
            registry=r,
        )
        self.callback_pending = Gauge(
            "outbound_callback_pending",
            "Callback deliveries pending (due or waiting for a retry or an endpoint)",
            registry=r,
        )
        self.callback_latency = Histogram(
            "outbound_callback_delivery_seconds",
            "Time of one callback delivery attempt, by whether it got a 2xx",
            ["outcome"],
            buckets=LATENCY_BUCKETS,
            registry=r,
        )
        self._create_children()

    def _create_children(self) -> None:
        """Every label set whose values are known in advance exists from start-up at zero, so
        `rate()` and dashboards see a series before the first event."""
        for outcome in ("accepted", "error"):
            self.send_latency.labels(channel=CHANNEL_WHATSAPP, outcome=outcome)
        self.enqueue_to_accepted.labels(channel=CHANNEL_WHATSAPP)
        for status in (*META_STATUSES, "other"):
            self.webhook_pending_dropped.labels(status=status)
            for outcome in (RECEIPT_APPLIED, RECEIPT_IGNORED, RECEIPT_PENDING):
                self.webhook_statuses.labels(status=status, outcome=outcome)
        for severity in ("warning", "critical", "resolved"):
            self.alert_email_sent.labels(severity=severity)
            self.alert_slack_sent.labels(severity=severity)
        for notifier in ("email", "slack", "log"):
            self.alert_notify_failures.labels(notifier=notifier)
        for backend in ("redis", "database"):
            for result in ("granted", "partial", "denied"):
                self.ratelimit_decisions.labels(backend=backend, result=result)
        for result in ("claimed", "empty"):
            self.dispatcher_claims.labels(result=result)
        for name in ROUTED_FIELDS:
            self.webhook_unrouted.labels(field=name)
        for table in RETENTION_TABLES:
            self.retention_deleted.labels(table=table)
        for result in CALLBACK_RESULTS:
            self.callback_deliveries.labels(result=result)
        for outcome in ("success", "error"):
            self.callback_latency.labels(outcome=outcome)
