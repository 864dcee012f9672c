"""Statuses for sends whose answer we never read, recognised by `biz_opaque_callback_data`.

Meta has no idempotency key, but it echoes the callback data of a send (our message id) in that
send's status webhooks. A status whose wamid is unknown but whose callback data names a message
of its number is about a send of that message:

- the message has no wamid and waits (`send_unknown` after a timeout or a dropped connection,
  or a retry after an error that came once Meta had taken it) or failed for it: that send
  reached Meta. Its wamid is attached and it goes on from ACCEPTED (`reconciled`), so the
  waiting message is never sent again;
- the message has another wamid: it was sent twice (the resend after an unanswered wait). The
  wamid is linked to it (`message_wamid`, `duplicate_send`), `provider_message_id` keeps the
  first one, and the highest status either send reaches applies;
- the message is being sent (SENDING) or was cancelled: the status waits as pending, and the
  sweep looks at it again (pending.py).
"""

from __future__ import annotations

from datetime import datetime
from typing import Any

from sqlalchemy.ext.asyncio import AsyncConnection

from wa_outbound.db.dialect import insert
from wa_outbound.db.schema import message_wamid
from wa_outbound.events import message_event_row
from wa_outbound.receipts.matching import ERROR_COLUMNS, LockedMessage, StatusUpdate
from wa_outbound.status import Status

RECONCILED, DUPLICATE_SEND = "reconciled", "duplicate_send"
# Where a message without a wamid may be when a status shows that a send of it reached Meta.
RECONCILABLE = frozenset({Status.QUEUED, Status.RETRYING, Status.FAILED})


async def write_links(conn: AsyncConnection, links: list[dict[str, Any]]) -> None:
    """Link the wamids of duplicate sends (from `attach`) to their messages."""
    if links:
        await conn.execute(insert(conn, message_wamid).on_conflict_do_nothing(), links)


def attach(
    message: LockedMessage,
    update: StatusUpdate,
    links: list[dict[str, Any]],
    *,
    actor: str,
    now: datetime,
) -> dict[str, Any] | None:
    """Make `update`'s wamid one of `message`'s (the row changed in memory, a duplicate's link
    added to `links`); its event, or None when the status must wait as pending instead."""
    row, wamid = message.row, update.provider_message_id
    before = row["status"]
    details: dict[str, Any] = {"provider_message_id": wamid, "attempt": row["attempts"]}
    if row["provider_message_id"] is None and before in RECONCILABLE:
        details["waiting_reason"] = row["waiting_reason"]
        if before == Status.FAILED:
            details["error_code"] = row["error_code"]
        row.update(
            status=Status.ACCEPTED.value,
            provider_message_id=wamid,
            accepted_at=row["accepted_at"] or update.at or now,
            waiting_reason=None,
            failed_at=None,
            dead_lettered=False,
            **dict.fromkeys(ERROR_COLUMNS),
        )
        message.changed = True
        event, to_status = RECONCILED, Status.ACCEPTED
    elif row["provider_message_id"] is not None and row["provider_message_id"] != wamid:
        details["first_provider_message_id"] = row["provider_message_id"]
        links.append(
            {
                "provider_message_id": wamid,
                "message_id": row["id"],
                "org_id": row["org_id"],
                "created_at": now,
            }
        )
        event, to_status = DUPLICATE_SEND, None
    else:
        return None
    return message_event_row(
        message_id=row["id"],
        org_id=row["org_id"],
        at=now,
        type=event,
        actor=actor,
        from_status=before if to_status else None,
        to_status=to_status,
        details=details,
    )
