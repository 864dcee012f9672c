"""Logs: JSON lines with the message fields on dispatch and webhook lines, phone numbers masked,
no secrets, access lines without query strings, and text for humans."""

from __future__ import annotations

import io
import json
import logging
from collections.abc import Iterator
from typing import Any

import httpx
import pytest

from cloud_app import (
    APP_SECRET,
    PHONE_FAILS,
    PHONE_OK,
    TOKEN,
    VERIFY_TOKEN,
    cloud_app,
    run_flow,
)
from helpers import create_org_with_key, make_settings
from serving import serving
from wa_outbound import logs
from wa_outbound.app import create_app

MESSAGE_FIELDS = {"message_id", "org_id", "attempt", "error_code"}
_SAVED_LOGGERS = (
    "",
    "uvicorn",
    "uvicorn.error",
    "uvicorn.access",
    "httpx",
    "httpcore",
    "aiosqlite",
)


@pytest.fixture
def configured() -> Iterator[Any]:
    """`logs.configure` as `wa-outbound serve` calls it, writing to a buffer; the process's
    logging is put back afterwards."""
    saved = []
    for name in _SAVED_LOGGERS:
        logger = logging.getLogger(name)
        saved.append(
            (logger, logger.handlers[:], logger.filters[:], logger.level, logger.propagate)
        )

    def configure(level: str, fmt: str) -> io.StringIO:
        buffer = io.StringIO()
        logs.configure(level, fmt, stream=buffer)
        return buffer

    yield configure
    for logger, handlers, filters, level, propagate in saved:
        logger.handlers[:] = handlers
        logger.filters[:] = filters
        logger.setLevel(level)
        logger.propagate = propagate


def json_lines(buffer: io.StringIO) -> list[dict[str, Any]]:
    lines = buffer.getvalue().splitlines()
    assert lines
    return [json.loads(line) for line in lines]  # every line is one JSON object


def assert_no_secret_or_phone(output: str) -> None:
    for secret in (TOKEN, APP_SECRET, VERIFY_TOKEN):
        assert secret not in output
    for phone in (PHONE_OK, PHONE_FAILS):
        assert phone.lstrip("+") not in output  # with or without its +


async def test_dispatch_and_webhook_lines_are_json_with_the_message_fields(
    configured: Any, database_url: str
) -> None:
    buffer = configured("DEBUG", "json")
    async with cloud_app(database_url) as app:
        flow = await run_flow(app)
    entries = json_lines(buffer)

    about_messages = [e for e in entries if e.get("message_id")]
    for entry in about_messages:
        assert entry.keys() >= MESSAGE_FIELDS | {"ts", "level", "logger", "msg"}
    refused = [e for e in about_messages if e["msg"] == "send failed"]
    assert [(e["message_id"], e["org_id"], e["attempt"], e["error_code"]) for e in refused] == [
        (flow.failed_id, flow.org_id, 1, "132001")
    ]
    assert refused[0]["to"] == "+3369****432"
    [failed_by_webhook] = [e for e in about_messages if e["msg"] == "message failed by status"]
    assert failed_by_webhook["level"] == "INFO"
    assert (failed_by_webhook["message_id"], failed_by_webhook["error_code"]) == (
        flow.accepted_id,
        "131026",
    )
    assert failed_by_webhook["attempt"] == 1
    assert_no_secret_or_phone(buffer.getvalue())


async def test_access_lines_have_no_query_string_and_mask_phone_numbers(
    configured: Any, database_url: str
) -> None:
    buffer = configured("INFO", "json")
    settings = make_settings(database_url, webhook_verify_token=VERIFY_TOKEN, app_secret=APP_SECRET)
    async with (
        serving(create_app(settings), access_log=True) as base_url,
        httpx.AsyncClient(base_url=base_url) as client,
    ):
        handshake = {
            "hub.mode": "subscribe",
            "hub.verify_token": VERIFY_TOKEN,
            "hub.challenge": "42",
        }
        assert (await client.get("/webhooks/whatsapp", params=handshake)).status_code == 200
        _org, auth = await create_org_with_key(client)
        consent = {"status": "granted"}
        put = await client.put(f"/v1/consents/{PHONE_OK}", json=consent, headers=auth)
        assert put.status_code == 200
        listed = await client.get("/v1/messages", params={"to": PHONE_OK}, headers=auth)
        assert listed.status_code == 200
    access = [e for e in json_lines(buffer) if e["logger"] == "uvicorn.access"]
    assert {(e["method"], e["path"], e["status_code"]) for e in access} >= {
        ("GET", "/webhooks/whatsapp", 200),
        ("PUT", "/v1/consents/+3361****678", 200),
        ("GET", "/v1/messages", 200),
    }
    assert all(e["level"] == "INFO" for e in access)
    assert_no_secret_or_phone(buffer.getvalue())


def test_text_format_is_one_line_with_the_fields_for_humans(configured: Any) -> None:
    buffer = configured("INFO", "text")
    fields = logs.message_fields(message_id="m-1", org_id="acme", attempt=2, error_code="131026")
    logging.getLogger("wa_outbound.test").info("send failed", extra=fields)
    [line] = buffer.getvalue().splitlines()
    assert line.endswith(
        "INFO wa_outbound.test: send failed message_id=m-1 org_id=acme attempt=2 error_code=131026"
    )


def test_debug_logging_leaves_out_the_libraries_that_log_urls_and_parameters(
    configured: Any,
) -> None:
    configured("DEBUG", "json")
    # The Slack notifier's incoming-webhook URL is a secret, and httpx logs URLs at INFO;
    # aiosqlite logs statements with their parameters at DEBUG.
    assert not logging.getLogger("httpx").isEnabledFor(logging.INFO)
    assert not logging.getLogger("aiosqlite").isEnabledFor(logging.DEBUG)


@pytest.mark.parametrize(
    ("raw", "safe"),
    [
        ("/webhooks/whatsapp?hub.verify_token=secret&hub.challenge=1", "/webhooks/whatsapp"),
        ("/v1/consents/%2B33612345678", "/v1/consents/+3361****678"),
        ("/v1/consents/33612345678?x=1", "/v1/consents/+3361****678"),
        (
            "/v1/messages/0b4e7c1e-5d8a-4f7a-9a3e-2f1c6d9b8a71/events",
            "/v1/messages/0b4e7c1e-5d8a-4f7a-9a3e-2f1c6d9b8a71/events",
        ),
        ("/health/ready", "/health/ready"),
    ],
)
def test_safe_path_drops_the_query_and_masks_phone_numbers(raw: str, safe: str) -> None:
    assert logs.safe_path(raw) == safe
