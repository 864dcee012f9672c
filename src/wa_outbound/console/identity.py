"""Who is using the console: the session of the request's cookie, checked on every request.

An org session stands for as long as its API key authenticates, asked of the API's own key
cache (orgs/key_cache: revocations clear it on every replica): revoking the key ends the
session at its next request. An admin session stands while the admin token it signed in with
is still WA_ADMIN_TOKEN. The actor in the audit trail is `console:<key prefix>` or
`console:admin`.
"""

from __future__ import annotations

import hmac
from dataclasses import dataclass
from typing import Annotated

from fastapi import Depends, Request
from sqlalchemy.ext.asyncio import AsyncEngine

from wa_outbound.config import Settings
from wa_outbound.console import sessions
from wa_outbound.console.web import OrgRequired, SignInRequired, cookie_name
from wa_outbound.db.types import utcnow
from wa_outbound.orgs.auth import Principal, authenticate_hash, hash_key
from wa_outbound.orgs.key_cache import ApiKeyCache

ADMIN_ACTOR = "console:admin"


@dataclass(frozen=True, slots=True)
class Operator:
    """A live console session. `org_id` is None for an admin who has not picked one yet."""

    session_id: str
    org_id: str | None
    is_admin: bool
    actor: str
    csrf_token: str


@dataclass(frozen=True, slots=True)
class OrgOperator(Operator):
    """An operator acting for an organisation: what every page but sign-in needs."""

    org_id: str


def actor_for(principal: Principal) -> str:
    return f"console:{principal.key_prefix}"


async def principal_of(engine: AsyncEngine, cache: ApiKeyCache, key_hash: str) -> Principal | None:
    """The key's principal as the API finds it: the cache first, then the database."""
    principal = cache.get(key_hash)
    if principal is not None:
        return principal
    generation = cache.generation  # a revocation heard during the lookup voids its result
    async with engine.connect() as conn:
        principal = await authenticate_hash(conn, key_hash)
    if principal is not None:
        cache.put(key_hash, principal, generation=generation)
    return principal


def admin_hash_matches(settings: Settings, key_hash: str) -> bool:
    configured = settings.admin_token.get_secret_value()
    return bool(configured) and hmac.compare_digest(hash_key(configured), key_hash)


async def _still_valid(request: Request, found: sessions.Session) -> bool:
    if found.is_admin:
        return admin_hash_matches(request.state.settings, found.key_hash)
    principal = await principal_of(request.state.engine, request.state.api_keys, found.key_hash)
    return principal is not None and principal.org_id == found.org_id


async def _operator(request: Request) -> Operator:
    name = cookie_name(request)
    token = request.cookies.get(name) if name else None
    if not token:
        raise SignInRequired()
    engine: AsyncEngine = request.state.engine
    async with engine.begin() as conn:
        found = await sessions.load(conn, token, now=utcnow())
    if found is None:
        raise SignInRequired()
    if not await _still_valid(request, found):
        async with engine.begin() as conn:
            await sessions.end(conn, found.id)
        raise SignInRequired()
    return Operator(found.id, found.org_id, found.is_admin, found.actor, found.csrf_token)


async def _org_operator(operator: Annotated[Operator, Depends(_operator)]) -> OrgOperator:
    if operator.org_id is None:
        raise OrgRequired()
    return OrgOperator(
        operator.session_id, operator.org_id, operator.is_admin, operator.actor, operator.csrf_token
    )


OperatorDep = Annotated[Operator, Depends(_operator)]
OrgOperatorDep = Annotated[OrgOperator, Depends(_org_operator)]
