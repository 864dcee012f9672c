"""A typed client for the wa-outbound HTTP API (docs/api.md), sync and async, on httpx.

from wa_outbound_client import Client
with Client("https://wa.example.com", "wao_...") as client:
    message = client.messages.send("+33612345678", template={"name": "order_update",
                                                              "language": "en_US"})
"""

from wa_outbound_client._calls import UNSET
from wa_outbound_client._retry import RetryPolicy
from wa_outbound_client.async_client import AsyncClient
from wa_outbound_client.callbacks import verify_callback
from wa_outbound_client.client import Client
from wa_outbound_client.errors import (
    ApiError,
    BadRequest,
    CallbackVerificationError,
    Conflict,
    Forbidden,
    NotFound,
    PayloadTooLarge,
    RateLimited,
    ServerError,
    ServiceUnavailable,
    TransportError,
    Unauthorized,
    ValidationError,
    WaOutboundError,
)
from wa_outbound_client.models import parse_time

__all__ = [
    "UNSET",
    "ApiError",
    "AsyncClient",
    "BadRequest",
    "CallbackVerificationError",
    "Client",
    "Conflict",
    "Forbidden",
    "NotFound",
    "PayloadTooLarge",
    "RateLimited",
    "RetryPolicy",
    "ServerError",
    "ServiceUnavailable",
    "TransportError",
    "Unauthorized",
    "ValidationError",
    "WaOutboundError",
    "parse_time",
    "verify_callback",
]
