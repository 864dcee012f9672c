"""The message object of the contract, from an outbox row: what the API answers and what the
message events of callbacks carry."""

from __future__ import annotations

import uuid
from typing import Any

from wa_outbound.db.schema import SHARED_SENDER_ID
from wa_outbound.status import KINDS, REPLY_TO


def view(row: dict[str, Any]) -> dict[str, Any]:
    """The message object of the contract, from an outbox row."""
    kind = row["kind"]
    content = dict(row["payload"])
    reply_to = content.pop(REPLY_TO, None)
    error = None
    if row["error_code"] is not None:
        error = {
            "code": row["error_code"],
            "title": row["error_title"],
            "message": row["error_message"],
            "retryable": bool(row["error_retryable"]),
            "details": row["error_details"] or None,
        }
    return {
        "id": str(row["id"]),
        "org_id": row["org_id"],
        "channel": row["channel"],
        "to": row["to_phone"],
        "kind": kind,
        **{name: content if kind == name else None for name in KINDS},
        "reply_to": reply_to,
        "metadata": row["message_metadata"],
        "status": row["status"],
        "attempts": row["attempts"],
        "max_attempts": row["max_attempts"],
        "next_attempt_at": row["next_attempt_at"],
        "provider_message_id": row["provider_message_id"],
        "error": error,
        "dead_lettered": row["dead_lettered"],
        "created_at": row["created_at"],
        "updated_at": row["updated_at"],
        "sent_at": row["sent_at"],
        "delivered_at": row["delivered_at"],
        "read_at": row["read_at"],
        "failed_at": row["failed_at"],
        "sender_id": _sender_id(row.get("sender_id")),
        "waiting_reason": row.get("waiting_reason"),
        "expires_at": row.get("expires_at"),
        # Erased (DELETE /v1/contacts/{phone}): `to` is null, the content tokens.
        "redacted": bool(row.get("redacted")),
    }


def _sender_id(sender_id: uuid.UUID | None) -> str | None:
    return None if sender_id is None or sender_id == SHARED_SENDER_ID else str(sender_id)
