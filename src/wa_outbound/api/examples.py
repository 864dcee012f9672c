"""Example bodies of the OpenAPI document, taken from the sandbox's answers.

Request bodies are named examples (a body's `openapi_examples`; none holds a null, which
FastAPI would drop); answers are plain values that `api/responses.py` names. The tests check
every example against the document's own schemas.
"""

from __future__ import annotations

from typing import Any

from fastapi.openapi.models import Example

from wa_outbound.api.kind_examples import SEND_SESSION

ORG_ID = "acme"
SENDER_ID = "5f0c2a8e-7d1b-4c3e-9a6f-2b8d4e1c7a90"
PHONE = "+33612345678"
WAMID = "wamid.SANDBOX.ea5ef54ed0b4480895b541646b566f7b"
TEMPLATE = {
    "name": "order_update",
    "language": "en_US",
    "components": [{"type": "body", "parameters": [{"type": "text", "text": "42"}]}],
}
# As the message object echoes it: every component's optional fields present.
STORED_TEMPLATE = {
    **TEMPLATE,
    "components": [
        {
            "type": "body",
            "sub_type": None,
            "index": None,
            "parameters": [{"type": "text", "text": "42"}],
        }
    ],
}


def message(**changes: Any) -> dict[str, Any]:
    """A template message as the API answers it: queued, unless `changes` say otherwise."""
    return {
        "id": "937730a7-1644-4f8a-a7cb-ecc5ac5ed725",
        "org_id": ORG_ID,
        "channel": "WHATSAPP",
        "to": PHONE,
        "kind": "template",
        "template": STORED_TEMPLATE,
        "text": None,
        "media": None,
        "interactive": None,
        "reply_to": None,
        "metadata": {"order_id": "42"},
        "status": "QUEUED",
        "attempts": 0,
        "max_attempts": 5,
        "next_attempt_at": "2026-12-02T08:16:36.816656Z",
        "provider_message_id": None,
        "error": None,
        "dead_lettered": False,
        "created_at": "2026-12-02T08:16:36.816656Z",
        "updated_at": "2026-12-02T08:16:36.816656Z",
        "sent_at": None,
        "delivered_at": None,
        "read_at": None,
        "failed_at": None,
        "sender_id": SENDER_ID,
        "waiting_reason": None,
    } | changes


QUEUED = message()
READ = message(
    status="READ",
    attempts=1,
    provider_message_id=WAMID,
    updated_at="2026-12-02T08:16:37.606773Z",
    sent_at="2026-12-02T08:16:37.103750Z",
    delivered_at="2026-12-02T08:16:37.352871Z",
    read_at="2026-12-02T08:16:37.606773Z",
)
DEAD_LETTERED = message(
    id="0b8fa1d1-f063-47b1-8b8c-db26f2e81395",
    to="+33612340500",
    status="FAILED",
    attempts=5,
    next_attempt_at="2026-12-02T08:16:42.483200Z",
    error={
        "code": "132001",
        "title": "Template name does not exist in the translation",
        "message": "template name (order_update) does not exist in en_US",
        "retryable": False,
        "details": None,
    },
    dead_lettered=True,
    updated_at="2026-12-02T08:16:43.007100Z",
    failed_at="2026-12-02T08:16:43.007100Z",
)
CANCELLED = message(
    status="CANCELLED",
    next_attempt_at="2030-01-01T09:00:00Z",
    updated_at="2026-12-02T08:16:38.874976Z",
)
REPLAYED = DEAD_LETTERED | {
    "status": "QUEUED",
    "attempts": 0,
    "next_attempt_at": "2026-12-02T09:02:10.196913Z",
    "error": None,
    "dead_lettered": False,
    "updated_at": "2026-12-02T09:02:10.196913Z",
    "failed_at": None,
}
CURSOR = (
    "WyIyMDI2LTEyLTAyVDA4OjE2OjM2LjgzNjg4MiswMDowMCIsICIwY2YxYWViYy1hZWRl"
    "LTRkYjUtYTZlNi0wY2I5NmVmY2YyMTYiXQ"
)

SEND_TEMPLATE: dict[str, Example] = {
    "template": {
        "summary": "A template message",
        "value": {"to": PHONE, "template": TEMPLATE, "metadata": {"order_id": "42"}},
    },
    "text": {
        "summary": "A session text message (the recipient wrote in the last 24 hours)",
        "value": {
            "to": PHONE,
            "text": {"body": "Your parcel is on its way.", "preview_url": False},
        },
    },
    **SEND_SESSION,
    "scheduled": {
        "summary": "A template message sent no earlier than `send_after`",
        "value": {
            "to": "+33 6 12 34 56 78",
            "template": {"name": "appointment_reminder", "language": "fr"},
            "send_after": "2026-12-24T09:00:00Z",
        },
    },
}
BATCH: dict[str, Example] = {
    "batch": {
        "summary": "Two messages, each with its own idempotency key",
        "value": {
            "messages": [
                {"to": PHONE, "template": TEMPLATE, "idempotency_key": "order-42"},
                {"to": "+33699999999", "template": TEMPLATE, "idempotency_key": "order-43"},
            ]
        },
    }
}
BATCH_RESULTS = {
    "results": [
        {"index": 0, "message": QUEUED, "error": None},
        {
            "index": 1,
            "message": None,
            "error": {
                "code": "consent_required",
                "message": "The recipient has not granted consent to receive messages.",
                "details": {"phone_suffix": "9999"},
            },
        },
    ]
}
EVENTS = {
    "items": [
        {
            "at": "2026-12-02T08:16:36.816656Z",
            "type": "queued",
            "from_status": None,
            "to_status": "QUEUED",
            "actor": "api_key:wao_HupRNSOJ",
            "details": {},
        },
        {
            "at": "2026-12-02T08:16:36.823278Z",
            "type": "claimed",
            "from_status": "QUEUED",
            "to_status": "SENDING",
            "actor": "dispatcher:host-1:7825:7600",
            "details": {"attempt": 1},
        },
        {
            "at": "2026-12-02T08:16:36.852912Z",
            "type": "accepted",
            "from_status": "SENDING",
            "to_status": "ACCEPTED",
            "actor": "dispatcher:host-1:7825:7600",
            "details": {"attempt": 1, "provider_message_id": WAMID},
        },
        {
            "at": "2026-12-02T08:16:37.103750Z",
            "type": "status.sent",
            "from_status": "ACCEPTED",
            "to_status": "SENT",
            "actor": "webhook",
            "details": {
                "provider_message_id": WAMID,
                "status": "sent",
                "status_at": "2026-12-02T08:16:37+00:00",
                "ignored": False,
            },
        },
    ]
}

CONSENT_UPDATE: dict[str, Example] = {
    "grant": {"summary": "Grant", "value": {"status": "granted", "source": "signup-form"}},
    "revoke": {"summary": "Revoke", "value": {"status": "revoked", "source": "STOP reply"}},
}
CONSENT = {
    "phone": PHONE,
    "status": "granted",
    "source": "signup-form",
    "granted_at": "2026-12-02T08:16:36.806973Z",
    "revoked_at": None,
    "updated_at": "2026-12-02T08:16:36.806973Z",
    "marketing_opt_out": False,
}

QUOTA = {
    "org_id": ORG_ID,
    "limit": 1000,
    "used": 120,
    "remaining": 880,
    "window_seconds": 86400,
    "resets_at": "2026-12-03T08:16:36.843306Z",
    "throttled": False,
    "messages_per_second": 80.0,
    "backend": "redis",
}
QUOTA_UPDATE: dict[str, Example] = {
    "raise": {
        "summary": "A larger daily quota and a lower throughput cap",
        "value": {"limit": 5000, "messages_per_second": 20},
    }
}

REPLAY: dict[str, Example] = {
    "by_code": {
        "summary": "Every dead-lettered message of one error code",
        "value": {"error_code": "132001"},
    },
    "by_ids": {
        "summary": "Chosen messages",
        "value": {"ids": ["0b8fa1d1-f063-47b1-8b8c-db26f2e81395"]},
    },
}
DLQ_REPORT = {
    "total_failed": 3,
    "by_channel": {"WHATSAPP": 3},
    "top_error_codes": [
        {"code": "132001", "title": "Template name does not exist in the translation", "count": 2},
        {"code": "131026", "title": "Message undeliverable", "count": 1},
    ],
    "window_hours": 24,
    "recommendations": [
        "132001 (Template name does not exist in the translation): the template does not exist "
        "in this language: check the template name and language, and that it is approved",
        "131026 (Message undeliverable): the recipient cannot receive this message (not on "
        "WhatsApp, old app, or terms not accepted): do not replay; reach them another way",
    ],
}

ORG_CREATE: dict[str, Example] = {
    "named": {"summary": "With a chosen id", "value": {"id": ORG_ID, "name": "Acme"}},
    "limits": {
        "summary": "A generated id and its own limits",
        "value": {"name": "Globex", "daily_quota": 20000, "messages_per_second": 40},
    },
}
ORG = {
    "id": ORG_ID,
    "name": "Acme",
    "daily_quota": 1000,
    "messages_per_second": 80.0,
    "created_at": "2026-12-02T08:16:36.743547Z",
}
API_KEY_CREATE: dict[str, Example] = {
    "named": {"summary": "A named key", "value": {"name": "backend"}}
}
API_KEY = {
    "id": "a7710adf-e89d-4a43-a9dd-109b07ee270b",
    "prefix": "wao_HupRNSOJ",
    "api_key": "wao_HupRNSOJX3Hbk3-6ejw4JTcAe0T77rfDHGlo7J388fo",
}

ALERTS = {
    "items": [
        {
            "id": "5b0d6c1e-8f53-4a5e-9a43-0f3c2f6d7a10",
            "type": "queue_depth",
            "severity": "warning",
            "state": "firing",
            "summary": "1240 messages waiting to be sent (threshold 1000)",
            "details": {
                "queue_depth": 1240,
                "due_now": 1180,
                "threshold": 1000,
                "critical_at": 5000,
            },
            "first_fired_at": "2026-12-02T08:20:00Z",
            "last_notified_at": "2026-12-02T08:20:00Z",
            "resolved_at": None,
            "notifications": 1,
        }
    ],
    "next_cursor": None,
}
CHANNELS = {
    "channels": {
        "WHATSAPP": {
            "queue_depth": 12,
            "dlq_size": 3,
            "sent_1h": 4210,
            "failed_1h": 7,
            "failure_rate_1h": 0.0017,
            "p95_send_seconds": 0.21,
        }
    }
}
READY = {
    "status": "ok",
    "components": {
        "database": {"status": "up", "dialect": "postgresql"},
        "schema": {"status": "current", "database_revision": "0004", "code_revision": "0004"},
        "redis": {"status": "up"},
        "dispatcher": {"status": "running"},
        "callback_worker": {"status": "running"},
        "rate_limiter": {"backend": "redis"},
        "workers": {
            "dispatcher": {"status": "running"},
            "callback-worker": {"status": "running"},
            "receipt-sweep": {"status": "running"},
            "queue-gauges": {"status": "running"},
        },
    },
}
NOT_READY = {
    "status": "unavailable",
    "components": {
        "database": {"status": "down", "error": "TimeoutError"},
        "schema": {"status": "current", "database_revision": "0004", "code_revision": "0004"},
        "redis": {"status": "up"},
        "dispatcher": {"status": "running"},
        "callback_worker": {"status": "running"},
        "rate_limiter": {"backend": "redis"},
        "workers": {"dispatcher": {"status": "running"}},
    },
}
METRICS = (
    "# HELP outbound_message_sent_total Messages accepted by the provider\n"
    "# TYPE outbound_message_sent_total counter\n"
    'outbound_message_sent_total{channel="WHATSAPP"} 4210.0\n'
)

# Meta's notification of one status, as it is signed and posted to the webhook.
WEBHOOK_STATUS = {
    "object": "whatsapp_business_account",
    "entry": [
        {
            "id": "102290129340398",
            "changes": [
                {
                    "field": "messages",
                    "value": {
                        "messaging_product": "whatsapp",
                        "metadata": {
                            "display_phone_number": "15550783881",
                            "phone_number_id": "106540352242922",
                        },
                        "statuses": [
                            {
                                "id": WAMID,
                                "status": "delivered",
                                "timestamp": "1764663397",
                                "recipient_id": "33612345678",
                            }
                        ],
                    },
                }
            ],
        }
    ],
}
