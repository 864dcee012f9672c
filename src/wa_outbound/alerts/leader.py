"""Which replica evaluates the alerts: the leader of `db.leader`, under the alerts' own key."""

from __future__ import annotations

from sqlalchemy.ext.asyncio import AsyncEngine

from wa_outbound.db import leader

# Any fixed bigint shared by every replica: "wa-alert" in ASCII.
LEADER_LOCK_KEY = leader.lock_key(b"wa-alert")


class Leadership(leader.Leadership):
    def __init__(self, engine: AsyncEngine, *, key: int = LEADER_LOCK_KEY) -> None:
        super().__init__(engine, key=key, job="alert evaluation")
