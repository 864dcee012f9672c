"""Console sessions, kept server-side (`console_session`): the cookie holds a random token and
the row is found by its SHA-256, so a copy of the table signs no one in.

A session lasts 8 hours at most and ends after 30 minutes without a request. Revoking the API
key it signed in with ends it too: the caller checks the key on each request (identity.py).
Functions take the caller's connection; the caller owns the transaction.
"""

from __future__ import annotations

import hashlib
import secrets
from dataclasses import dataclass
from datetime import datetime, timedelta

import sqlalchemy as sa
from sqlalchemy.ext.asyncio import AsyncConnection

from wa_outbound.db.console_schema import console_session

c = console_session.c
MAX_AGE = timedelta(hours=8)
IDLE = timedelta(minutes=30)
# last_seen_at is written at most this often: a page load is not a write each time.
TOUCH_EVERY = timedelta(seconds=60)


@dataclass(frozen=True, slots=True)
class Session:
    id: str  # the token's hash
    org_id: str | None
    is_admin: bool
    key_hash: str
    actor: str
    csrf_token: str
    last_seen_at: datetime
    expires_at: datetime


def token_hash(token: str) -> str:
    return hashlib.sha256(token.encode()).hexdigest()


async def create(
    conn: AsyncConnection,
    *,
    org_id: str | None,
    is_admin: bool,
    key_hash: str,
    actor: str,
    now: datetime,
) -> str:
    """A new session; returns the token for the cookie (shown nowhere else, stored nowhere)."""
    await conn.execute(console_session.delete().where(c.expires_at <= now))
    token = secrets.token_urlsafe(32)
    await conn.execute(
        console_session.insert().values(
            id=token_hash(token),
            org_id=org_id,
            is_admin=is_admin,
            key_hash=key_hash,
            actor=actor,
            csrf_token=secrets.token_urlsafe(32),
            created_at=now,
            last_seen_at=now,
            expires_at=now + MAX_AGE,
        )
    )
    return token


async def load(conn: AsyncConnection, token: str, *, now: datetime) -> Session | None:
    """The live session of a cookie's token, touched; None (and the row gone) once it is past
    its 8 hours or idle for 30 minutes."""
    row = (await conn.execute(sa.select(console_session).where(c.id == token_hash(token)))).first()
    if row is None:
        return None
    if now >= row.expires_at or now - row.last_seen_at >= IDLE:
        await end(conn, row.id)
        return None
    last_seen_at = row.last_seen_at
    if now - last_seen_at >= TOUCH_EVERY:
        last_seen_at = now
        await conn.execute(console_session.update().where(c.id == row.id).values(last_seen_at=now))
    return Session(
        id=row.id,
        org_id=row.org_id,
        is_admin=row.is_admin,
        key_hash=row.key_hash,
        actor=row.actor,
        csrf_token=row.csrf_token,
        last_seen_at=last_seen_at,
        expires_at=row.expires_at,
    )


async def choose_org(conn: AsyncConnection, session_id: str, org_id: str) -> None:
    """An admin session acts for `org_id` from now on."""
    await conn.execute(console_session.update().where(c.id == session_id).values(org_id=org_id))


async def end(conn: AsyncConnection, session_id: str) -> None:
    await conn.execute(console_session.delete().where(c.id == session_id))
