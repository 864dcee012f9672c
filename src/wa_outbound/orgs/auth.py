"""API keys: generated once, stored only as SHA-256 hashes, looked up by hash."""

from __future__ import annotations

import hashlib
import hmac
import secrets
import uuid
from dataclasses import dataclass

import sqlalchemy as sa
from sqlalchemy.ext.asyncio import AsyncConnection

from wa_outbound.db.schema import api_key

KEY_PREFIX = "wao_"


@dataclass(frozen=True, slots=True)
class Principal:
    """Who is calling: the organisation comes from the key, never from the request."""

    org_id: str
    key_id: uuid.UUID
    key_prefix: str

    @property
    def actor(self) -> str:
        return f"api_key:{self.key_prefix}"


def hash_key(plain: str) -> str:
    # Keys carry 256 bits of randomness, so a fast hash is enough: nothing to brute-force.
    return hashlib.sha256(plain.encode()).hexdigest()


def generate_key() -> tuple[str, str, str]:
    """Return (plain key, display prefix, hash)."""
    plain = KEY_PREFIX + secrets.token_urlsafe(32)
    return plain, plain[:12], hash_key(plain)


async def authenticate_hash(conn: AsyncConnection, key_hash: str) -> Principal | None:
    """The principal of an unrevoked key, by the key's hash (see `hash_key`)."""
    row = (
        await conn.execute(
            sa.select(api_key.c.id, api_key.c.org_id, api_key.c.prefix).where(
                api_key.c.key_hash == key_hash, api_key.c.revoked_at.is_(None)
            )
        )
    ).first()
    if row is None:
        return None
    return Principal(org_id=row.org_id, key_id=row.id, key_prefix=row.prefix)


def admin_token_matches(configured: str, presented: str) -> bool:
    return bool(configured) and hmac.compare_digest(configured.encode(), presented.encode())
