"""Request dependencies: the lifespan's state, and who is calling."""

from __future__ import annotations

from collections.abc import Callable
from typing import Annotated, TypedDict

from fastapi import Depends, Request
from fastapi.security import HTTPAuthorizationCredentials, HTTPBearer
from sqlalchemy.ext.asyncio import AsyncEngine

from wa_outbound.config import Settings
from wa_outbound.db.revision import SchemaWatch
from wa_outbound.errors import Forbidden, Unauthorized
from wa_outbound.metrics import Metrics
from wa_outbound.orgs.auth import Principal, admin_token_matches, authenticate_hash, hash_key
from wa_outbound.orgs.key_cache import ApiKeyCache
from wa_outbound.ratelimit import RateLimiter
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


async def _limiter(request: Request) -> RateLimiter:
    limiter: RateLimiter = request.state.limiter
    return limiter


_bearer_scheme = HTTPBearer(auto_error=False, description="An API key, or the admin token.")
Credentials = Annotated[HTTPAuthorizationCredentials | None, Depends(_bearer_scheme)]


def wake_dispatcher(request: Request) -> None:
    """Newly queued work (committed): the local dispatcher claims it now, and the other
    replicas hear a NOTIFY shortly."""
    request.state.wake_dispatcher()


def _bearer(credentials: HTTPAuthorizationCredentials | None) -> str:
    if credentials is None or not credentials.credentials.strip():
        raise Unauthorized()
    return credentials.credentials.strip()


async def _principal(request: Request, credentials: Credentials) -> Principal:
    key_hash = hash_key(_bearer(credentials))
    cache = await _api_keys(request)
    principal = cache.get(key_hash)
    if principal is not None:
        return principal
    generation = cache.generation  # a revocation heard during the lookup voids its result
    async with (await _engine(request)).connect() as conn:
        principal = await authenticate_hash(conn, key_hash)
    if principal is None:
        raise Unauthorized("The API key is unknown or revoked.")
    cache.put(key_hash, principal, generation=generation)
    return principal


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
PrincipalDep = Annotated[Principal, Depends(_principal)]
AdminDep = Annotated[str, Depends(_admin)]
LimiterDep = Annotated[RateLimiter, Depends(_limiter)]
ApiKeysDep = Annotated[ApiKeyCache, Depends(_api_keys)]
