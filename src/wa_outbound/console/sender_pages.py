"""Placeholder."""

from __future__ import annotations

from fastapi import APIRouter

from wa_outbound.console.web import ConsoleRoute

router = APIRouter(route_class=ConsoleRoute)
