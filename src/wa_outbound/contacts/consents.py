"""Consent records per organisation and phone number, and their history.

Every change goes through `set_consent`: the record, a `consent_event` row (the history at
`GET /v1/consents/{phone}/events`), the audit trail and the `consent.changed` callback event,
in the caller's transaction.
"""

from __future__ import annotations

from typing import Any, Final, Literal

import sqlalchemy as sa
from sqlalchemy.dialects.postgresql import ARRAY
from sqlalchemy.ext.asyncio import AsyncConnection

from wa_outbound.db.dialect import insert, is_postgres
from wa_outbound.db.schema import consent, outbound_message
from wa_outbound.db.template_schema import consent_event
from wa_outbound.db.types import utcnow
from wa_outbound.errors import NotFound
from wa_outbound.events import outgoing, record_audit

GRANTED: Final = "granted"
REVOKED: Final = "revoked"
# Meta's "the user stopped marketing messages", and the code a message it refuses fails with.
META_STOPPED_CODE = "131050"
MARKETING_OPTED_OUT = "marketing_opted_out"

ARRAY_TEXT = ARRAY(sa.Text())
_COLUMNS = (
    consent.c.phone,
    consent.c.status,
    consent.c.source,
    consent.c.granted_at,
    consent.c.revoked_at,
    consent.c.updated_at,
    consent.c.marketing_opt_out,
)
e = consent_event.c


async def set_consent(
    conn: AsyncConnection,
    *,
    org_id: str,
    phone: str,
    status: Literal["granted", "revoked"] | None,
    source: str | None,
    actor: str,
    marketing_opt_out: bool | None = None,
    only_if_changed: bool = False,
) -> dict[str, Any]:
    """Set the status and/or the marketing preference (None: left as it is; a new record
    without a status has status null). `only_if_changed`: write nothing when neither changes
    (a webhook Meta repeats, a STOP sent twice)."""
    now = utcnow()
    query = sa.select(*_COLUMNS).where(consent.c.org_id == org_id, consent.c.phone == phone)
    found = (await conn.execute(query.with_for_update())).first()
    before = dict(found._mapping) if found is not None else None
    old = before or {"status": None, "source": None, "granted_at": None, "revoked_at": None}
    old_flag = bool(before and before["marketing_opt_out"])
    values: dict[str, Any] = {
        "status": old["status"] if status is None else status,
        # `source` says where the status came from: a preference alone leaves it.
        "source": source if status is not None or before is None else old["source"],
        "granted_at": old["granted_at"],
        "revoked_at": old["revoked_at"],
        "marketing_opt_out": old_flag if marketing_opt_out is None else marketing_opt_out,
        "updated_at": now,
    }
    # A grant keeps its first moment until a revocation; a revocation keeps the grant's history.
    if status == GRANTED:
        values["revoked_at"] = None
        if old["status"] != GRANTED:
            values["granted_at"] = now
    elif status == REVOKED:
        values["revoked_at"] = now
    unchanged = (values["status"], values["marketing_opt_out"]) == (old["status"], old_flag)
    if only_if_changed and before is not None and unchanged:
        return before
    stmt = insert(conn, consent).values(org_id=org_id, phone=phone, **values)
    stmt = stmt.on_conflict_do_update(
        index_elements=[consent.c.org_id, consent.c.phone], set_=values
    ).returning(*_COLUMNS)
    record = dict((await conn.execute(stmt)).one()._mapping)
    await conn.execute(
        consent_event.insert().values(
            org_id=org_id,
            phone=phone,
            at=now,
            status=values["status"],
            from_status=old["status"],
            marketing_opt_out=values["marketing_opt_out"],
            from_marketing_opt_out=None if before is None else old_flag,
            source=source,
            actor=actor[:64],
        )
    )
    await record_audit(
        conn,
        org_id=org_id,
        at=now,
        action=f"consent.{status or 'preference'}",
        actor=actor,
        subject=phone,
        details={"source": source, "marketing_opt_out": values["marketing_opt_out"]},
    )
    await outgoing.write(
        conn,
        [
            outgoing.Outgoing(
                org_id=org_id,
                type=outgoing.CONSENT_CHANGED,
                data=outgoing.json_ready(record),
                occurred_at=now,
            )
        ],
    )
    return record


async def get_consent(conn: AsyncConnection, *, org_id: str, phone: str) -> dict[str, Any]:
    row = (
        await conn.execute(
            sa.select(*_COLUMNS).where(consent.c.org_id == org_id, consent.c.phone == phone)
        )
    ).first()
    if row is None:
        raise NotFound("no consent recorded for this phone number")
    return dict(row._mapping)


async def history(conn: AsyncConnection, *, org_id: str, phone: str) -> list[dict[str, Any]]:
    """Every change of the record, oldest first; 404 when nothing was ever recorded."""
    rows = await conn.execute(
        sa.select(
            e.at,
            e.status,
            e.from_status,
            e.marketing_opt_out,
            e.from_marketing_opt_out,
            e.source,
            e.actor,
        )
        .where(e.org_id == org_id, e.phone == phone)
        .order_by(e.id)
    )
    items = [dict(row._mapping) for row in rows]
    if not items:
        await get_consent(conn, org_id=org_id, phone=phone)  # a record from before the history
    return items


def _phones(conn: AsyncConnection, phones: set[str]) -> Any:
    if is_postgres(conn):
        # One array parameter: the statement text stays the same for any number of phones
        # (prepared once), where IN renders a parameter per phone.
        return consent.c.phone == sa.any_(sa.bindparam("phones", list(phones), ARRAY_TEXT))
    return consent.c.phone.in_(phones)


async def granted_phones(conn: AsyncConnection, *, org_id: str, phones: set[str]) -> set[str]:
    rows = await conn.execute(
        sa.select(consent.c.phone).where(
            consent.c.org_id == org_id, _phones(conn, phones), consent.c.status == GRANTED
        )
    )
    return {row.phone for row in rows}


async def opted_out_phones(conn: AsyncConnection, *, org_id: str, phones: set[str]) -> set[str]:
    """The phones among these that stopped the organisation's marketing messages."""
    if not phones:
        return set()
    rows = await conn.execute(
        sa.select(consent.c.phone).where(
            consent.c.org_id == org_id, _phones(conn, phones), consent.c.marketing_opt_out
        )
    )
    return {row.phone for row in rows}


async def mark_stopped(
    conn: AsyncConnection, message_ids: list[Any], *, source: str, actor: str
) -> None:
    """Meta refused these messages with 131050: their recipients stopped marketing messages."""
    if not message_ids:
        return
    m = outbound_message.c
    rows = await conn.execute(
        sa.select(m.org_id, m.to_phone).distinct().where(m.id.in_(message_ids))
    )
    for org_id, phone in sorted((r.org_id, r.to_phone) for r in rows):
        await set_consent(
            conn,
            org_id=org_id,
            phone=phone,
            status=None,
            source=source,
            actor=actor,
            marketing_opt_out=True,
            only_if_changed=True,
        )
