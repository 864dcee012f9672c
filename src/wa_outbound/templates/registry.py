"""The template registry: each WABA's templates as Meta lists them, one row per (WABA, name,
language), and what a change of one does: a `template.updated` event for each organisation with
a sender on that WABA, and, when a template is APPROVED again, its paused messages due again."""

from __future__ import annotations

from collections.abc import Iterable
from datetime import datetime
from typing import Any

import sqlalchemy as sa
from sqlalchemy.ext.asyncio import AsyncConnection

from wa_outbound.db.dialect import insert
from wa_outbound.db.schema import SHARED_SENDER_ID, outbound_message, sender
from wa_outbound.db.template_schema import template, template_sync
from wa_outbound.events import message_event_row, outgoing, record_message_events
from wa_outbound.status import CLAIMABLE

APPROVED = "APPROVED"
PAUSED = "PAUSED"
DELETED = "DELETED"
MARKETING = "MARKETING"
WAITING_REASON = "template_paused"
t, m, s = template.c, outbound_message.c, sender.c
Key = tuple[str, str]  # (name, language)
_FIELDS = ("template_id", "status", "category", "quality", "components")


def view(row: Any) -> dict[str, Any]:
    """The template record of the API and of `template.updated`."""
    r = row._mapping if hasattr(row, "_mapping") else row
    return {
        key: r[key]
        for key in ("waba_id", "name", "language", "status", "category", "quality", "components")
    } | {"updated_at": r["updated_at"]}


def from_meta(item: dict[str, Any]) -> dict[str, Any] | None:
    """One of Meta's listed templates as registry values; None when it lacks a name or language."""
    name, language = item.get("name"), item.get("language")
    if not (isinstance(name, str) and 0 < len(name) <= 512):
        return None
    if not (isinstance(language, str) and 0 < len(language) <= 16):
        return None
    status, category = item.get("status"), item.get("category")
    components = item.get("components")
    return {
        "name": name,
        "language": language,
        "template_id": str(item["id"])[:64] if item.get("id") is not None else None,
        "status": str(status).upper()[:32] if status else "UNKNOWN",
        "category": str(category).upper()[:32] if category else None,
        "components": components if isinstance(components, list) else [],
    }


async def rows_of(conn: AsyncConnection, waba_id: str) -> dict[Key, dict[str, Any]]:
    rows = await conn.execute(sa.select(template).where(t.waba_id == waba_id))
    return {(row.name, row.language): dict(row._mapping) for row in rows}


async def store_listing(
    conn: AsyncConnection,
    waba_id: str,
    items: Iterable[dict[str, Any]],
    *,
    now: datetime,
    complete: bool,
) -> int:
    """Store what Meta listed; with `complete` (every page of the WABA was read), the WABA is
    synced and templates it no longer lists become DELETED. Returns how many changed."""
    before = await rows_of(conn, waba_id)
    listed: dict[Key, dict[str, Any]] = {}
    for item in items:
        values = from_meta(item)
        if values is not None:
            listed[values["name"], values["language"]] = values
    changes = []
    for key, values in listed.items():
        old = before.get(key)
        values["quality"] = old["quality"] if old else None  # the listing does not give it
        if old is None or any(old[f] != values[f] for f in _FIELDS):
            changes.append((old, {"waba_id": waba_id, **values}))
    if complete:
        for key, old in before.items():
            if key not in listed and old["status"] != DELETED:
                changes.append((old, {**old, "status": DELETED}))
    await _write(conn, changes, now)
    if complete:
        await mark_synced(conn, waba_id, now=now)
    return len(changes)


async def change(
    conn: AsyncConnection,
    waba_id: str,
    name: str,
    language: str,
    *,
    now: datetime,
    status: str | None = None,
    quality: str | None = None,
    category: str | None = None,
    template_id: str | None = None,
) -> bool:
    """A webhook's change of one template (created when unknown and the change gives its
    status: a quality alone says nothing of whether it may be sent); whether anything changed."""
    query = sa.select(template).where(t.waba_id == waba_id, t.name == name, t.language == language)
    found = (await conn.execute(query)).first()
    old = dict(found._mapping) if found is not None else None
    if old is None and status is None:
        return False
    new = (
        dict(old)
        if old
        else {
            "waba_id": waba_id,
            "name": name,
            "language": language,
            "template_id": template_id,
            "status": status,
            "category": category,
            "quality": None,
            "components": [],
        }
    )
    for field, value in (("status", status), ("quality", quality), ("category", category)):
        if value is not None:
            new[field] = value
    if old is not None and all(old[f] == new[f] for f in _FIELDS):
        return False
    await _write(conn, [(old, new)], now)
    return True


async def mark_synced(
    conn: AsyncConnection, waba_id: str, *, now: datetime, error: str | None = None
) -> None:
    """A complete read (`synced_at` moves), or a failed one (only its error is kept)."""
    values: dict[str, Any] = {"last_error": error}
    if error is None:
        values["synced_at"] = now
    stmt = insert(conn, template_sync).values(waba_id=waba_id, attempted_at=now, **values)
    await conn.execute(stmt.on_conflict_do_update(index_elements=["waba_id"], set_=values))


async def _write(
    conn: AsyncConnection,
    changes: list[tuple[dict[str, Any] | None, dict[str, Any]]],
    now: datetime,
) -> None:
    if not changes:
        return
    rows = [{**new, "updated_at": now} for _, new in changes]
    stmt = insert(conn, template)
    await conn.execute(
        stmt.on_conflict_do_update(
            index_elements=["waba_id", "name", "language"],
            set_={f: stmt.excluded[f] for f in (*_FIELDS, "updated_at")},
        ),
        rows,
    )
    waba_id = rows[0]["waba_id"]
    orgs = await _orgs_of(conn, waba_id)
    await outgoing.write(
        conn,
        [
            outgoing.Outgoing(
                org_id=org_id,
                type=outgoing.TEMPLATE_UPDATED,
                data=outgoing.json_ready(view(row)),
                occurred_at=now,
            )
            for row in rows
            for org_id in orgs
        ],
    )
    for old, new in changes:
        if new["status"] == APPROVED and (old is None or old["status"] != APPROVED):
            await release_paused(conn, waba_id, new["name"], new["language"], now=now)


async def _orgs_of(conn: AsyncConnection, waba_id: str) -> list[str]:
    rows = await conn.execute(
        sa.select(s.org_id)
        .distinct()
        .where(s.waba_id == waba_id, s.deleted_at.is_(None), s.org_id.is_not(None))
    )
    return sorted(rows.scalars())


async def release_paused(
    conn: AsyncConnection, waba_id: str, name: str, language: str, *, now: datetime
) -> int:
    """The template is APPROVED again: its messages held by its pause are due now."""
    senders = sa.select(s.id).where(s.waba_id == waba_id).scalar_subquery()
    rows = (
        await conn.execute(
            outbound_message.update()
            .where(
                m.status.in_(CLAIMABLE),
                m.waiting_reason == WAITING_REASON,
                sa.func.coalesce(m.sender_id, SHARED_SENDER_ID).in_(senders),
                m.payload["name"].as_string() == name,
                m.payload["language"].as_string() == language,
            )
            .values(waiting_reason=None, next_attempt_at=now, updated_at=now)
            .returning(m.id, m.org_id)
        )
    ).all()
    await record_message_events(
        conn,
        [
            message_event_row(
                message_id=row.id,
                org_id=row.org_id,
                at=now,
                type="template_approved",
                actor="templates",
                details={"name": name, "language": language},
            )
            for row in rows
        ],
    )
    return len(rows)


async def org_wabas(conn: AsyncConnection, org_id: str, *, shared_available: bool) -> set[str]:
    """The WABAs the organisation sends from: its senders', else the shared sender's."""
    query = sa.select(s.waba_id).where(s.org_id == org_id, s.deleted_at.is_(None))
    own = (await conn.execute(query)).all()
    wabas = {row.waba_id for row in own if row.waba_id}
    if not own and shared_available:
        shared = await conn.scalar(sa.select(s.waba_id).where(s.id == SHARED_SENDER_ID))
        if shared:
            wabas.add(shared)
    return wabas


async def listed(conn: AsyncConnection, waba_ids: set[str]) -> list[dict[str, Any]]:
    if not waba_ids:
        return []
    rows = await conn.execute(
        sa.select(template).where(t.waba_id.in_(waba_ids)).order_by(t.waba_id, t.name, t.language)
    )
    return [view(row) for row in rows]
