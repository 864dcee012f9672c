"""Consent records per organisation and phone number."""

from __future__ import annotations

from typing import Any, Literal

import sqlalchemy as sa
from sqlalchemy.dialects.postgresql import ARRAY
from sqlalchemy.ext.asyncio import AsyncConnection

from wa_outbound.db.dialect import insert, is_postgres
from wa_outbound.db.schema import consent
from wa_outbound.db.types import utcnow
from wa_outbound.errors import NotFound
from wa_outbound.events import outgoing, record_audit

GRANTED = "granted"
REVOKED = "revoked"

ARRAY_TEXT = ARRAY(sa.Text())
_COLUMNS = (
    consent.c.phone,
    consent.c.status,
    consent.c.source,
    consent.c.granted_at,
    consent.c.revoked_at,
    consent.c.updated_at,
)


async def set_consent(
    conn: AsyncConnection,
    *,
    org_id: str,
    phone: str,
    status: Literal["granted", "revoked"],
    source: str | None,
    actor: str,
) -> dict[str, Any]:
    now = utcnow()
    values: dict[str, Any] = {"status": status, "source": source, "updated_at": now}
    # A grant keeps its first moment until a revocation; a revocation keeps the grant's history.
    if status == GRANTED:
        values["revoked_at"] = None
        granted_at: Any = sa.case((consent.c.status == GRANTED, consent.c.granted_at), else_=now)
    else:
        values["revoked_at"] = now
        granted_at = consent.c.granted_at
    stmt = insert(conn, consent).values(
        org_id=org_id, phone=phone, granted_at=now if status == GRANTED else None, **values
    )
    stmt = stmt.on_conflict_do_update(
        index_elements=[consent.c.org_id, consent.c.phone],
        set_={**values, "granted_at": granted_at},
    ).returning(*_COLUMNS)
    row = (await conn.execute(stmt)).one()
    await record_audit(
        conn,
        org_id=org_id,
        at=now,
        action=f"consent.{status}",
        actor=actor,
        subject=phone,
        details={"source": source},
    )
    record = dict(row._mapping)
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


async def granted_phones(conn: AsyncConnection, *, org_id: str, phones: set[str]) -> set[str]:
    if is_postgres(conn):
        # One array parameter: the statement text stays the same for any number of phones
        # (prepared once), where IN renders a parameter per phone.
        wanted: Any = consent.c.phone == sa.any_(sa.bindparam("phones", list(phones), ARRAY_TEXT))
    else:
        wanted = consent.c.phone.in_(phones)
    rows = await conn.execute(
        sa.select(consent.c.phone).where(
            consent.c.org_id == org_id, wanted, consent.c.status == GRANTED
        )
    )
    return {row.phone for row in rows}
