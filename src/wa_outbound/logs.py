"""Logging: JSON lines for machines (default) or text for humans, and what must never be logged.

Structured fields travel in `extra=`; dispatch and webhook lines carry `message_fields(...)`.
Phone numbers are logged masked (`phone.mask`); uvicorn's access log loses query strings (the
webhook handshake carries `hub.verify_token` in one) and masks phone numbers in paths
(`/v1/consents/{phone}`).
"""

from __future__ import annotations

import json
import logging
from datetime import UTC, datetime
from typing import IO, Any
from urllib.parse import unquote

from wa_outbound.phone import mask, normalize

# Attributes every LogRecord has; anything else given through `extra=` is a structured field.
_STANDARD = set(vars(logging.makeLogRecord({}))) | {
    "message",
    "asctime",
    "taskName",
    "color_message",
}


def message_fields(
    *, message_id: object, org_id: str, attempt: int | None, error_code: str | None, **more: Any
) -> dict[str, Any]:
    """The fields of every log line about one message, always all four (None when unknown)."""
    return {
        "message_id": str(message_id),
        "org_id": org_id,
        "attempt": attempt,
        "error_code": error_code,
        **more,
    }


def _fields(record: logging.LogRecord) -> dict[str, Any]:
    return {k: v for k, v in vars(record).items() if k not in _STANDARD}


class JsonFormatter(logging.Formatter):
    def format(self, record: logging.LogRecord) -> str:
        entry: dict[str, Any] = {
            "ts": datetime.fromtimestamp(record.created, UTC).isoformat(timespec="milliseconds"),
            "level": record.levelname,
            "logger": record.name,
            "msg": record.getMessage(),
        }
        entry.update(_fields(record))
        if record.exc_info:
            entry["exc"] = self.formatException(record.exc_info)
        return json.dumps(entry, default=str)


class TextFormatter(logging.Formatter):
    """One line for a human: the message, then the structured fields as key=value."""

    def __init__(self) -> None:
        super().__init__("%(asctime)s %(levelname)s %(name)s: %(message)s")

    def format(self, record: logging.LogRecord) -> str:
        line = super().format(record)
        fields = " ".join(f"{k}={v}" for k, v in _fields(record).items())
        if not fields:
            return line
        head, sep, tail = line.partition("\n")  # keep a traceback below the fields
        return f"{head} {fields}{sep}{tail}"


class AccessLogFilter(logging.Filter):
    """Rewrites uvicorn's access line `'%s - "%s %s HTTP/%s" %d'`: drops the query string and
    masks path segments that are phone numbers; adds method, path and status as fields."""

    def filter(self, record: logging.LogRecord) -> bool:
        args = record.args
        if isinstance(args, tuple) and len(args) == 5:
            client, method, path, version, status = args
            path = safe_path(str(path))
            record.args = (client, method, path, version, status)
            record.__dict__.update(method=method, path=path, status_code=status)
        return True


def safe_path(path_with_query: str) -> str:
    """`/v1/consents/+33612345678?x=1` -> `/v1/consents/+3361****678`."""
    path = path_with_query.partition("?")[0]
    return "/".join(_mask_segment(segment) for segment in path.split("/"))


def _mask_segment(segment: str) -> str:
    if not any(c.isdigit() for c in segment):
        return segment
    try:
        return mask(normalize(unquote(segment)))
    except ValueError:
        return segment


def configure(level: str, fmt: str, stream: IO[str] | None = None) -> None:
    handler = logging.StreamHandler(stream)
    handler.setFormatter(JsonFormatter() if fmt == "json" else TextFormatter())
    root = logging.getLogger()
    root.handlers[:] = [handler]
    root.setLevel(level)
    for name in ("uvicorn", "uvicorn.error", "uvicorn.access"):
        logging.getLogger(name).handlers[:] = []
        logging.getLogger(name).propagate = True
    # Libraries that log data: httpx every request's URL at INFO (the Slack notifier's URL is
    # a secret), aiosqlite every statement with its parameters at DEBUG (phone numbers).
    for name in ("httpx", "httpcore", "aiosqlite"):
        logging.getLogger(name).setLevel(max(logging.WARNING, root.level))
    access = logging.getLogger("uvicorn.access")
    access.filters[:] = [f for f in access.filters if not isinstance(f, AccessLogFilter)]
    access.addFilter(AccessLogFilter())
