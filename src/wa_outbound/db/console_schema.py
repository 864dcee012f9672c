"""The operator console's server-side sessions. Part of `schema.metadata`; kept apart from
schema.py for its size."""

from __future__ import annotations

import sqlalchemy as sa

from wa_outbound.db.schema import metadata
from wa_outbound.db.types import UTCDateTime

__all__ = ["console_session", "metadata"]

# One signed-in browser. The cookie holds a random token; the row's id is its SHA-256, so the
# table never holds a usable cookie. `key_hash` is the hash of the API key (or of the admin
# token) it signed in with: each request checks it still authenticates.
console_session = sa.Table(
    "console_session",
    metadata,
    sa.Column("id", sa.String(64), primary_key=True),
    # Null: an admin session that has not picked an organisation yet.
    sa.Column("org_id", sa.String(64), nullable=True),
    sa.Column("is_admin", sa.Boolean(), nullable=False),
    sa.Column("key_hash", sa.String(64), nullable=False),
    sa.Column("actor", sa.String(64), nullable=False),
    sa.Column("csrf_token", sa.String(64), nullable=False),
    sa.Column("created_at", UTCDateTime(), nullable=False),
    sa.Column("last_seen_at", UTCDateTime(), nullable=False),
    sa.Column("expires_at", UTCDateTime(), nullable=False, index=True),
)
