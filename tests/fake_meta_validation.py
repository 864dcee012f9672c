"""The fake Meta Graph API's check of a send's body: what it refuses with 400, code 100. Used by
`fake_meta.FakeMeta`."""

from __future__ import annotations

from typing import Any

_MEDIA = ("image", "video", "audio", "document", "sticker")


def valid_send(body: Any) -> bool:
    """Meta's request shape, checked no further than the service could get wrong."""
    if not isinstance(body, dict) or body.get("messaging_product") != "whatsapp":
        return False
    to, kind = body.get("to"), body.get("type")
    if not (isinstance(to, str) and to.lstrip("+")) or kind not in (
        "template",
        "text",
        "interactive",
        *_MEDIA,
    ):
        return False
    payload = body.get(kind)
    if not isinstance(payload, dict):
        return False
    if kind in _MEDIA:
        return ("link" in payload) != ("id" in payload)
    if kind == "interactive":
        return isinstance(payload.get("body"), dict) and isinstance(payload.get("action"), dict)
    if kind == "text":
        text = payload.get("body")
        return isinstance(text, str) and 0 < len(text) <= 4096
    language = payload.get("language")
    return (
        isinstance(payload.get("name"), str) and isinstance(language, dict) and "code" in language
    )
