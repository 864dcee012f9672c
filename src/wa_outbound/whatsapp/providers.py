"""Choosing the WhatsApp provider from the settings."""

from __future__ import annotations

from sqlalchemy.ext.asyncio import AsyncEngine

from wa_outbound.config import Settings
from wa_outbound.whatsapp.cloud import CloudProvider
from wa_outbound.whatsapp.provider import Provider
from wa_outbound.whatsapp.sandbox import SandboxProvider, SandboxStatuses


def create_provider(
    settings: Settings, engine: AsyncEngine
) -> tuple[Provider, SandboxStatuses | None]:
    """The provider, and for the sandbox the worker that plays back its statuses."""
    if settings.provider == "cloud":
        return CloudProvider(settings), None
    statuses = SandboxStatuses(engine)
    return SandboxProvider(statuses), statuses
