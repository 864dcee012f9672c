"""Request dependencies: the lifespan's state, and who is calling."""

from __future__ import annotations

from collections.abc import Callable
from dataclasses import dataclass
from typing import Annotated, TypedDict

from fastapi import Depends, Header, Request
from fastapi.security import HTTPAuthorizationCredentials, HTTPBearer
from sqlalchemy.ext.asyncio import AsyncEngine

from wa_outbound.config import Settings
from wa_outbound.db.revision import SchemaWatch
from wa_outbound.errors import Forbidden, InvalidRequest, NotFound, Unauthorized
from wa_outbound.metrics import Metrics
from wa_outbound.orgs.auth import Principal, admin_token_matches, authenticate_hash, hash_key
from wa_outbound.orgs.key_cache import ApiKeyCache
from wa_outbound.orgs.organizations import org_exists
from wa_outbound.ratelimit import RateLimiter
from wa_outbound.templates.sync import TemplateSync
from wa_outbound.webhooks.applier import WebhookIntake
from wa_outbound.workers import Supervisor


class State(TypedDict):
    """What the lifespan hands to every request (`request.state`)."""

    settings: Settings
    engine: AsyncEngine
    metrics: Metrics
    supervisor: Supervisor
    wake_dispatcher: Callable[[], None]
    limiter: RateLimiter
    api_keys: ApiKeyCache
    schema: SchemaWatch
    templates: TemplateSync
    webhook_intake: WebhookIntake | None  # PostgreSQL's group-committed intake


# Every dependency is `async def` so that FastAPI calls it on the event loop: a plain `def`
# dependency is sent to the thread pool, a hop far dearer than the work it does.
async def _engine(request: Request) -> AsyncEngine:
    engine: AsyncEngine = request.state.engine
    return engine


async def _settings(request: Request) -> Settings:
    settings: Settings = request.state.settings
    return settings


async def _metrics(request: Request) -> Metrics:
    metrics: Metrics = request.state.metrics
    return metrics


async def _api_keys(request: Request) -> ApiKeyCache:
    api_keys: ApiKeyCache = request.state.api_keys
    return api_keys


async def _templates(request: Request) -> TemplateSync:
    templates: TemplateSync = request.state.templates
    return templates


async def _limiter(request: Request) -> RateLimiter:
    limiter: RateLimiter = request.state.limiter
    return limiter


bearer_scheme = HTTPBearer(auto_error=False, description="An API key, or the admin token.")
Credentials = Annotated[HTTPAuthorizationCredentials | None, Depends(bearer_scheme)]


def wake_dispatcher(request: Request) -> None:
    """Newly queued work (committed): the local dispatcher claims it now, and the other
    replicas hear a NOTIFY shortly."""
    request.state.wake_dispatcher()


def _bearer(credentials: HTTPAuthorizationCredentials | None) -> str:
    if credentials is None or not credentials.credentials.strip():
        raise Unauthorized()
    return credentials.credentials.strip()


async def principal(request: Request, credentials: Credentials) -> Principal:
    """The organisation an API key stands for (401 when the key is missing, unknown or
    revoked)."""
    key_hash = hash_key(_bearer(credentials))
    cache = await _api_keys(request)

    async def lookup() -> Principal | None:
        async with (await _engine(request)).connect() as conn:
            return await authenticate_hash(conn, key_hash)

    found = await cache.fetch(key_hash, lookup)
    if found is None:
        raise Unauthorized("The API key is unknown or revoked.")
    return found


@dataclass(frozen=True, slots=True)
class Caller:
    """An org's API key, or the admin token acting for the org named in `X-Org-Id`."""

    org_id: str
    actor: str
    is_admin: bool


OrgIdHeader = Annotated[
    str | None,
    Header(
        alias="X-Org-Id",
        max_length=64,
        description="With the admin token: the organisation to act for.",
    ),
]


async def _caller(
    request: Request, credentials: Credentials, x_org_id: OrgIdHeader = None
) -> Caller:
    token = _bearer(credentials)
    configured = (await _settings(request)).admin_token.get_secret_value()
    if configured and admin_token_matches(configured, token):
        if not x_org_id:
            raise InvalidRequest("X-Org-Id is required with the admin token", field="X-Org-Id")
        async with (await _engine(request)).connect() as conn:
            if not await org_exists(conn, x_org_id):
                raise NotFound(f"organisation {x_org_id!r} not found")
        return Caller(x_org_id, "admin", is_admin=True)
    found = await principal(request, credentials)
    return Caller(found.org_id, found.actor, is_admin=False)


async def _admin(request: Request, credentials: Credentials) -> str:
    configured = (await _settings(request)).admin_token.get_secret_value()
    if not configured:
        raise Forbidden("The admin API is disabled: WA_ADMIN_TOKEN is not set.")
    if not admin_token_matches(configured, _bearer(credentials)):
        raise Unauthorized("The admin token is not valid.")
    return "admin"


EngineDep = Annotated[AsyncEngine, Depends(_engine)]
SettingsDep = Annotated[Settings, Depends(_settings)]
MetricsDep = Annotated[Metrics, Depends(_metrics)]
PrincipalDep = Annotated[Principal, Depends(principal)]
AdminDep = Annotated[str, Depends(_admin)]
CallerDep = Annotated[Caller, Depends(_caller)]
TemplatesDep = Annotated[TemplateSync, Depends(_templates)]
LimiterDep = Annotated[RateLimiter, Depends(_limiter)]
ApiKeysDep = Annotated[ApiKeyCache, Depends(_api_keys)]
