"""How the OpenAPI document says more than the models do: the errors a route can answer, each
with the error body and an example, examples of successful answers, and the document itself.

A route lists its errors as `Answer`s; `errors()` groups them by HTTP status into FastAPI's
`responses`, so the document names every code a route can answer and when (the catalogue is
`api/responses.py`).
"""

from __future__ import annotations

import json
import uuid
from dataclasses import dataclass, field
from typing import Annotated, Any

from fastapi import FastAPI, Path
from fastapi.openapi.models import Example

from wa_outbound.api.errors import error_body
from wa_outbound.api.limits import SINGLE_BODY_BYTES
from wa_outbound.api.models import ErrorResponse
from wa_outbound.errors import InvalidRequest, PayloadTooLarge, ServiceError

JSON = "application/json"
# Stands for null in examples until the document is built (see `install`).
NULL_MARK = "<wa-outbound:null>"
# What FastAPI documents as the answer to a request it cannot validate. This service never
# answers it: api/errors.py turns every validation error into the error body.
FASTAPI_VALIDATION_ERROR = "#/components/schemas/HTTPValidationError"


@dataclass(frozen=True, slots=True)
class Answer:
    """An error a route can answer: which, when, and the message and details of an example."""

    error: type[ServiceError]
    when: str
    message: str | None = None
    details: dict[str, Any] = field(default_factory=dict)

    def example(self) -> Example:
        raised = self.error(self.message, **self.details)
        return example(self.when, error_body(raised.code, raised.message, raised.details))


def invalid(when: str, loc: tuple[str, ...], msg: str, kind: str) -> Answer:
    """A `validation_error` worded as the API words one for a value its schema refuses (`loc`,
    `msg` and `kind` as pydantic reports them)."""
    where = ".".join(part for part in loc if part != "body") or "request"
    details = {"errors": [{"loc": list(loc), "msg": msg, "type": kind}]}
    return Answer(InvalidRequest, when, f"{where}: {msg}", details)


def errors(*answers: Answer, body_limit_bytes: int = SINGLE_BODY_BYTES) -> dict[int | str, Any]:
    """FastAPI `responses` for a route's errors: per status, the error body, a line per code
    saying when, and an example per answer. Every route can answer 413: the body limit applies
    to every path."""
    too_large = Answer(
        PayloadTooLarge,
        f"the request body is larger than {body_limit_bytes} bytes",
        f"The request body is larger than {body_limit_bytes} bytes.",
        {"limit_bytes": body_limit_bytes},
    )
    by_status: dict[int, list[Answer]] = {}
    for answer in (*answers, too_large):
        by_status.setdefault(answer.error.status, []).append(answer)
    responses: dict[int | str, Any] = {}
    for status in sorted(by_status):
        named: dict[str, Example] = {}
        for answer in by_status[status]:
            name, n = answer.error.code, 2
            while name in named:
                name, n = f"{answer.error.code}_{n}", n + 1
            named[name] = answer.example()
        responses[status] = {
            "model": ErrorResponse,
            "description": "\n".join(f"- `{a.error.code}`: {a.when}" for a in by_status[status]),
            "content": {JSON: {"examples": named}},
        }
    return responses


def example(summary: str | None, value: Any) -> Example:
    """A named example, its nulls kept (see `install`)."""
    named: Example = {"value": _mark_nulls(value)}
    if summary:
        named["summary"] = summary
    return named


def success(description: str, media_type: str = JSON, **examples: Example) -> dict[str, Any]:
    """A successful answer's description and named examples; FastAPI merges them into the
    route's own response for that status."""
    return {"description": description, "content": {media_type: {"examples": examples}}}


EXAMPLE_MESSAGE_ID = "937730a7-1644-4f8a-a7cb-ecc5ac5ed725"
MessageId = Annotated[
    uuid.UUID,
    Path(description="The message's id, as queueing returned it.", examples=[EXAMPLE_MESSAGE_ID]),
]


def install(app: FastAPI) -> None:
    """Serve a document that says what the service does, where FastAPI's own would not:

    - FastAPI drops every null from the document it builds, examples included (a message's
      `"error": null` would vanish, and the example would no longer match its schema), so
      examples carry a marker instead of null until the document is built;
    - FastAPI documents its own 422 body on a route with parameters whose 422 answers are not
      listed; this service never answers it, so it is left out.
    """

    def document() -> dict[str, Any]:
        built = FastAPI.openapi(app)  # built once and cached by FastAPI; the rest is idempotent
        _unmark_nulls(built)
        for path in built["paths"].values():
            for operation in path.values():
                responses = operation["responses"]
                schema = responses.get("422", {}).get("content", {}).get(JSON, {}).get("schema")
                if schema == {"$ref": FASTAPI_VALIDATION_ERROR}:
                    del responses["422"]
        schemas = built.get("components", {}).get("schemas", {})
        for name in ("HTTPValidationError", "ValidationError"):
            if name in schemas and f'"#/components/schemas/{name}"' not in json.dumps(built):
                del schemas[name]
        return built

    app.openapi = document  # type: ignore[method-assign]


def _mark_nulls(value: Any) -> Any:
    if value is None:
        return NULL_MARK
    if isinstance(value, dict):
        return {key: _mark_nulls(item) for key, item in value.items()}
    if isinstance(value, list | tuple):
        return [_mark_nulls(item) for item in value]
    return value


def _unmark_nulls(node: dict[str, Any] | list[Any]) -> None:
    if isinstance(node, dict):
        for key, item in node.items():
            if item == NULL_MARK:
                node[key] = None
            elif isinstance(item, dict | list):
                _unmark_nulls(item)
    else:
        for index, item in enumerate(node):
            if item == NULL_MARK:
                node[index] = None
            elif isinstance(item, dict | list):
                _unmark_nulls(item)
