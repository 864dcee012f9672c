"""The operator console at `/console/`: server-rendered pages (Jinja2) where an organisation
(signed in with its API key) or an operator (the admin token, then an organisation) watches the
queue and fixes what failed: overview charts, messages and their timelines, the dead-letter
queue, alerts, senders and webhook endpoints.

Owns its sessions (`sessions`, server-side rows; `identity`, the check on every request), the
page plumbing (`web`: templates, security headers, CSRF-checked forms), the charts (`charts`,
inline SVG) and one module of routes per page. Every action calls the domain function the API
calls, with the actor `console:<key prefix>` or `console:admin`. Its templates and static
assets are in the package: nothing is loaded from elsewhere.

May import the domain packages, `orgs`, `db` and the shared modules; nothing imports it but the
composition root.
"""

from __future__ import annotations

from fastapi import FastAPI
from fastapi.staticfiles import StaticFiles

from wa_outbound.console import (
    alert_pages,
    dlq_pages,
    endpoint_pages,
    message_pages,
    overview,
    sender_pages,
    signin,
)
from wa_outbound.console.web import PACKAGE, PREFIX, STATIC_PATH


def install(app: FastAPI) -> None:
    """Serve the console's pages under /console and its assets under /console/static."""
    for module in (
        signin,
        overview,
        message_pages,
        dlq_pages,
        alert_pages,
        sender_pages,
        endpoint_pages,
    ):
        app.include_router(module.router, prefix=PREFIX, include_in_schema=False)
    app.mount(STATIC_PATH, StaticFiles(directory=PACKAGE / "static"), name="console-static")
