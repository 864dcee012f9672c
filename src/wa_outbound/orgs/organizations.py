"""Organisations and their API keys."""

from __future__ import annotations

import uuid
from dataclasses import dataclass
from typing import Any

import sqlalchemy as sa
from sqlalchemy.ext.asyncio import AsyncConnection

from wa_outbound.db.listener import API_KEYS_CHANNEL, notify
from wa_outbound.db.schema import api_key, organization, rate_limit
from wa_outbound.db.types import utcnow
from wa_outbound.errors import AlreadyExists, NotFound
from wa_outbound.events import record_audit
from wa_outbound.orgs.auth import generate_key

DEFAULT_WINDOW_SECONDS = 86_400


@dataclass(frozen=True, slots=True)
class NewKey:
    id: uuid.UUID
    prefix: str
    api_key: str


async def create_org(
    conn: AsyncConnection,
    *,
    name: str,
    org_id: str | None,
    daily_quota: int,
    messages_per_second: float,
    actor: str,
) -> dict[str, Any]:
    now = utcnow()
    org_id = org_id or f"org_{uuid.uuid4().hex[:20]}"
    exists = await conn.scalar(sa.select(organization.c.id).where(organization.c.id == org_id))
    if exists is not None:
        raise AlreadyExists(f"organisation {org_id!r} already exists", org_id=org_id)
    await conn.execute(organization.insert().values(id=org_id, name=name, created_at=now))
    await conn.execute(
        rate_limit.insert().values(
            org_id=org_id,
            quota_limit=daily_quota,
            window_seconds=DEFAULT_WINDOW_SECONDS,
            messages_per_second=messages_per_second,
            updated_at=now,
        )
    )
    await record_audit(
        conn,
        org_id=org_id,
        at=now,
        action="org.created",
        actor=actor,
        subject=org_id,
        details={"name": name},
    )
    return await get_org(conn, org_id)


async def get_org(conn: AsyncConnection, org_id: str) -> dict[str, Any]:
    row = (
        await conn.execute(
            sa.select(
                organization.c.id,
                organization.c.name,
                organization.c.created_at,
                rate_limit.c.quota_limit.label("daily_quota"),
                rate_limit.c.messages_per_second,
            )
            .select_from(organization.join(rate_limit))
            .where(organization.c.id == org_id)
        )
    ).first()
    if row is None:
        raise NotFound(f"organisation {org_id!r} not found")
    return dict(row._mapping)


async def count_orgs(conn: AsyncConnection) -> int:
    return int(await conn.scalar(sa.select(sa.func.count()).select_from(organization)) or 0)


async def create_api_key(
    conn: AsyncConnection, *, org_id: str, name: str | None, actor: str
) -> NewKey:
    await get_org(conn, org_id)
    plain, prefix, digest = generate_key()
    key_id = uuid.uuid4()
    now = utcnow()
    await conn.execute(
        api_key.insert().values(
            id=key_id, org_id=org_id, name=name, prefix=prefix, key_hash=digest, created_at=now
        )
    )
    await record_audit(
        conn,
        org_id=org_id,
        at=now,
        action="api_key.created",
        actor=actor,
        subject=str(key_id),
        details={"prefix": prefix, "name": name},
    )
    return NewKey(id=key_id, prefix=prefix, api_key=plain)


async def revoke_api_key(
    conn: AsyncConnection, *, org_id: str, key_id: uuid.UUID, actor: str
) -> None:
    now = utcnow()
    result = await conn.execute(
        api_key.update()
        .where(api_key.c.id == key_id, api_key.c.org_id == org_id, api_key.c.revoked_at.is_(None))
        .values(revoked_at=now)
    )
    if result.rowcount == 0:
        raise NotFound("API key not found")
    await record_audit(
        conn, org_id=org_id, at=now, action="api_key.revoked", actor=actor, subject=str(key_id)
    )
    await notify(conn, API_KEYS_CHANNEL)  # other replicas drop their cached keys at commit


async def org_exists(conn: AsyncConnection, org_id: str) -> bool:
    found = await conn.scalar(sa.select(organization.c.id).where(organization.c.id == org_id))
    return found is not None
