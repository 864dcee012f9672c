"""The service's error vocabulary. HTTP statuses are attached here and mapped at the edge only.

ServiceError                    500 internal_error
 ├── BadRequest                 400 bad_request
 │    └── InvalidJson           400 invalid_json
 ├── Unauthorized               401 unauthorized
 ├── Forbidden                  403 forbidden
 │    └── AdminOnly             403 admin_only
 ├── NotFound                   404 not_found
 ├── Conflict                   409 conflict
 │    ├── IdempotencyConflict   409 idempotency_conflict
 │    ├── NotCancellable        409 not_cancellable
 │    ├── AlreadyExists         409 already_exists
 │    ├── SenderExists          409 sender_exists
 │    ├── SenderInUse           409 sender_in_use
 │    ├── SenderIsDefault       409 sender_is_default
 │    └── DeliveryBlocked       409 delivery_blocked
 ├── PayloadTooLarge            413 payload_too_large
 ├── Unprocessable              422 (code set per case)
 │    ├── InvalidRequest        422 validation_error
 │    ├── ConsentRequired       422 consent_required
 │    ├── OutsideServiceWindow  422 outside_service_window
 │    ├── NoSender              422 no_sender
 │    ├── UnknownSender         422 unknown_sender
 │    ├── DefaultRequired       422 default_required
 │    ├── SenderVerificationFailed 422 sender_verification_failed
 │    └── UrlNotAllowed         422 url_not_allowed
 └── Unavailable                503 service_unavailable
"""

from __future__ import annotations

from typing import Any, ClassVar


class ServiceError(Exception):
    """Something went wrong inside the service."""

    status: ClassVar[int] = 500
    code: ClassVar[str] = "internal_error"

    def __init__(self, message: str | None = None, **details: Any) -> None:
        # The default message is the class's docstring on one line, however it is wrapped.
        self.message = message or " ".join((self.__doc__ or self.code).split())
        self.details = details
        super().__init__(self.message)


class BadRequest(ServiceError):
    """The request is malformed."""

    status = 400
    code = "bad_request"


class InvalidJson(BadRequest):
    """The request body is not valid JSON."""

    code = "invalid_json"


class Unauthorized(ServiceError):
    """A valid API key is required: send `Authorization: Bearer <key>`."""

    status = 401
    code = "unauthorized"


class Forbidden(ServiceError):
    """This call is not allowed with these credentials."""

    status = 403
    code = "forbidden"


class AdminOnly(Forbidden):
    """Only the admin token may change this."""

    code = "admin_only"


class NotFound(ServiceError):
    """No such resource."""

    status = 404
    code = "not_found"


class Conflict(ServiceError):
    """The request conflicts with the current state of the resource."""

    status = 409
    code = "conflict"


class IdempotencyConflict(Conflict):
    """This Idempotency-Key was already used with a different request body."""

    code = "idempotency_conflict"


class NotCancellable(Conflict):
    """Only QUEUED or RETRYING messages can be cancelled."""

    code = "not_cancellable"


class AlreadyExists(Conflict):
    """A resource with this id already exists."""

    code = "already_exists"


class SenderExists(Conflict):
    """This phone_number_id is registered already."""

    code = "sender_exists"


class SenderInUse(Conflict):
    """Messages are waiting on this sender: cancel them with `?cancel_waiting=true`, or wait."""

    code = "sender_in_use"


class SenderIsDefault(Conflict):
    """This is the organisation's default sender: make another sender the default first."""

    code = "sender_is_default"


class DeliveryBlocked(Conflict):
    """An earlier event of the same message is still pending for this endpoint: it goes first."""

    code = "delivery_blocked"


class PayloadTooLarge(ServiceError):
    """The request body is too large."""

    status = 413
    code = "payload_too_large"


class Unprocessable(ServiceError):
    """The request is well-formed but cannot be carried out."""

    status = 422
    code = "unprocessable"


class InvalidRequest(Unprocessable):
    """The request is not valid."""

    code = "validation_error"


class ConsentRequired(Unprocessable):
    """The recipient has not granted consent to receive messages."""

    code = "consent_required"


class OutsideServiceWindow(Unprocessable):
    """Free-form text is only allowed within 24 hours of the recipient's last message; send a
    template instead."""

    code = "outside_service_window"


class NoSender(Unprocessable):
    """The organisation has no sender, and the deployment has no shared sender."""

    code = "no_sender"


class UnknownSender(Unprocessable):
    """`from` names no sender of this organisation."""

    code = "unknown_sender"


class DefaultRequired(Unprocessable):
    """An organisation with senders has exactly one default: make another sender the default
    instead."""

    code = "default_required"


class SenderVerificationFailed(Unprocessable):
    """Meta did not confirm this phone number with this access token."""

    code = "sender_verification_failed"


class UrlNotAllowed(Unprocessable):
    """Callback URLs must be https:// without credentials, on a host whose every address is
    public."""

    code = "url_not_allowed"


class Unavailable(ServiceError):
    """A backing service is unavailable; retry later."""

    status = 503
    code = "service_unavailable"
