"""Reading a business phone number from Meta's Graph API, to verify a sender before storing it.

Two GETs with the sender's own token: the number itself (its display number, quality rating and
messaging limit) and the WABA's list of numbers, which must hold it. Any failure, Meta's error or
the network's, is a `GraphError` carrying what Meta said."""

from __future__ import annotations

from dataclasses import dataclass
from typing import Any

import aiohttp
import orjson

TIMEOUT_S = 10.0
NUMBER_FIELDS = "display_phone_number,quality_rating,whatsapp_business_manager_messaging_limit"
# Meta gives the messaging limit as a tier name or as a number of users (-1: unlimited).
_TIER_OF_COUNT = {
    250: "TIER_250",
    1000: "TIER_2K",
    2000: "TIER_2K",
    10000: "TIER_10K",
    100000: "TIER_100K",
    -1: "TIER_UNLIMITED",
}
TIERS = frozenset(("TIER_250", "TIER_2K", "TIER_10K", "TIER_100K", "TIER_UNLIMITED"))
QUALITY = frozenset(("GREEN", "YELLOW", "RED"))


class GraphError(Exception):
    def __init__(self, message: str, details: dict[str, Any]) -> None:
        super().__init__(message)
        self.details = details


@dataclass(frozen=True, slots=True)
class NumberInfo:
    display_phone_number: str
    quality_rating: str | None
    messaging_limit: str | None


def messaging_tier(value: Any) -> str | None:
    """A tier name for what Meta reports (`TIER_2K`, 2000, "2000", or an object holding one);
    None for anything unknown, which imposes no cap."""
    if isinstance(value, dict):
        for key in ("max_daily_conversations_per_business", "current_limit", "messaging_limit"):
            if key in value:
                return messaging_tier(value[key])
        return None
    if isinstance(value, str):
        name = value.strip().upper()
        if name in TIERS:
            return name
        if name == "TIER_1K":  # an older name of the 1,000 tier, which became 2,000
            return "TIER_2K"
        try:
            value = int(name)
        except ValueError:
            return None
    if isinstance(value, int) and not isinstance(value, bool):
        return _TIER_OF_COUNT.get(value)
    return None


async def describe_number(
    *, base_url: str, version: str, phone_number_id: str, waba_id: str, token: str
) -> NumberInfo:
    base = f"{base_url.rstrip('/')}/{version}"
    headers = {"Authorization": f"Bearer {token}"}
    timeout = aiohttp.ClientTimeout(total=TIMEOUT_S)
    async with aiohttp.ClientSession(timeout=timeout, trust_env=False) as session:
        number = await _get(
            session, f"{base}/{phone_number_id}", headers, {"fields": NUMBER_FIELDS}
        )
        listed = await _get(session, f"{base}/{waba_id}/phone_numbers", headers, {})
    ids = {
        str(item.get("id"))
        for item in listed.get("data", [])
        if isinstance(item, dict) and item.get("id") is not None
    }
    if phone_number_id not in ids:
        raise GraphError(
            "the WABA does not list this phone number",
            {"phone_number_id": phone_number_id, "waba_id": waba_id},
        )
    display = number.get("display_phone_number")
    if not isinstance(display, str) or not display:
        raise GraphError("Meta gave no display_phone_number", {"answer": _excerpt(number)})
    quality = number.get("quality_rating")
    return NumberInfo(
        display_phone_number=display[:32],
        quality_rating=quality if quality in QUALITY else None,
        messaging_limit=messaging_tier(number.get("whatsapp_business_manager_messaging_limit")),
    )


async def _get(
    session: aiohttp.ClientSession, url: str, headers: dict[str, str], params: dict[str, str]
) -> dict[str, Any]:
    try:
        async with session.get(url, headers=headers, params=params) as response:
            raw = await response.read()
            status = response.status
    except (aiohttp.ClientError, TimeoutError) as exc:
        raise GraphError("Meta could not be reached", {"error": type(exc).__name__}) from exc
    try:
        body = orjson.loads(raw)
    except orjson.JSONDecodeError:
        body = None
    if not isinstance(body, dict):
        raise GraphError(f"Meta answered HTTP {status}", {"http_status": status})
    if status >= 300 or "error" in body:
        found = body.get("error")
        error: dict[str, Any] = found if isinstance(found, dict) else {}
        raise GraphError(
            str(error.get("message") or f"Meta answered HTTP {status}")[:300],
            {"http_status": status, "meta_code": error.get("code"), "meta_type": error.get("type")},
        )
    return body


def _excerpt(body: dict[str, Any]) -> str:
    return orjson.dumps(body)[:200].decode(errors="replace")
