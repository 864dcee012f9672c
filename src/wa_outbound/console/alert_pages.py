"""Alerts, firing and resolved (alerts.state, as GET /v1/alerts reads them).

The admin sees every alert, as the admin API does. An organisation sees only the alerts about
itself (those whose details name its `org_id`: its paused senders...): the deployment-wide ones
(queue depth, DLQ growth across every organisation) say things about other organisations.
"""

from __future__ import annotations

from typing import Any

from fastapi import APIRouter, Request, Response

from wa_outbound.alerts import state
from wa_outbound.console.identity import OrgOperator, OrgOperatorDep
from wa_outbound.console.web import ConsoleRoute, page

router = APIRouter(route_class=ConsoleRoute)
FIRING_LIMIT, RESOLVED_LIMIT = 200, 50


def _visible(operator: OrgOperator, rows: list[dict[str, Any]]) -> list[dict[str, Any]]:
    if operator.is_admin:
        return rows
    return [row for row in rows if (row["details"] or {}).get("org_id") == operator.org_id]


@router.get("/alerts")
async def alerts(request: Request, operator: OrgOperatorDep) -> Response:
    async with request.state.engine.connect() as conn:
        firing, _ = await state.list_alerts(
            conn, state=state.FIRING, limit=FIRING_LIMIT, cursor=None
        )
        resolved, _ = await state.list_alerts(
            conn, state=state.RESOLVED, limit=RESOLVED_LIMIT, cursor=None
        )
    return page(
        request,
        "alerts.html",
        operator=operator,
        nav="alerts",
        firing=_visible(operator, firing),
        resolved=_visible(operator, resolved),
    )
