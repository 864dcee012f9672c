"""Reading a WABA's message templates from Meta's Graph API (every page), or from the sandbox.

`GET {base}/{version}/{waba_id}/message_templates?fields=...&limit=N`, following `paging.next`,
with the token of a sender of that WABA. Any failure, Meta's or the network's, is a
`TemplateReadError`: the registry is then left as it was (advisory).
"""

from __future__ import annotations

from typing import Any, Protocol

import aiohttp
import orjson

from wa_outbound.config import Settings

FIELDS = "name,language,status,category,components"
PAGE_SIZE = 100
MAX_PAGES = 200  # 20,000 templates: far past Meta's cap per WABA; a loop in `next` stops here
TIMEOUT_S = 10.0

# The sandbox's registry, the same for every sandbox sender.
SANDBOX_TEMPLATES: tuple[dict[str, Any], ...] = (
    {"name": "order_update", "language": "en_US", "status": "APPROVED", "category": "UTILITY"},
    {"name": "promo_offer", "language": "en_US", "status": "APPROVED", "category": "MARKETING"},
    {"name": "paused_template", "language": "en_US", "status": "PAUSED", "category": "UTILITY"},
)


class TemplateReadError(Exception):
    """Meta could not be read (unreachable, or it refused the token)."""


class Source(Protocol):
    async def list_templates(
        self, waba_id: str, token: str | None, *, name: str | None = None
    ) -> list[dict[str, Any]]:
        """Every template of the WABA (only those called `name` when given)."""
        ...


class SandboxSource:
    async def list_templates(
        self, waba_id: str, token: str | None, *, name: str | None = None
    ) -> list[dict[str, Any]]:
        return [
            {**item, "components": []}
            for item in SANDBOX_TEMPLATES
            if name is None or item["name"] == name
        ]


class GraphSource:
    def __init__(self, settings: Settings) -> None:
        self._base = f"{settings.graph_api_base_url.rstrip('/')}/{settings.graph_api_version}"

    async def list_templates(
        self, waba_id: str, token: str | None, *, name: str | None = None
    ) -> list[dict[str, Any]]:
        if not token:
            raise TemplateReadError("no token to read this WABA's templates with")
        params = {"fields": FIELDS, "limit": str(PAGE_SIZE)}
        if name is not None:
            params["name"] = name
        url: str | None = f"{self._base}/{waba_id}/message_templates"
        items: list[dict[str, Any]] = []
        timeout = aiohttp.ClientTimeout(total=TIMEOUT_S)
        headers = {"Authorization": f"Bearer {token}"}
        async with aiohttp.ClientSession(timeout=timeout, trust_env=False) as session:
            for _ in range(MAX_PAGES):
                if url is None:
                    break
                page = await _get(session, url, headers, params)
                items.extend(item for item in page.get("data") or [] if isinstance(item, dict))
                paging = page.get("paging")
                found = paging.get("next") if isinstance(paging, dict) else None
                # `next` carries every parameter (and the cursor) itself.
                url, params = (found, {}) if isinstance(found, str) and found else (None, {})
        return items


async def _get(
    session: aiohttp.ClientSession, url: str, headers: dict[str, str], params: dict[str, str]
) -> dict[str, Any]:
    try:
        async with session.get(url, headers=headers, params=params) as response:
            raw, status = await response.read(), response.status
    except (aiohttp.ClientError, TimeoutError) as exc:
        raise TemplateReadError(f"Meta could not be reached: {type(exc).__name__}") from exc
    try:
        body = orjson.loads(raw)
    except orjson.JSONDecodeError:
        body = None
    if status >= 300 or not isinstance(body, dict) or "error" in body:
        error = body.get("error") if isinstance(body, dict) else None
        message = error.get("message") if isinstance(error, dict) else None
        raise TemplateReadError(f"Meta answered HTTP {status}: {str(message)[:200]}")
    return body


def create_source(settings: Settings) -> Source:
    return SandboxSource() if settings.provider == "sandbox" else GraphSource(settings)
