"""The client's exceptions.

WaOutboundError
 ├── ApiError                  the service answered an error: status, code, message, details
 │    ├── BadRequest           400 (invalid_json, bad_request)
 │    ├── Unauthorized         401
 │    ├── Forbidden            403 (forbidden, admin_only)
 │    ├── NotFound             404, 405
 │    ├── Conflict             409 (idempotency_conflict, not_cancellable, sender_in_use...)
 │    ├── PayloadTooLarge      413
 │    ├── ValidationError      422 (validation_error, consent_required, unknown_sender...)
 │    ├── RateLimited          429 (retry_after_s)
 │    └── ServerError          5xx
 │         └── ServiceUnavailable  503: nothing was changed, a later retry may succeed
 ├── TransportError            no answer: connection refused, timeout... (after retries)
 └── CallbackVerificationError a callback's signature or timestamp does not hold
"""

from __future__ import annotations

import json
from typing import Any


class WaOutboundError(Exception):
    """Every error this client raises."""


class ApiError(WaOutboundError):
    """The service answered with an error. Programs branch on `code` (the error body's, e.g.
    `consent_required`); `message` is for people; `details` is always a dict."""

    def __init__(
        self, status: int, code: str, message: str, details: dict[str, Any] | None = None
    ) -> None:
        super().__init__(f"{status} {code}: {message}")
        self.status = status
        self.code = code
        self.message = message
        self.details: dict[str, Any] = details or {}


class BadRequest(ApiError):
    """400: the body was not JSON, or not the JSON the route takes."""


class Unauthorized(ApiError):
    """401: no key, an unknown or revoked key, or a wrong admin token."""


class Forbidden(ApiError):
    """403: the admin API is disabled, or the route takes the admin token."""


class NotFound(ApiError):
    """404: no such object in this organisation (another organisation's included)."""


class Conflict(ApiError):
    """409: the request conflicts with the object's state; `code` says which conflict."""


class PayloadTooLarge(ApiError):
    """413: the body is over its limit (`details["limit_bytes"]`)."""


class ValidationError(ApiError):
    """422: a value breaks its rules; `code` names which (`validation_error`,
    `consent_required`, `outside_service_window`...)."""


class RateLimited(ApiError):
    """429: too many requests; `retry_after_s` is the server's Retry-After, when it gave one."""

    def __init__(
        self,
        status: int,
        code: str,
        message: str,
        details: dict[str, Any] | None = None,
        retry_after_s: float | None = None,
    ) -> None:
        super().__init__(status, code, message, details)
        self.retry_after_s = retry_after_s


class ServerError(ApiError):
    """5xx: the service (or a proxy before it) failed."""


class ServiceUnavailable(ServerError):
    """503: the database did not answer; nothing was changed."""


class TransportError(WaOutboundError):
    """No answer from the service (connection refused, reset, timeout), after the retries."""


class CallbackVerificationError(WaOutboundError):
    """A callback does not verify: answer it 400 (or 401) and do not act on it. `reason` is
    one of `missing_header`, `invalid_timestamp`, `timestamp_too_old`, `timestamp_too_new`,
    `invalid_signature`, `invalid_body`."""

    def __init__(self, reason: str, message: str) -> None:
        super().__init__(message)
        self.reason = reason


_BY_STATUS: dict[int, type[ApiError]] = {
    400: BadRequest,
    401: Unauthorized,
    403: Forbidden,
    404: NotFound,
    405: NotFound,
    409: Conflict,
    413: PayloadTooLarge,
    422: ValidationError,
    503: ServiceUnavailable,
}


def error_from_response(
    status: int, content: bytes, retry_after_s: float | None = None
) -> ApiError:
    """The exception for an error answer. A body that is not the API's error body (a proxy's
    page) gives the code `http_<status>` and the start of the body as the message."""
    code, message = f"http_{status}", content[:200].decode("utf-8", "replace")
    details: dict[str, Any] = {}
    try:
        error = json.loads(content)["error"]
        code, message = str(error["code"]), str(error["message"])
        details = error.get("details") if isinstance(error.get("details"), dict) else {}
    except (ValueError, KeyError, TypeError):
        pass
    if status == 429:
        return RateLimited(status, code, message, details, retry_after_s)
    cls = _BY_STATUS.get(status, ServerError if status >= 500 else ApiError)
    return cls(status, code, message, details)
