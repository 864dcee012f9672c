"""The template registry's tables and the consent history. Part of `schema.metadata`; kept
apart for the module's size (importing this module imports every table)."""

from __future__ import annotations

import sqlalchemy as sa

from wa_outbound.db import outbox_indexes  # noqa: F401  (the outbox's indexes in metadata)
from wa_outbound.db.callback_schema import metadata
from wa_outbound.db.types import BigIntId, JSONType, UTCDateTime

__all__ = ["consent_event", "metadata", "template", "template_sync"]

# A WABA's message templates as Meta lists them, one row per (WABA, name, language).
template = sa.Table(
    "template",
    metadata,
    sa.Column("waba_id", sa.String(64), primary_key=True),
    sa.Column("name", sa.String(512), primary_key=True),
    sa.Column("language", sa.String(16), primary_key=True),
    sa.Column("template_id", sa.String(64), nullable=True),
    # APPROVED | PENDING | REJECTED | PAUSED | DISABLED | IN_APPEAL | DELETED | ...
    sa.Column("status", sa.String(32), nullable=False),
    # MARKETING | UTILITY | AUTHENTICATION
    sa.Column("category", sa.String(32), nullable=True),
    # GREEN | YELLOW | RED | UNKNOWN
    sa.Column("quality", sa.String(16), nullable=True),
    sa.Column("components", JSONType, nullable=False),
    sa.Column("updated_at", UTCDateTime(), nullable=False),
)

# When each WABA's registry was last read from Meta in full: a WABA never synced is advisory
# (its unknown templates are accepted). `attempted_at` lets one replica sync a WABA per period.
template_sync = sa.Table(
    "template_sync",
    metadata,
    sa.Column("waba_id", sa.String(64), primary_key=True),
    sa.Column("synced_at", UTCDateTime(), nullable=True),
    sa.Column("attempted_at", UTCDateTime(), nullable=True),
    sa.Column("last_error", sa.Text(), nullable=True),
)

# Every change of a consent record, oldest first by id: GET /v1/consents/{phone}/events.
consent_event = sa.Table(
    "consent_event",
    metadata,
    sa.Column("id", BigIntId, primary_key=True, autoincrement=True),
    sa.Column("org_id", sa.String(64), nullable=False),
    sa.Column("phone", sa.String(16), nullable=False),
    sa.Column("at", UTCDateTime(), nullable=False),
    sa.Column("status", sa.String(16), nullable=True),
    sa.Column("from_status", sa.String(16), nullable=True),
    sa.Column("marketing_opt_out", sa.Boolean(), nullable=False),
    sa.Column("from_marketing_opt_out", sa.Boolean(), nullable=True),
    sa.Column("source", sa.String(200), nullable=True),
    sa.Column("actor", sa.String(64), nullable=False),
)
sa.Index(
    "ix_consent_event_org_phone", consent_event.c.org_id, consent_event.c.phone, consent_event.c.id
)
