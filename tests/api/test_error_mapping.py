"""Database errors map to the contract's answers by SQLSTATE: unavailable → 503, bad value → 422."""

from __future__ import annotations

import socket

import asyncpg
import httpx
import pytest
from fastapi import FastAPI
from sqlalchemy.exc import DBAPIError

from wa_outbound.api import errors


class DriverError(Exception):
    def __init__(self, sqlstate: str) -> None:
        super().__init__(f"driver error {sqlstate}")
        self.sqlstate = sqlstate


def _app(sqlstate: str) -> FastAPI:
    app = FastAPI()
    errors.install(app)

    @app.get("/boom")
    async def boom() -> None:
        raise DBAPIError("SELECT 1", {}, DriverError(sqlstate))

    return app


@pytest.mark.parametrize(
    ("sqlstate", "status", "code"),
    [
        ("57P03", 503, "service_unavailable"),  # the database system is starting or shutting down
        ("57P01", 503, "service_unavailable"),  # terminated by an administrator
        ("08006", 503, "service_unavailable"),  # connection failure
        ("53300", 503, "service_unavailable"),  # too many connections
        ("3D000", 503, "service_unavailable"),  # the database does not exist (dropped)
        ("57014", 503, "service_unavailable"),  # statement timeout
        ("28P01", 503, "service_unavailable"),  # the password was refused (rotated)
        ("55P03", 503, "service_unavailable"),  # lock timeout
        ("22021", 422, "validation_error"),  # a NUL character in a string
        ("42P01", 500, "internal_error"),  # a bug of ours: no stack trace, the error body
    ],
)
async def test_database_errors_answer_by_sqlstate(sqlstate: str, status: int, code: str) -> None:
    transport = httpx.ASGITransport(app=_app(sqlstate), raise_app_exceptions=False)
    async with httpx.AsyncClient(transport=transport, base_url="http://t") as client:
        response = await client.get("/boom")
    assert response.status_code == status
    assert response.json()["error"]["code"] == code
    assert "Traceback" not in response.text


@pytest.mark.parametrize(
    ("error", "status", "code"),
    [
        (asyncpg.exceptions.InvalidCatalogNameError("gone"), 503, "service_unavailable"),
        (asyncpg.exceptions.QueryCanceledError("timeout"), 503, "service_unavailable"),
        (asyncpg.exceptions.CharacterNotInRepertoireError("NUL"), 422, "validation_error"),
        (asyncpg.exceptions.UntranslatableCharacterError("NUL in jsonb"), 422, "validation_error"),
        (asyncpg.exceptions.UndefinedTableError("bug"), 500, "internal_error"),
        (asyncpg.exceptions.ConnectionDoesNotExistError("closed"), 503, "service_unavailable"),
        (socket.gaierror(-2, "Name or service not known"), 503, "service_unavailable"),
        (TimeoutError(), 503, "service_unavailable"),
    ],
    ids=lambda value: type(value).__name__ if isinstance(value, Exception) else str(value),
)
async def test_driver_and_network_errors_raised_as_they_are_answer_by_kind(
    error: Exception, status: int, code: str
) -> None:
    """The hot paths run asyncpg directly, so its errors arrive unwrapped."""
    app = FastAPI()
    errors.install(app)

    @app.get("/boom")
    async def boom() -> None:
        raise error

    transport = httpx.ASGITransport(app=app, raise_app_exceptions=False)
    async with httpx.AsyncClient(transport=transport, base_url="http://t") as client:
        response = await client.get("/boom")
    assert response.status_code == status
    assert response.json()["error"]["code"] == code
