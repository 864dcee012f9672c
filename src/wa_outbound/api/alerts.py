"""Alerts API (admin token): the alert history, newest incident first."""

from __future__ import annotations

from datetime import datetime
from typing import Annotated, Any, Literal

from fastapi import APIRouter, Depends, Query
from pydantic import BaseModel

from wa_outbound.alerts import state
from wa_outbound.api import responses
from wa_outbound.api.deps import AdminDep, EngineDep
from wa_outbound.api.limits import single_valued_query

router = APIRouter(
    prefix="/v1/alerts",
    tags=["alerts"],
    dependencies=[Depends(single_valued_query)],
)

AlertType = Literal[
    "dlq_growth",
    "stuck_messages",
    "queue_depth",
    "failure_rate",
    "escalation",
    "oldest_message_age",
    "sender_paused",
    "messaging_limit",
    "callback_endpoint_disabled",
]


class Alert(BaseModel):
    id: str
    type: AlertType
    severity: Literal["warning", "critical"]
    state: Literal["firing", "resolved"]
    summary: str
    details: dict[str, Any]
    first_fired_at: datetime
    last_notified_at: datetime | None
    resolved_at: datetime | None
    notifications: int


class AlertPage(BaseModel):
    items: list[Alert]
    next_cursor: str | None


def _view(row: dict[str, Any]) -> dict[str, Any]:
    keys = Alert.model_fields.keys() - {"id"}
    return {"id": str(row["id"]), **{key: row[key] for key in keys}}


@router.get(
    "",
    response_model=AlertPage,
    responses=responses.LIST_ALERTS,
    summary="List alerts, newest first",
    description="With the admin token: the alerts the evaluator raised across every "
    "organisation, newest incident first, optionally only those `firing` or `resolved`. "
    "Paged as `GET /v1/messages`.",
)
async def list_alerts(
    _actor: AdminDep,
    engine: EngineDep,
    state_: Annotated[Literal["firing", "resolved"] | None, Query(alias="state")] = None,
    limit: Annotated[int, Query(ge=1, le=500)] = 50,
    cursor: str | None = None,
) -> dict[str, Any]:
    async with engine.connect() as conn:
        rows, next_cursor = await state.list_alerts(conn, state=state_, limit=limit, cursor=cursor)
    return {"items": [_view(row) for row in rows], "next_cursor": next_cursor}
