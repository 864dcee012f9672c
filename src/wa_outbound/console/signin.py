"""Signing in (an org's API key, or the admin token then an organisation), and out.

The sign-in form carries a CSRF token too: a random value in a short-lived cookie of its own,
repeated in the form (double submit), so no other site can sign a browser in with its key.
"""

from __future__ import annotations

import secrets

import sqlalchemy as sa
from fastapi import APIRouter, Request, Response

from wa_outbound.console import sessions
from wa_outbound.console.identity import (
    ADMIN_ACTOR,
    OperatorDep,
    actor_for,
    admin_hash_matches,
    principal_of,
)
from wa_outbound.console.web import (
    SIGNIN_COOKIE_SUFFIX,
    ConsoleRoute,
    Refused,
    cookie_name,
    first,
    forget_cookie,
    form,
    page,
    redirect,
    set_cookie,
)
from wa_outbound.db.schema import organization
from wa_outbound.db.types import utcnow
from wa_outbound.errors import NotFound
from wa_outbound.events import record_audit
from wa_outbound.orgs.auth import hash_key
from wa_outbound.orgs.organizations import org_exists

router = APIRouter(route_class=ConsoleRoute)
SIGNIN_MAX_AGE_S = 3600
INSECURE_HINT = (
    "The console signs in over HTTPS only. For development on plain http, set "
    "WA_CONSOLE_ALLOW_INSECURE=true."
)


def _signin_page(request: Request, status: int = 200, error: str | None = None) -> Response:
    name = cookie_name(request)
    if name is None:
        return page(request, "signin.html", http_status=403, csrf_token="", error=INSECURE_HINT)
    token = secrets.token_urlsafe(32)
    response = page(request, "signin.html", http_status=status, csrf_token=token, error=error)
    set_cookie(response, request, name + SIGNIN_COOKIE_SUFFIX, token, SIGNIN_MAX_AGE_S)
    return response


@router.get("/sign-in")
async def sign_in_form(request: Request) -> Response:
    return _signin_page(request)


@router.post("/sign-in")
async def sign_in(request: Request) -> Response:
    name = cookie_name(request)
    if name is None:
        raise Refused(403, INSECURE_HINT)
    fields = await form(request, csrf_token=request.cookies.get(name + SIGNIN_COOKIE_SUFFIX))
    presented = first(fields, "key")
    key_hash = hash_key(presented)
    settings = request.state.settings
    org_id: str | None
    if presented and admin_hash_matches(settings, key_hash):
        org_id, is_admin, actor = None, True, ADMIN_ACTOR
    else:
        principal = (
            await principal_of(request.state.engine, request.state.api_keys, key_hash)
            if presented
            else None
        )
        if principal is None:
            return _signin_page(request, 401, "That key is unknown or revoked.")
        org_id, is_admin, actor = principal.org_id, False, actor_for(principal)
    now = utcnow()
    async with request.state.engine.begin() as conn:
        previous = request.cookies.get(name)
        if previous:  # signing in again ends the session this browser had
            await sessions.end(conn, sessions.token_hash(previous))
        token = await sessions.create(
            conn, org_id=org_id, is_admin=is_admin, key_hash=key_hash, actor=actor, now=now
        )
        await record_audit(conn, org_id=org_id, at=now, action="console.signed_in", actor=actor)
    response = redirect(request, "/orgs" if is_admin else "/")
    set_cookie(response, request, name, token, int(sessions.MAX_AGE.total_seconds()))
    forget_cookie(response, request, name + SIGNIN_COOKIE_SUFFIX)
    return response


@router.get("/orgs")
async def pick_org_form(request: Request, operator: OperatorDep) -> Response:
    if not operator.is_admin:
        raise NotFound("Only the admin token picks an organisation.")
    async with request.state.engine.connect() as conn:
        rows = await conn.execute(
            sa.select(organization.c.id, organization.c.name).order_by(organization.c.name)
        )
        orgs = [dict(row._mapping) for row in rows]
    return page(request, "orgs.html", operator=operator, orgs=orgs, nav=None)


@router.post("/orgs")
async def pick_org(request: Request, operator: OperatorDep) -> Response:
    if not operator.is_admin:
        raise NotFound("Only the admin token picks an organisation.")
    fields = await form(request, csrf_token=operator.csrf_token)
    org_id = first(fields, "org_id")
    async with request.state.engine.begin() as conn:
        if not org_id or not await org_exists(conn, org_id):
            raise NotFound(f"organisation {org_id!r} not found")
        await sessions.choose_org(conn, operator.session_id, org_id)
        await record_audit(
            conn, org_id=org_id, at=utcnow(), action="console.org_chosen", actor=operator.actor
        )
    return redirect(request, "/")


@router.post("/sign-out")
async def sign_out(request: Request, operator: OperatorDep) -> Response:
    await form(request, csrf_token=operator.csrf_token)
    async with request.state.engine.begin() as conn:
        await sessions.end(conn, operator.session_id)
        await record_audit(
            conn,
            org_id=operator.org_id,
            at=utcnow(),
            action="console.signed_out",
            actor=operator.actor,
        )
    response = redirect(request, "/sign-in")
    name = cookie_name(request)
    if name is not None:
        forget_cookie(response, request, name)
    return response
