"""Admin API (admin token): organisations and their API keys."""

from __future__ import annotations

import uuid
from typing import Annotated, Any

from fastapi import APIRouter, Body, Path, Response

from wa_outbound.api import examples, responses
from wa_outbound.api.deps import AdminDep, ApiKeysDep, EngineDep, SettingsDep
from wa_outbound.api.models import ApiKeyCreate, ApiKeyCreated, Org, OrgCreate
from wa_outbound.orgs import organizations

router = APIRouter(prefix="/v1/admin", tags=["admin"])
OrgId = Annotated[str, Path(description="The organisation's id.", examples=[examples.ORG_ID])]
KeyId = Annotated[
    uuid.UUID,
    Path(
        description="The key's id, as its creation returned it.", examples=[examples.API_KEY["id"]]
    ),
]


@router.post(
    "/orgs",
    status_code=201,
    response_model=Org,
    responses=responses.CREATE_ORG,
    summary="Create an organisation",
    description="With the admin token. `id` is generated (`org_...`) when left out; "
    "`daily_quota` and `messages_per_second` default to `WA_DEFAULT_DAILY_QUOTA` and "
    "`WA_DEFAULT_MESSAGES_PER_SECOND`. Create its API keys next.",
)
async def create_org(
    body: Annotated[OrgCreate, Body(openapi_examples=examples.ORG_CREATE)],
    actor: AdminDep,
    engine: EngineDep,
    settings: SettingsDep,
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


@router.get(
    "/orgs/{org_id}",
    response_model=Org,
    responses=responses.GET_ORG,
    summary="Read an organisation",
    description="With the admin token: the organisation and its current limits.",
)
async def get_org(org_id: OrgId, _actor: AdminDep, engine: EngineDep) -> dict[str, Any]:
    async with engine.connect() as conn:
        return await organizations.get_org(conn, org_id)


@router.post(
    "/orgs/{org_id}/api-keys",
    status_code=201,
    response_model=ApiKeyCreated,
    responses=responses.CREATE_API_KEY,
    summary="Create an API key (the plain key is returned only here)",
    description="With the admin token. The service keeps only a hash of the key: store "
    "`api_key` now, it cannot be shown again. `prefix` identifies the key in logs and in "
    "timelines (`actor`). The body is optional.",
)
async def create_api_key(
    org_id: OrgId,
    actor: AdminDep,
    engine: EngineDep,
    body: Annotated[ApiKeyCreate | None, Body(openapi_examples=examples.API_KEY_CREATE)] = None,
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
    responses=responses.REVOKE_API_KEY,
    summary="Revoke an API key at once",
    description="With the admin token. The key stops working at once, on every replica. "
    "Revoking a key that is already revoked answers 404.",
)
async def revoke_api_key(
    org_id: OrgId, key_id: KeyId, actor: AdminDep, engine: EngineDep, api_keys: ApiKeysDep
) -> Response:
    async with engine.begin() as conn:
        await organizations.revoke_api_key(conn, org_id=org_id, key_id=key_id, actor=actor)
    # Other replicas hear of it through PostgreSQL (listener.API_KEYS_CHANNEL); here it is now.
    api_keys.clear()
    return Response(status_code=204)
