"""Admin API (admin token): organisations and their API keys."""

from __future__ import annotations

import uuid
from typing import Any

from fastapi import APIRouter, Response

from wa_outbound.api.deps import AdminDep, ApiKeysDep, EngineDep, SettingsDep
from wa_outbound.api.errors import ERROR_RESPONSES
from wa_outbound.api.models import ApiKeyCreate, ApiKeyCreated, Org, OrgCreate
from wa_outbound.orgs import organizations

router = APIRouter(prefix="/v1/admin", tags=["admin"], responses=ERROR_RESPONSES)


@router.post("/orgs", status_code=201, response_model=Org, summary="Create an organisation")
async def create_org(
    body: OrgCreate, actor: AdminDep, engine: EngineDep, settings: SettingsDep
) -> dict[str, Any]:
    async with engine.begin() as conn:
        return await organizations.create_org(
            conn,
            name=body.name,
            org_id=body.id,
            daily_quota=body.daily_quota
            if body.daily_quota is not None
            else settings.default_daily_quota,
            messages_per_second=body.messages_per_second or settings.default_messages_per_second,
            actor=actor,
        )


@router.get("/orgs/{org_id}", response_model=Org, summary="Read an organisation")
async def get_org(org_id: str, _actor: AdminDep, engine: EngineDep) -> dict[str, Any]:
    async with engine.connect() as conn:
        return await organizations.get_org(conn, org_id)


@router.post(
    "/orgs/{org_id}/api-keys",
    status_code=201,
    response_model=ApiKeyCreated,
    summary="Create an API key (the plain key is returned only here)",
)
async def create_api_key(
    org_id: str, actor: AdminDep, engine: EngineDep, body: ApiKeyCreate | None = None
) -> dict[str, Any]:
    async with engine.begin() as conn:
        key = await organizations.create_api_key(
            conn, org_id=org_id, name=body.name if body else None, actor=actor
        )
    return {"id": str(key.id), "prefix": key.prefix, "api_key": key.api_key}


@router.delete(
    "/orgs/{org_id}/api-keys/{key_id}",
    status_code=204,
    response_class=Response,
    summary="Revoke an API key at once",
)
async def revoke_api_key(
    org_id: str, key_id: uuid.UUID, actor: AdminDep, engine: EngineDep, api_keys: ApiKeysDep
) -> Response:
    async with engine.begin() as conn:
        await organizations.revoke_api_key(conn, org_id=org_id, key_id=key_id, actor=actor)
    # Other replicas hear of it through PostgreSQL (listener.API_KEYS_CHANNEL); here it is now.
    api_keys.clear()
    return Response(status_code=204)
