"""Due template messages whose template changed while they waited, found before the limiter is
asked (they are not sends): a PAUSED template's messages wait, marked `template_paused`, until
the registry sees it APPROVED again (templates.registry.release_paused; an hour at most before
they are looked at again); any other status but APPROVED fails them (`template_not_approved`,
`template_disabled`), dead-lettered; a MARKETING template to a recipient who stopped marketing
messages fails with `marketing_opted_out`, not dead-lettered. No attempt is used."""

from __future__ import annotations

from datetime import datetime, timedelta

import sqlalchemy as sa
from sqlalchemy.ext.asyncio import AsyncConnection

from wa_outbound.db.schema import outbound_message
from wa_outbound.dispatch.due import Due, Wait
from wa_outbound.events import message_event_row, record_message_events
from wa_outbound.metrics import Metrics
from wa_outbound.status import CHANNEL_WHATSAPP, CLAIMABLE, Status
from wa_outbound.templates.gate import MARKETING_OPTED_OUT, screen
from wa_outbound.templates.registry import WAITING_REASON

PAUSED_RECHECK = timedelta(hours=1)
m = outbound_message.c
_TEXT = {
    "template_not_approved": ("Template not approved", "Its status in the WABA is {status}."),
    "template_disabled": ("Template disabled", "Meta disabled the template."),
    MARKETING_OPTED_OUT: (
        "Marketing opted out",
        "The recipient stopped marketing messages after it was queued.",
    ),
}


def split(due: list[Due], now: datetime) -> tuple[list[Due], list[Wait], list[tuple[Due, str]]]:
    """(what may be sent, what waits for its template, what fails and with which code)."""
    if not any(row.template_status or row.opted_out for row in due):
        return due, [], []
    ok: list[Due] = []
    waits: list[Wait] = []
    refused: list[tuple[Due, str]] = []
    for row in due:
        verdict = screen(row.template_status, row.opted_out)
        if verdict is None:
            ok.append(row)
        elif verdict == WAITING_REASON:
            waits.append(Wait(row.id, row.org_id, now + PAUSED_RECHECK, WAITING_REASON))
        else:
            refused.append((row, verdict))
    return ok, waits, refused


async def fail(
    conn: AsyncConnection,
    refused: list[tuple[Due, str]],
    *,
    now: datetime,
    actor: str,
    metrics: Metrics,
) -> None:
    """End these locked rows FAILED with their code, an event each (`message.failed` follows)."""
    if not refused:
        return
    ids = [row.id for row, _ in refused]
    before = dict((await conn.execute(sa.select(m.id, m.status).where(m.id.in_(ids)))).all())
    params = []
    # In org order: each dead letter updates its org's `dlq_count` row, locked until commit
    # (as in outcomes.write_outcomes).
    for row, code in sorted(refused, key=lambda item: (item[0].org_id, str(item[0].id))):
        title, message = _TEXT[code]
        params.append(
            {
                "b_id": row.id,
                "b_code": code,
                "b_title": title,
                "b_message": message.format(status=row.template_status),
                "b_dead": code != MARKETING_OPTED_OUT,
            }
        )
    await conn.execute(
        outbound_message.update()
        .where(m.id == sa.bindparam("b_id"), m.status.in_(CLAIMABLE))
        .values(
            status=Status.FAILED,
            dead_lettered=sa.bindparam("b_dead"),
            failed_at=now,
            updated_at=now,
            waiting_reason=None,
            error_code=sa.bindparam("b_code"),
            error_title=sa.bindparam("b_title"),
            error_message=sa.bindparam("b_message"),
            error_details=None,
            error_retryable=False,
        ),
        params,
    )
    await record_message_events(
        conn,
        [
            message_event_row(
                message_id=row.id,
                org_id=row.org_id,
                at=now,
                type=code,
                actor=actor,
                from_status=before.get(row.id),
                to_status=Status.FAILED,
                details={
                    "error": {"code": code, "title": _TEXT[code][0]},
                    "template_status": row.template_status,
                    "dead_lettered": code != MARKETING_OPTED_OUT,
                },
            )
            for row, code in refused
            if row.id in before
        ],
    )
    for _, code in refused:
        metrics.failed.labels(channel=CHANNEL_WHATSAPP, error_code=code).inc()
