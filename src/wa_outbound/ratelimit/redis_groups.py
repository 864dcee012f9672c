"""The Redis limiter's decision for a batch's sender groups: one admit.lua call per org, deciding
its senders' groups one after another, the calls of every org pipelined together, so a batch
costs one round trip.

An org's senders share the org's hash tag, so its call also decides the org's quota. The shared
sender's messages belong to many orgs whose quota keys live in other slots: each org is asked
first (acquire.lua, one call per org), then one call decides the sender's limits, and quota
granted to what those limits refused is given back. A call that needs the database first
(quota to allot, reached recipients to load) is finished on its own, from the sender it stopped
at. The recipients a WABA reaches are written to the database (`waba_reach`, authoritative)
right after the calls, before anything is sent; Redis keeps a cache of them, loaded from the
database when absent."""

from __future__ import annotations

import time
import uuid
from collections.abc import Awaitable, Callable, Mapping
from dataclasses import dataclass
from datetime import UTC, datetime
from typing import Any

from sqlalchemy.ext.asyncio import AsyncEngine

from wa_outbound.ratelimit import senderdb
from wa_outbound.ratelimit.allotment import Allotter
from wa_outbound.ratelimit.connections import bulk
from wa_outbound.ratelimit.decision import Decision
from wa_outbound.ratelimit.scripts import (
    ADMIT_KEYS,
    ADMIT_SETTINGS,
    SENDER_ARGS,
    Scripts,
    admit_head,
    admit_reach,
    admit_settings,
    keys,
    pair_epoch,
    sender_settings,
    sender_tag,
)
from wa_outbound.ratelimit.senders import (
    REASON_CODES,
    AllGranted,
    Candidate,
    SenderGroup,
    Verdict,
)

MAX_CALLS = 5
# The cache of reached recipients is loaded again at least this often, so grants a replica made
# on the database while this Redis was unreachable are seen within the hour at worst.
REACH_LOADED_TTL_S = 3600

Acquire = Callable[[str, int], Awaitable[Decision]]
Verdicts = Mapping[uuid.UUID, Verdict]


@dataclass(frozen=True, slots=True)
class Call:
    """One admit.lua call for sender groups under one hash tag, packed but for `now` (which goes
    between the keys and the rest): its head (the script and keys), settings and messages."""

    groups: list[SenderGroup]
    rows: list[list[Candidate]]
    """Each group's messages, oldest first."""
    tag: str
    quota_org: str | None
    head: bytes
    packed_rest: bytes

    @property
    def key(self) -> str:
        """A key of the call: every key of it shares this one's hash slot (the tag's)."""
        return keys(self.quota_org or self.tag)[0]

    def command(self, *tail: str | int | float) -> bytes:
        senders = len(self.groups)
        count = 3 + ADMIT_KEYS + 2 * senders + 1 + ADMIT_SETTINGS + SENDER_ARGS * senders
        count += sum(map(len, self.rows)) + len(tail)
        now = repr(time.time()).encode()
        parts = [b"*%d\r\n" % count, self.head, b"$%d\r\n%b\r\n" % (len(now), now)]
        parts.append(self.packed_rest)
        parts.extend(map(bulk, tail))
        return b"".join(parts)


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

    async def admit_many(self, groups: list[SenderGroup]) -> list[Verdicts]:
        """Every group's verdicts, in the order of `groups`."""
        results: list[Verdicts] = [{} for _ in groups]
        by_org: dict[str, list[int]] = {}
        for i, group in enumerate(groups):
            if group.org_id is not None and group.rows:
                by_org.setdefault(group.org_id, []).append(i)
        calls = [
            self._call([groups[i] for i in owned], [groups[i].ordered() for i in owned], org_id)
            for org_id, owned in by_org.items()
        ]
        if calls:
            replies = await self._scripts.admit_many([(call.key, call.command()) for call in calls])
            for owned, call, reply in zip(by_org.values(), calls, replies, strict=True):
                for i, verdicts in zip(owned, await self._finish(call, reply), strict=True):
                    results[i] = verdicts
        for i, group in enumerate(groups):
            if group.org_id is None and group.rows:
                results[i] = await self._admit_shared(group)
        await self._record_reached(groups, results)
        return results

    async def _admit_shared(self, group: SenderGroup) -> Verdicts:
        verdicts: dict[uuid.UUID, Verdict] = {}
        asked: list[Candidate] = []
        rows = group.ordered()
        for org_id in dict.fromkeys(row.org_id for row in rows):
            mine = [row for row in rows if row.org_id == org_id]
            decision = await self._acquire(org_id, len(mine))
            asked += mine[: decision.granted]
            for row in mine[decision.granted :]:
                verdicts[row.id] = Verdict("quota", max(decision.retry_after_s, 0.01))
        if not asked:
            return verdicts
        call = self._call([group], [asked], None)
        (decided,) = await self._finish(call, await self._scripts.admit(call.key, call.command()))
        verdicts.update(decided)
        for org_id in dict.fromkeys(row.org_id for row in asked):
            refused = sum(1 for r in asked if r.org_id == org_id and not decided[r.id].granted)
            if refused:
                await self._scripts.refund(org_id, refused)
        return verdicts

    def _call(
        self, groups: list[SenderGroup], rows: list[list[Candidate]], quota_org: str | None
    ) -> Call:
        tag = sender_tag(groups[0].org_id, str(groups[0].sender_id))
        interval_s = self._pair_interval_s
        epoch = pair_epoch(interval_s, time.time())
        head = [admit_head(self._scripts.admit_sha, quota_org or tag, tag, epoch, len(groups))]
        head += [admit_reach(tag, group.waba_id) for group in groups]
        parts = [admit_settings(interval_s, 1 if quota_org is not None else 0, len(groups))]
        for group, mine in zip(groups, rows, strict=True):
            cap = -1 if group.cap is None else group.cap
            parts.append(
                sender_settings(group.sender_id.hex, group.messages_per_second, cap, len(mine))
            )
            parts.append(bulk("".join(["1" if row.reaches else "0" for row in mine])))
        for group, mine in zip(groups, rows, strict=True):
            # Each message's pair field, `pair_field(sender, recipient)`, ready made; encoded
            # at once when ASCII (numbers are), where a character is a byte.
            prefix = group.sender_id.hex + ":"
            fields = "".join([f"${len(row.to) + 33}\r\n{prefix}{row.to}\r\n" for row in mine])
            if fields.isascii():
                parts.append(fields.encode())
            else:
                parts.extend(bulk(prefix + row.to) for row in mine)
        return Call(groups, rows, tag, quota_org, b"".join(head), b"".join(parts))

    async def _finish(self, call: Call, reply: Any) -> list[Verdicts]:
        """Each group's verdicts from a reply, after the database's part when the script asked
        for it (and then from the sender it stopped at)."""
        decided: list[Verdicts] = []
        for _ in range(MAX_CALLS):
            if reply.__class__ is int or reply[0] == 1:
                return decided + _verdicts(call.rows, reply)
            tail: list[str | int | float] = []
            stopped = reply[1] - 1
            if reply[0] == -2 and call.groups[stopped].waba_id:
                await self._load_reach(call.tag, call.groups[stopped].waba_id)
                call = self._call(call.groups, call.rows, call.quota_org)  # a later pair epoch
            elif reply[0] == -1 and (org_id := call.quota_org) is not None:
                decided += _verdicts(call.rows[:stopped], [1, *reply[4:]])
                call = self._call(call.groups[stopped:], call.rows[stopped:], org_id)
                allotment = await self._allotter.allot(org_id, reply[2], reply[3] / 1e6)
                tail = list(allotment.argv())
            reply = await self._scripts.admit(call.key, call.command(*tail))
        if reply.__class__ is int or reply[0] == 1:
            return decided + _verdicts(call.rows, reply)
        # The allotments kept missing the window's edge: nothing this time.
        return decided + [{row.id: Verdict("quota", 0.05) for row in rows} for rows in call.rows]

    async def _load_reach(self, tag: str, waba_id: str) -> None:
        async with self._engine.connect() as conn:
            reached = await senderdb.reached_since(conn, waba_id, datetime.now(UTC))
        await self._scripts.load_reach(tag, waba_id, reached, REACH_LOADED_TTL_S)

    async def _record_reached(self, groups: list[SenderGroup], results: list[Verdicts]) -> None:
        reached: dict[str, list[str]] = {}
        for group, verdicts in zip(groups, results, strict=True):
            if group.cap is None or not group.waba_id:
                continue
            phones = [r.to for r in group.rows if r.reaches and verdicts[r.id].granted]
            if phones:
                reached.setdefault(group.waba_id, []).extend(phones)
        if reached:
            now = datetime.now(UTC)
            async with self._engine.begin() as conn:
                for waba_id, phones in reached.items():
                    await senderdb.record_reached(conn, waba_id, dict.fromkeys(phones), now)


def _verdicts(rows: list[list[Candidate]], reply: Any) -> list[Verdicts]:
    """Each group's verdicts from a reply that decided them all (its codes from reply[1])."""
    if reply.__class__ is int:
        return [AllGranted(mine) for mine in rows]
    out: list[Verdicts] = []
    at = 1
    for mine in rows:
        verdicts = {}
        for row in mine:
            code, retry_ms = reply[at], reply[at + 1]
            verdicts[row.id] = Verdict(REASON_CODES[code - 1] if code else None, retry_ms / 1000)
            at += 2
        out.append(verdicts)
    return out
