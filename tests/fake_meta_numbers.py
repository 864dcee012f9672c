"""The fake Graph API's business phone numbers: each with its own token and WABA, the two reads
that verify a sender, and token revocation (then every call with that token answers 401, code
190, as Meta does for an invalidated token)."""

from __future__ import annotations

from dataclasses import dataclass, field
from typing import Any

import orjson
from starlette.requests import Request
from starlette.responses import Response

from meta_payloads import error_response


@dataclass(slots=True)
class FakeNumber:
    phone_number_id: str
    token: str
    waba_id: str
    display_phone_number: str
    quality_rating: str = "GREEN"
    messaging_limit: Any = "TIER_2K"


@dataclass(slots=True)
class Numbers:
    by_id: dict[str, FakeNumber] = field(default_factory=dict)
    revoked: set[str] = field(default_factory=set)

    def add(self, number: FakeNumber) -> None:
        self.by_id[number.phone_number_id] = number

    def authorizes(self, phone_number_id: str, authorization: str | None) -> bool:
        """Whether a send to `phone_number_id` with this header is let through."""
        number = self.by_id.get(phone_number_id)
        if number is None or number.token in self.revoked:
            return False
        return authorization == f"Bearer {number.token}"

    def _token_of(self, request: Request) -> str | None:
        header = request.headers.get("authorization", "")
        token = header.removeprefix("Bearer ")
        known = {n.token for n in self.by_id.values()}
        if header.startswith("Bearer ") and token in known and token not in self.revoked:
            return token
        return None

    async def read_object(self, request: Request) -> Response:
        """`GET /{version}/{phone_number_id}?fields=...`"""
        token = self._token_of(request)
        if token is None:
            return unauthorized()
        number = self.by_id.get(request.path_params["object_id"])
        if number is None or number.token != token:
            return _json(error_response(100, "Unsupported get request."), 400)
        return _json(
            {
                "id": number.phone_number_id,
                "display_phone_number": number.display_phone_number,
                "quality_rating": number.quality_rating,
                "whatsapp_business_manager_messaging_limit": {
                    "max_daily_conversations_per_business": number.messaging_limit
                },
            }
        )

    async def waba_numbers(self, request: Request) -> Response:
        """`GET /{version}/{waba_id}/phone_numbers`"""
        token = self._token_of(request)
        if token is None:
            return unauthorized()
        waba_id = request.path_params["waba_id"]
        listed = [n for n in self.by_id.values() if n.waba_id == waba_id]
        if not any(n.token == token for n in listed):
            return _json(error_response(100, "Unsupported get request."), 400)
        return _json(
            {
                "data": [
                    {
                        "id": n.phone_number_id,
                        "display_phone_number": n.display_phone_number,
                        "quality_rating": n.quality_rating,
                    }
                    for n in listed
                ]
            }
        )


def unauthorized() -> Response:
    return _json(error_response(190, "Error validating access token: the session is invalid."), 401)


def _json(body: Any, status: int = 200) -> Response:
    return Response(orjson.dumps(body), status, media_type="application/json")
