"""The Redis limiter's decision for a sender group: one admit.lua call deciding every limit.

An org's sender shares the org's hash tag, so its group's call also decides the org's quota.
The shared sender's messages belong to many orgs whose quota keys live in other slots: each org
is asked first (acquire.lua, one call per org), then one call decides the sender's limits, and
quota granted to what those limits refused is given back. The recipients a WABA reaches are
written to the database (`waba_reach`, authoritative) right after the call, before anything is
sent; Redis keeps a cache of them, loaded from the database when absent."""

from __future__ import annotations

import time
import uuid
from collections.abc import Awaitable, Callable
from datetime import UTC, datetime
from typing import Any

from sqlalchemy.ext.asyncio import AsyncEngine

from wa_outbound.ratelimit import senderdb
from wa_outbound.ratelimit.allotment import Allotter
from wa_outbound.ratelimit.decision import Decision
from wa_outbound.ratelimit.scripts import Scripts, keys, pair_key, sender_keys, sender_tag
from wa_outbound.ratelimit.senders import REASON_CODES, Candidate, SenderGroup, Verdict

MAX_CALLS = 5
# The cache of reached recipients is loaded again at least this often, so grants a replica made
# on the database while this Redis was unreachable are seen within the hour at worst.
REACH_LOADED_TTL_S = 3600

Acquire = Callable[[str, int], Awaitable[Decision]]


class RedisGroups:
    def __init__(
        self,
        scripts: Scripts,
        allotter: Allotter,
        engine: AsyncEngine,
        *,
        pair_interval_s: float,
        acquire: Acquire,
    ) -> None:
        self._scripts = scripts
        self._allotter = allotter
        self._engine = engine
        self._pair_interval_s = pair_interval_s
        self._acquire = acquire

    async def admit(self, group: SenderGroup) -> dict[uuid.UUID, Verdict]:
        rows = group.ordered()
        verdicts: dict[uuid.UUID, Verdict] = {}
        if group.org_id is not None:
            verdicts.update(await self._decide(group, rows, quota_org=group.org_id))
        else:
            asked: list[Candidate] = []
            for org_id in dict.fromkeys(row.org_id for row in rows):
                mine = [row for row in rows if row.org_id == org_id]
                decision = await self._acquire(org_id, len(mine))
                asked += mine[: decision.granted]
                for row in mine[decision.granted :]:
                    verdicts[row.id] = Verdict("quota", max(decision.retry_after_s, 0.01))
            decided = await self._decide(group, asked, quota_org=None)
            verdicts.update(decided)
            for org_id in dict.fromkeys(row.org_id for row in asked):
                refused = sum(1 for r in asked if r.org_id == org_id and not decided[r.id].granted)
                if refused:
                    await self._scripts.refund(org_id, refused)
        reached = [r.to for r in rows if r.reaches and verdicts[r.id].granted]
        if reached and group.cap is not None and group.waba_id:
            async with self._engine.begin() as conn:
                await senderdb.record_reached(
                    conn, group.waba_id, dict.fromkeys(reached), datetime.now(UTC)
                )
        return verdicts

    async def _decide(
        self, group: SenderGroup, rows: list[Candidate], *, quota_org: str | None
    ) -> dict[uuid.UUID, Verdict]:
        if not rows:
            return {}
        sender = str(group.sender_id)
        tag = sender_tag(group.org_id, sender)
        phones = list(dict.fromkeys(row.to for row in rows))
        index = {phone: i for i, phone in enumerate(phones, start=1)}
        script_keys = [
            *keys(quota_org or tag),
            *sender_keys(tag, sender, group.waba_id),
            *(pair_key(tag, sender, phone) for phone in phones),
        ]
        per_row: list[str | int | float] = []
        for row in rows:
            per_row += [index[row.to], 1 if row.reaches else 0, row.to]
        head: list[str | int | float] = [
            repr(group.messages_per_second),
            repr(self._pair_interval_s),
            -1 if group.cap is None else group.cap,
            1 if quota_org is not None else 0,
            len(rows),
        ]
        tail: list[str | int | float] = []
        reply: Any = None
        for _ in range(MAX_CALLS):
            reply = await self._scripts.admit(
                script_keys, [repr(time.time()), *head, *per_row, *tail]
            )
            tail = []
            if reply[0] == 1:
                break
            if reply[0] == -2 and group.waba_id:
                await self._load_reach(tag, group.waba_id)
            elif reply[0] == -1 and quota_org is not None:
                allotment = await self._allotter.allot(quota_org, reply[1], reply[2] / 1e6)
                tail = list(allotment.argv())
        if reply is None or reply[0] != 1:
            # The allotments kept missing the window's edge: nothing this time.
            return {row.id: Verdict("quota", 0.05) for row in rows}
        verdicts = {}
        for i, row in enumerate(rows):
            code, retry_ms = reply[1 + 2 * i], reply[2 + 2 * i]
            reason = REASON_CODES[code - 1] if code else None
            verdicts[row.id] = Verdict(reason, retry_ms / 1000)
        return verdicts

    async def _load_reach(self, tag: str, waba_id: str) -> None:
        async with self._engine.connect() as conn:
            reached = await senderdb.reached_since(conn, waba_id, datetime.now(UTC))
        await self._scripts.load_reach(tag, waba_id, reached, REACH_LOADED_TTL_S)
