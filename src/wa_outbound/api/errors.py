"""Mapping of the error vocabulary to HTTP: every error answers with the contract's error body."""

from __future__ import annotations

import logging
from typing import Any

import asyncpg
from fastapi import FastAPI, Request
from fastapi.exceptions import RequestValidationError
from fastapi.responses import JSONResponse
from sqlalchemy.exc import DBAPIError, InterfaceError, OperationalError
from sqlalchemy.exc import TimeoutError as PoolTimeout
from starlette.exceptions import HTTPException

from wa_outbound.errors import ServiceError, Unavailable

log = logging.getLogger(__name__)

_HTTP_CODES = {
    400: "bad_request",
    401: "unauthorized",
    403: "forbidden",
    404: "not_found",
    405: "method_not_allowed",
    413: "payload_too_large",
    415: "unsupported_media_type",
}

# SQLSTATE class 22, "data exception": 22021 a NUL or invalid byte, 22003 out of range...
DATA_EXCEPTION = "22"
# SQLSTATEs that mean "the database cannot serve now", not "the request is wrong": connection
# exceptions (08), the login refused (28: a rotated password), the database missing (3D000:
# dropped, or not created yet), insufficient resources (53: too many connections), a lock
# not granted in time (55P03) and operator intervention (57: a statement timeout or a cancel,
# 57014; shutting down or starting up, 57P01-57P03).
UNAVAILABLE_STATES = ("08", "28", "3D000", "53", "55P03", "57")


def error_body(code: str, message: str, details: dict[str, Any] | None = None) -> dict[str, Any]:
    return {"error": {"code": code, "message": message, "details": details or {}}}


def _json(
    status: int, code: str, message: str, details: dict[str, Any] | None = None
) -> JSONResponse:
    return JSONResponse(error_body(code, message, details), status_code=status)


async def _service_error(_request: Request, exc: Exception) -> JSONResponse:
    assert isinstance(exc, ServiceError)
    return _json(exc.status, exc.code, exc.message, exc.details)


async def _validation_error(_request: Request, exc: Exception) -> JSONResponse:
    assert isinstance(exc, RequestValidationError)
    errors = [
        {
            "loc": [str(part) for part in error.get("loc", ())],
            "msg": error.get("msg", ""),
            "type": error.get("type", ""),
        }
        for error in exc.errors()
    ]
    if any(error["type"] == "json_invalid" for error in errors):
        return _json(400, "invalid_json", "The request body is not valid JSON.")
    first = errors[0] if errors else {"loc": [], "msg": "invalid request"}
    loc = first["loc"][1:] if first["loc"][:1] == ["body"] else first["loc"]
    where = ".".join(loc) or "request"
    return _json(422, "validation_error", f"{where}: {first['msg']}", {"errors": errors})


async def _http_error(_request: Request, exc: Exception) -> JSONResponse:
    assert isinstance(exc, HTTPException)
    code = _HTTP_CODES.get(exc.status_code, "http_error")
    response = _json(exc.status_code, code, str(exc.detail))
    if exc.headers:
        response.headers.update(exc.headers)
    return response


def _sqlstate(exc: Exception) -> str:
    """The SQLSTATE of a PostgreSQL error ("" on SQLite): on asyncpg's own error (the raw hot
    paths raise it as it is), or on the error SQLAlchemy wrapped, or on its cause."""
    orig = getattr(exc, "orig", None)
    for error in (exc, orig, getattr(orig, "__cause__", None)):
        state = getattr(error, "sqlstate", None)
        if isinstance(state, str):
            return state
    return ""


def _unavailable(exc: Exception) -> bool:
    if isinstance(exc, DBAPIError):
        return (
            exc.connection_invalidated
            or isinstance(exc, OperationalError | InterfaceError)
            or _sqlstate(exc).startswith(UNAVAILABLE_STATES)
        )
    if isinstance(exc, asyncpg.PostgresError):
        return _sqlstate(exc).startswith(UNAVAILABLE_STATES)
    # The pool's wait, a connection refused or reset, a name that does not resolve, a statement
    # the client gave up on (TimeoutError is an OSError), a connection asyncpg found closed.
    return isinstance(exc, PoolTimeout | OSError | asyncpg.InterfaceError)


async def _database_error(_request: Request, exc: Exception) -> JSONResponse:
    if _sqlstate(exc).startswith(DATA_EXCEPTION):
        # The request carried a value the database cannot hold (a NUL character in a string,
        # a number out of range) that validation let through: the caller's error, not ours.
        log.info("request value refused by the database", extra={"sqlstate": _sqlstate(exc)})
        return _json(
            422,
            "validation_error",
            "A value in the request cannot be stored (e.g. a NUL character in a string).",
        )
    if not _unavailable(exc):
        return await _unexpected(_request, exc)
    log.warning(
        "database unavailable: %s", type(exc).__name__, extra={"sqlstate": _sqlstate(exc) or None}
    )
    error = Unavailable("The database is unavailable; retry later.")
    return _json(error.status, error.code, error.message)


async def _unexpected(_request: Request, exc: Exception) -> JSONResponse:
    log.exception("unhandled error", exc_info=exc)
    return _json(500, "internal_error", "An internal error occurred.")


def install(app: FastAPI) -> None:
    app.add_exception_handler(ServiceError, _service_error)
    app.add_exception_handler(RequestValidationError, _validation_error)
    app.add_exception_handler(HTTPException, _http_error)
    for exc_type in (
        DBAPIError,
        PoolTimeout,
        OSError,
        asyncpg.PostgresError,
        asyncpg.InterfaceError,
    ):
        app.add_exception_handler(exc_type, _database_error)
    app.add_exception_handler(Exception, _unexpected)
