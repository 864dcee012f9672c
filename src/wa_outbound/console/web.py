"""What every console page shares: the templates, the security headers, the session cookie's
name, HTML error pages, and the forms' bodies (urlencoded, parsed here: no multipart)."""

from __future__ import annotations

import functools
import hmac
from collections.abc import Callable, Coroutine
from datetime import datetime
from pathlib import Path
from typing import Any
from urllib.parse import parse_qsl

import jinja2
from fastapi import Request, Response
from fastapi.exceptions import RequestValidationError
from fastapi.responses import HTMLResponse, RedirectResponse
from fastapi.routing import APIRoute
from starlette.exceptions import HTTPException

from wa_outbound.config import Settings
from wa_outbound.errors import ServiceError

PACKAGE = Path(__file__).parent
PREFIX = "/console"
STATIC_PATH = f"{PREFIX}/static"
SECURE_COOKIE = "__Host-wa_console"
INSECURE_COOKIE = "wa_console"  # plain http, only with WA_CONSOLE_ALLOW_INSECURE
SIGNIN_COOKIE_SUFFIX = "_signin"
MAX_FORM_BYTES = 256 * 1024
MAX_FORM_FIELDS = 1000

# Everything from the service itself; nothing inline but the SVG charts (markup, not script).
CONTENT_SECURITY_POLICY = (
    "default-src 'none'; script-src 'self'; style-src 'self'; img-src 'self' data:; "
    "connect-src 'self'; form-action 'self'; base-uri 'none'; frame-ancestors 'none'"
)
HEADERS = {
    "Content-Security-Policy": CONTENT_SECURITY_POLICY,
    "X-Frame-Options": "DENY",
    "X-Content-Type-Options": "nosniff",
    "Referrer-Policy": "same-origin",
    "Cache-Control": "no-store",
}


class SignInRequired(Exception):
    """No live session: the browser is sent to the sign-in page."""


class OrgRequired(Exception):
    """An admin session with no organisation picked yet: the browser is sent to pick one."""


class Refused(Exception):
    """A request the console answers with an error page (a bad or missing CSRF token...)."""

    def __init__(self, status: int, message: str) -> None:
        super().__init__(message)
        self.status = status
        self.message = message


def _when(value: datetime | None) -> str:
    return "" if value is None else value.strftime("%Y-%m-%d %H:%M:%S UTC")


def _short(value: datetime | None) -> str:
    """For tables: the day and time, UTC (the pages say so)."""
    return "" if value is None else value.strftime("%m-%d %H:%M:%S")


@functools.cache
def templates() -> jinja2.Environment:
    """Built on first use: importing the console creates nothing."""
    env = jinja2.Environment(
        loader=jinja2.FileSystemLoader(PACKAGE / "templates"),
        autoescape=True,
        undefined=jinja2.StrictUndefined,
        trim_blocks=True,
        lstrip_blocks=True,
    )
    env.filters["when"] = _when
    env.filters["short"] = _short
    return env


def base(request: Request) -> str:
    """The console's path prefix, under the proxy's root path if any."""
    return f"{request.scope.get('root_path', '')}{PREFIX}"


def page(request: Request, name: str, http_status: int = 200, **context: Any) -> HTMLResponse:
    html = (
        templates()
        .get_template(name)
        .render(
            base=base(request),
            static=f"{request.scope.get('root_path', '')}{STATIC_PATH}",
            **context,
        )
    )
    return HTMLResponse(html, status_code=http_status)


def redirect(request: Request, path: str) -> RedirectResponse:
    """303: after a form, the browser GETs the page (a reload does not post again)."""
    return RedirectResponse(f"{base(request)}{path}", status_code=303)


def is_https(request: Request) -> bool:
    return request.url.scheme == "https"


def cookie_name(request: Request) -> str | None:
    """`__Host-wa_console` (Secure) over https; over http only with WA_CONSOLE_ALLOW_INSECURE,
    as `wa_console` (a `__Host-` cookie must be Secure, and a browser will not keep a Secure
    cookie an http page sets); None: no session over this connection."""
    if is_https(request):
        return SECURE_COOKIE
    settings: Settings = request.state.settings
    return INSECURE_COOKIE if settings.console_allow_insecure else None


def set_cookie(response: Response, request: Request, name: str, value: str, max_age_s: int) -> None:
    response.set_cookie(
        name,
        value,
        max_age=max_age_s,
        path="/",  # `__Host-` requires Path=/ and no Domain
        secure=is_https(request),
        httponly=True,
        samesite="strict",
    )


def forget_cookie(response: Response, request: Request, name: str) -> None:
    set_cookie(response, request, name, "", 0)


async def form(request: Request, *, csrf_token: str | None) -> dict[str, list[str]]:
    """The posted form's fields; Refused (403) unless it carries `csrf_token`."""
    body = await request.body()
    kind = request.headers.get("content-type", "").split(";")[0].strip()
    if body and kind != "application/x-www-form-urlencoded":
        raise Refused(415, "The console takes forms as application/x-www-form-urlencoded.")
    if len(body) > MAX_FORM_BYTES:
        raise Refused(413, "The form is too large.")
    try:
        pairs = parse_qsl(
            body.decode(),
            keep_blank_values=True,
            strict_parsing=False,
            max_num_fields=MAX_FORM_FIELDS,
        )
    except (UnicodeDecodeError, ValueError) as exc:
        raise Refused(400, "The form could not be read.") from exc
    fields: dict[str, list[str]] = {}
    for key, value in pairs:
        fields.setdefault(key, []).append(value)
    presented = fields.get("csrf_token", [""])[0]
    if (
        csrf_token is None
        or not presented
        or not hmac.compare_digest(presented.encode(), csrf_token.encode())
    ):
        raise Refused(403, "The form's CSRF token is missing or wrong: reload the page and retry.")
    return fields


def first(fields: dict[str, list[str]], name: str, default: str = "") -> str:
    return fields.get(name, [default])[0].strip()


def error_page(request: Request, status: int, message: str) -> HTMLResponse:
    return page(request, "error.html", http_status=status, status_code=status, message=message)


class ConsoleRoute(APIRoute):
    """Console routes answer HTML: a missing session goes to sign-in, the service's errors
    (404 for another org's id...) become error pages, and every answer has the headers."""

    def get_route_handler(self) -> Callable[[Request], Coroutine[Any, Any, Response]]:
        handler = super().get_route_handler()

        async def handle(request: Request) -> Response:
            response: Response
            try:
                response = await handler(request)
            except OrgRequired:
                response = redirect(request, "/orgs")
            except SignInRequired:
                response = redirect(request, "/sign-in")
            except Refused as exc:
                response = error_page(request, exc.status, exc.message)
            except ServiceError as exc:
                response = error_page(request, exc.status, exc.message)
            except HTTPException as exc:
                response = error_page(request, exc.status_code, str(exc.detail))
            except RequestValidationError:  # a malformed id or filter: nothing to show
                response = error_page(request, 404, "Not found.")
            response.headers.update(HEADERS)
            return response

        return handle
