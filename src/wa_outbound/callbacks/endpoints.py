"""An organisation's webhook endpoints: creating, changing, deleting them and rotating their
secrets. Secrets are stored encrypted (the app's keyring) and leave this module in clear only as
the answer to a creation or a rotation. Functions take the caller's connection; the caller owns
the transaction."""

from __future__ import annotations

import uuid
from collections.abc import Callable
from dataclasses import dataclass
from datetime import datetime, timedelta
from typing import Any

import sqlalchemy as sa
from sqlalchemy.ext.asyncio import AsyncConnection

from wa_outbound.callbacks import deliveries, urls
from wa_outbound.callbacks.secrets import new_secret
from wa_outbound.db.callback_schema import callback_endpoint
from wa_outbound.errors import NotFound
from wa_outbound.events import record_audit

e = callback_endpoint.c
Encrypt = Callable[[str], str]
# How long the secret before a rotation still signs, beside the new one.
PREVIOUS_SECRET_TTL = timedelta(hours=24)


@dataclass(frozen=True, slots=True)
class Endpoint:
    id: uuid.UUID
    org_id: str
    url: str
    events: list[str] | None
    description: str | None
    enabled: bool
    disabled_reason: str | None
    created_at: datetime
    updated_at: datetime


def _from_row(row: Any) -> Endpoint:
    m = row._mapping
    return Endpoint(
        id=m["id"],
        org_id=m["org_id"],
        url=m["url"],
        events=None if m["events"] is None else list(m["events"]),
        description=m["description"],
        enabled=bool(m["enabled"]),
        disabled_reason=m["disabled_reason"],
        created_at=m["created_at"],
        updated_at=m["updated_at"],
    )


# Every column but the secrets: they are read only where they are rotated.
_PUBLIC = [
    e.id,
    e.org_id,
    e.url,
    e.events,
    e.description,
    e.enabled,
    e.disabled_reason,
    e.created_at,
    e.updated_at,
]


async def check_url(url: str, *, allow_insecure: bool) -> None:
    """UrlNotAllowed unless the URL's form and every address its host resolves to are allowed.
    Called before the transaction: a DNS lookup is not held inside one."""
    target = urls.check_url(url, allow_insecure=allow_insecure)
    await urls.resolve(target, allow_insecure=allow_insecure)


def _unique(events: list[str] | None) -> list[str] | None:
    return None if events is None else list(dict.fromkeys(events))


async def create(
    conn: AsyncConnection,
    org_id: str,
    *,
    url: str,
    events: list[str] | None,
    description: str | None,
    encrypt: Encrypt,
    now: datetime,
    actor: str,
) -> tuple[Endpoint, str]:
    """A new endpoint of the org, enabled, and its secret in clear (shown this once)."""
    endpoint_id = uuid.uuid4()
    secret = new_secret()
    await conn.execute(
        callback_endpoint.insert().values(
            id=endpoint_id,
            org_id=org_id,
            url=url,
            events=_unique(events),
            description=description,
            enabled=True,
            disabled_reason=None,
            secret=encrypt(secret),
            previous_secret=None,
            previous_secret_until=None,
            failing_since=None,
            last_success_at=None,
            created_at=now,
            updated_at=now,
        )
    )
    await record_audit(
        conn,
        org_id=org_id,
        at=now,
        action="webhook_endpoint.created",
        actor=actor,
        subject=str(endpoint_id),
        details={"url": url, "events": _unique(events)},
    )
    return await owned(conn, org_id, endpoint_id), secret


async def owned(
    conn: AsyncConnection,
    org_id: str,
    endpoint_id: uuid.UUID,
    *,
    lock: bool = False,
    deleting: bool = False,
) -> Endpoint:
    """The org's endpoint, or 404: another org's endpoint is not found, never forbidden.

    `lock` takes its row lock without blocking the deliveries that reference it (FOR NO KEY
    UPDATE); `deleting` takes the full lock, which waits for and then blocks them."""
    query = sa.select(*_PUBLIC).where(e.id == endpoint_id, e.org_id == org_id)
    if deleting:
        query = query.with_for_update()
    elif lock:
        query = query.with_for_update(key_share=True)
    row = (await conn.execute(query)).first()
    if row is None:
        raise NotFound("webhook endpoint not found")
    return _from_row(row)


async def of_org(conn: AsyncConnection, org_id: str) -> list[Endpoint]:
    """The org's endpoints, oldest first."""
    rows = await conn.execute(
        sa.select(*_PUBLIC).where(e.org_id == org_id).order_by(e.created_at, e.id)
    )
    return [_from_row(row) for row in rows]


async def update(
    conn: AsyncConnection,
    org_id: str,
    endpoint_id: uuid.UUID,
    changes: dict[str, Any],
    *,
    now: datetime,
    actor: str,
) -> Endpoint:
    """Apply a PATCH: `changes` holds only the fields given (a URL already checked).

    Enabling a disabled endpoint clears its failure record and sends its pending deliveries
    now, on fresh schedules; the worker's per-message ordering keeps them in order."""
    current = await owned(conn, org_id, endpoint_id, lock=True)
    values: dict[str, Any] = {}
    for field in ("url", "description"):
        if field in changes:
            values[field] = changes[field]
    if "events" in changes:
        values["events"] = _unique(changes["events"])
    if changes.get("enabled") is False:
        values.update(enabled=False, disabled_reason="manual")
    elif changes.get("enabled") is True and not current.enabled:
        values.update(enabled=True, disabled_reason=None, failing_since=None)
        await deliveries.make_pending_due(conn, endpoint_id, now=now)
    await conn.execute(
        callback_endpoint.update().where(e.id == endpoint_id).values(updated_at=now, **values)
    )
    await record_audit(
        conn,
        org_id=org_id,
        at=now,
        action="webhook_endpoint.updated",
        actor=actor,
        subject=str(endpoint_id),
        details={"changed": sorted(changes)},
    )
    return await owned(conn, org_id, endpoint_id)


async def delete(
    conn: AsyncConnection, org_id: str, endpoint_id: uuid.UUID, *, now: datetime, actor: str
) -> int:
    """Delete the endpoint and its deliveries (pending ones are dropped); returns how many
    deliveries went. The events stay: other endpoints may still be sent them."""
    # FOR UPDATE waits for every transaction holding the row's key-share lock, as inserting a
    # delivery for the endpoint does (its foreign key): those deliveries are then committed, and
    # deleted below. An emission that reads the endpoint FOR KEY SHARE after this lock waits,
    # then finds no endpoint.
    await owned(conn, org_id, endpoint_id, deleting=True)
    dropped = await deliveries.delete_of_endpoint(conn, endpoint_id)
    await conn.execute(callback_endpoint.delete().where(e.id == endpoint_id))
    await record_audit(
        conn,
        org_id=org_id,
        at=now,
        action="webhook_endpoint.deleted",
        actor=actor,
        subject=str(endpoint_id),
        details={"deliveries_dropped": dropped},
    )
    return dropped


async def rotate_secret(
    conn: AsyncConnection,
    org_id: str,
    endpoint_id: uuid.UUID,
    *,
    encrypt: Encrypt,
    now: datetime,
    actor: str,
) -> str:
    """A new secret, in clear (shown this once). The current one becomes the previous secret,
    which still signs for `PREVIOUS_SECRET_TTL`; the one before it is dropped."""
    await owned(conn, org_id, endpoint_id, lock=True)
    current = await conn.scalar(sa.select(e.secret).where(e.id == endpoint_id))
    secret = new_secret()
    await conn.execute(
        callback_endpoint.update()
        .where(e.id == endpoint_id)
        .values(
            secret=encrypt(secret),
            # Moved as stored, still encrypted: it is never decrypted here.
            previous_secret=current,
            previous_secret_until=now + PREVIOUS_SECRET_TTL,
            updated_at=now,
        )
    )
    await record_audit(
        conn,
        org_id=org_id,
        at=now,
        action="webhook_endpoint.secret_rotated",
        actor=actor,
        subject=str(endpoint_id),
    )
    return secret


def view(item: Endpoint) -> dict[str, Any]:
    """The endpoint object of the API: never a secret."""
    return {
        "id": str(item.id),
        "url": item.url,
        "events": item.events,
        "description": item.description,
        "enabled": item.enabled,
        "disabled_reason": item.disabled_reason,
        "created_at": item.created_at,
        "updated_at": item.updated_at,
    }
