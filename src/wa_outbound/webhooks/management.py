"""Management webhooks, routed by the entry's WABA id: account restrictions and bans pause every
sender of the WABA, a reinstatement (or the restriction's end) resumes them; Meta's messaging
limit and throughput upgrades update the WABA and its numbers.

Values are read tolerantly: an unexpected shape changes nothing and is reported as ignored.
"""

from __future__ import annotations

import logging
from collections import Counter
from datetime import datetime
from typing import Any

from sqlalchemy.ext.asyncio import AsyncConnection

from wa_outbound.events import record_audit
from wa_outbound.senders import health
from wa_outbound.senders import store as senders
from wa_outbound.senders.reporting import report_updated
from wa_outbound.webhooks.payload import ManagementChange, timestamp
from wa_outbound.webhooks.routing import known_wabas

log = logging.getLogger(__name__)

ACTOR = "webhook"
RESTRICTED = "account_restricted"
APPLIED, IGNORED, UNROUTED = "applied", "ignored", "unrouted"
UPGRADED_MESSAGES_PER_SECOND = 1000.0
TIERS = ("TIER_250", "TIER_2K", "TIER_10K", "TIER_100K", "TIER_UNLIMITED")
# Meta's figures for the daily reach of a portfolio, as tiers (2,000 replaced 1,000 in 2025).
_TIER_OF_REACH = {
    250: "TIER_250",
    1000: "TIER_2K",
    2000: "TIER_2K",
    10_000: "TIER_10K",
    100_000: "TIER_100K",
}


async def apply_management(
    conn: AsyncConnection, changes: list[ManagementChange], *, now: datetime
) -> Counter[tuple[str, str]]:
    """Apply each change in order; count them by (field, "applied" | "ignored" | "unrouted")."""
    done: Counter[tuple[str, str]] = Counter()
    known = await known_wabas(conn, {c.waba_id for c in changes if c.waba_id is not None})
    for change in changes:
        if change.waba_id not in known:
            done[change.field, UNROUTED] += 1
            continue
        assert change.waba_id is not None
        applied = await _HANDLERS[change.field](conn, change.waba_id, change.value, now)
        done[change.field, APPLIED if applied else IGNORED] += 1
    return done


async def _account_update(
    conn: AsyncConnection, waba_id: str, value: dict[str, Any], now: datetime
) -> bool:
    event = value.get("event")
    ban = value.get("ban_info")
    ban_state = ban.get("waba_ban_state") if isinstance(ban, dict) else None
    if event == "ACCOUNT_RESTRICTION":
        restrictions = [
            item
            for item in _dicts(value.get("restriction_info"))
            if item.get("restriction_type") == "RESTRICTED_BIZ_INITIATED_MESSAGING"
        ]
        if not restrictions:
            return False
        ends = [timestamp(item.get("expiration")) for item in restrictions]
        # A restriction with no readable end holds until Meta reinstates the account.
        until = None if None in ends else max(end for end in ends if end is not None)
        await _restrict(conn, waba_id, until, now, {"event": event})
        return True
    if event == "DISABLED_UPDATE" and ban_state == "DISABLE":
        await _restrict(conn, waba_id, None, now, {"event": event, "waba_ban_state": ban_state})
        return True
    if event == "REINSTATE" or ban_state == "REINSTATE":
        await lift(conn, waba_id, now=now, why=str(event))
        return True
    return False


async def _restrict(
    conn: AsyncConnection,
    waba_id: str,
    until: datetime | None,
    now: datetime,
    details: dict[str, object],
) -> None:
    await senders.set_restricted_until(conn, waba_id, until, now=now)
    details = details | {"restricted_until": until.isoformat() if until else None}
    paused = await health.add_reason(
        conn, RESTRICTED, now=now, actor=ACTOR, waba_id=waba_id, details=details
    )
    log.warning(
        "account restricted by Meta: its senders are paused",
        extra={"waba_id": waba_id, "paused": len(paused), **details},
    )


async def lift(conn: AsyncConnection, waba_id: str, *, now: datetime, why: str) -> None:
    """The WABA's restriction is over: `account_restricted` leaves its senders."""
    await senders.set_restricted_until(conn, waba_id, None, now=now)
    resumed = await health.remove_reasons(conn, [RESTRICTED], now=now, actor=ACTOR, waba_id=waba_id)
    log.warning(
        "account restriction lifted",
        extra={"waba_id": waba_id, "why": why, "senders": len(resumed)},
    )


async def lift_ended_restrictions(conn: AsyncConnection, *, now: datetime) -> list[str]:
    """The periodic part: lift the restrictions whose `expiration` has passed."""
    ended = await senders.restrictions_ended(conn, now)
    for waba_id in ended:
        await lift(conn, waba_id, now=now, why="expired")
    return ended


async def _quality_update(
    conn: AsyncConnection, waba_id: str, value: dict[str, Any], now: datetime
) -> bool:
    applied = False
    if "current_limit" in value:
        await _set_limit(conn, waba_id, value["current_limit"], now, "phone_number_quality_update")
        applied = True
    if value.get("event") == "THROUGHPUT_UPGRADE":
        applied = await _upgrade(conn, waba_id, value.get("display_phone_number"), now) or applied
    return applied


async def _capability_update(
    conn: AsyncConnection, waba_id: str, value: dict[str, Any], now: datetime
) -> bool:
    key = "max_daily_conversations_per_business"
    if key not in value:
        return False
    await _set_limit(conn, waba_id, value[key], now, "business_capability_update")
    return True


async def _set_limit(
    conn: AsyncConnection, waba_id: str, given: Any, now: datetime, source: str
) -> None:
    tier = tier_of(given)
    before = await senders.messaging_limit(conn, waba_id)
    await senders.set_messaging_limit(conn, waba_id, tier, now=now)
    if tier != before:
        await record_audit(
            conn,
            org_id=None,
            at=now,
            action="waba.messaging_limit",
            actor=ACTOR,
            subject=waba_id,
            details={"from": before, "to": tier, "given": str(given)[:64], "source": source},
        )
        await report_updated(conn, now=now, waba_id=waba_id)


async def _upgrade(conn: AsyncConnection, waba_id: str, display: Any, now: datetime) -> bool:
    """THROUGHPUT_UPGRADE: the number (by its display number, digits compared) sends up to
    1,000 messages per second."""
    wanted = _digits(display)
    if not wanted:
        return False
    upgraded = False
    for sender in await senders.of_waba(conn, waba_id):
        if _digits(sender.display_phone_number) != wanted:
            continue
        await senders.set_messages_per_second(
            conn, sender.id, UPGRADED_MESSAGES_PER_SECOND, now=now
        )
        await report_updated(conn, now=now, sender_ids=[sender.id])
        await record_audit(
            conn,
            org_id=sender.org_id,
            at=now,
            action="sender.throughput_upgraded",
            actor=ACTOR,
            subject=str(sender.id),
            details={
                "from": sender.messages_per_second,
                "to": UPGRADED_MESSAGES_PER_SECOND,
            },
        )
        upgraded = True
    return upgraded


def tier_of(value: Any) -> str | None:
    """Meta's messaging limit as one of TIERS: `TIER_*` or a daily reach (250, 1000 or 2000,
    10000, 100000); None, no cap, for anything else."""
    if isinstance(value, str):
        text = value.strip().upper()
        if text in TIERS:
            return text
        if text == "TIER_1K":
            return "TIER_2K"
        value = text.removeprefix("TIER_")
        if not value.isdigit():
            return None
    if isinstance(value, bool) or not isinstance(value, int | str):
        return None
    return _TIER_OF_REACH.get(int(value))


def _digits(value: Any) -> str:
    return "".join(ch for ch in value if ch.isdigit()) if isinstance(value, str) else ""


def _dicts(value: Any) -> list[dict[str, Any]]:
    return [item for item in value if isinstance(item, dict)] if isinstance(value, list) else []


_HANDLERS = {
    "account_update": _account_update,
    "phone_number_quality_update": _quality_update,
    "business_capability_update": _capability_update,
}
