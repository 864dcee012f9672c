"""Templates API: the registry of the organisation's WABAs, and a sync on demand (org key, or
admin + `X-Org-Id`)."""

from __future__ import annotations

from datetime import datetime
from typing import Annotated, Any

from fastapi import APIRouter, Query
from pydantic import BaseModel
from sqlalchemy.ext.asyncio import AsyncEngine

from wa_outbound.api import responses
from wa_outbound.api.deps import CallerDep, EngineDep, SettingsDep, TemplatesDep
from wa_outbound.api.openapi import errors
from wa_outbound.api.template_answers import BAD_WABA, SYNC, TEMPLATES, UNKNOWN_WABA
from wa_outbound.config import Settings
from wa_outbound.errors import NotFound
from wa_outbound.templates import registry

router = APIRouter(prefix="/v1/templates", tags=["templates"])
WabaQuery = Annotated[
    str | None, Query(max_length=64, description="Only this WABA (one of the organisation's).")
]


class Template(BaseModel):
    waba_id: str
    name: str
    language: str
    status: str
    category: str | None
    quality: str | None
    components: list[Any]
    updated_at: datetime


class TemplateList(BaseModel):
    items: list[Template]


class SyncStarted(BaseModel):
    waba_ids: list[str]


async def _wabas(
    engine: AsyncEngine, settings: Settings, org_id: str, waba_id: str | None
) -> set[str]:
    async with engine.connect() as conn:
        wabas = await registry.org_wabas(conn, org_id, shared_available=settings.has_shared_sender)
    if waba_id is None:
        return wabas
    if waba_id not in wabas:
        raise NotFound("WABA not found")
    return {waba_id}


@router.get(
    "",
    response_model=TemplateList,
    responses={**TEMPLATES, **errors(UNKNOWN_WABA, BAD_WABA, *responses.ORG_CALL)},
    summary="List the templates of the organisation's WABAs",
    description="The registry of each WABA the organisation sends from (its senders' WABAs, "
    "or the shared sender's), as read from Meta and kept current by Meta's template webhooks. "
    "A template whose status is not `APPROVED` is refused when queued "
    "(`template_not_approved`); while it is `PAUSED`, its queued messages wait.",
)
async def list_templates(
    caller: CallerDep, engine: EngineDep, settings: SettingsDep, waba_id: WabaQuery = None
) -> dict[str, Any]:
    wabas = await _wabas(engine, settings, caller.org_id, waba_id)
    async with engine.connect() as conn:
        return {"items": await registry.listed(conn, wabas)}


@router.post(
    "/sync",
    status_code=202,
    response_model=SyncStarted,
    responses={**SYNC, **errors(UNKNOWN_WABA, BAD_WABA, *responses.ORG_CALL)},
    summary="Read the templates from Meta again",
    description="Reads every template of the organisation's WABAs (or of `waba_id`) from Meta "
    "now, in the background; `GET /v1/templates` shows the result. This also happens every "
    "`WA_TEMPLATE_SYNC_SECONDS` and when a sender of a new WABA is added.",
)
async def sync_templates(
    caller: CallerDep,
    engine: EngineDep,
    settings: SettingsDep,
    templates: TemplatesDep,
    waba_id: WabaQuery = None,
) -> dict[str, Any]:
    wabas = sorted(await _wabas(engine, settings, caller.org_id, waba_id))
    for waba in wabas:
        templates.request(waba)
    return {"waba_ids": wabas}
