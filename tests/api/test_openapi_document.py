"""The OpenAPI document: the committed `openapi.json` is the one the app serves, every operation
is described with its errors and an example, every example matches its schema, and the
project's own reference (docs/api.md) names every operation."""

from __future__ import annotations

import difflib
import json
import re
from collections.abc import Iterator
from itertools import islice
from pathlib import Path
from typing import Any

import httpx
import jsonschema_rs
import pytest

from wa_outbound import errors
from wa_outbound.cli import openapi_json

ROOT = Path(__file__).resolve().parents[2]
COMMITTED = ROOT / "openapi.json"
REGENERATE = (
    "openapi.json is not the app's OpenAPI document: regenerate it with `make openapi` "
    "(or `.venv/bin/wa-outbound openapi --output openapi.json`) and commit it"
)
ERROR_BODY = {"$ref": "#/components/schemas/ErrorResponse"}
JSON = "application/json"


def _service_errors() -> dict[str, int]:
    """Every code of the error vocabulary, and its HTTP status."""
    found: dict[str, int] = {}
    pending: list[type[errors.ServiceError]] = [errors.ServiceError]
    while pending:
        error = pending.pop()
        found[error.code] = error.status
        pending.extend(error.__subclasses__())
    return found


STATUS_OF_CODE = _service_errors()


@pytest.fixture(scope="module")
def document() -> dict[str, Any]:
    built: dict[str, Any] = json.loads(openapi_json())
    return built


def _operations(document: dict[str, Any]) -> Iterator[tuple[str, dict[str, Any]]]:
    for path, item in document["paths"].items():
        for method, operation in item.items():
            yield f"{method.upper()} {path}", operation


def _media(holder: dict[str, Any]) -> Iterator[tuple[str, dict[str, Any]]]:
    yield from holder.get("content", {}).items()


def _examples(media: dict[str, Any]) -> list[Any]:
    values = [named["value"] for named in media.get("examples", {}).values()]
    return values + ([media["example"]] if "example" in media else [])


def test_the_committed_openapi_json_is_the_apps_document() -> None:
    committed = COMMITTED.read_text(encoding="utf-8") if COMMITTED.exists() else ""
    built = openapi_json()
    if committed != built:
        diff = difflib.unified_diff(
            committed.splitlines(keepends=True),
            built.splitlines(keepends=True),
            "openapi.json (committed)",
            "openapi.json (the app's)",
        )
        pytest.fail(f"{REGENERATE}.\n{''.join(islice(diff, 60))}")


async def test_the_served_document_is_the_committed_one(client: httpx.AsyncClient) -> None:
    served = (await client.get("/openapi.json")).json()
    assert served == json.loads(COMMITTED.read_text(encoding="utf-8")), REGENERATE


def test_every_operation_has_a_summary_a_description_its_errors_and_an_example(
    document: dict[str, Any],
) -> None:
    problems: list[str] = []
    for name, operation in _operations(document):
        if not operation.get("summary"):
            problems.append(f"{name}: no summary")
        if not operation.get("description"):
            problems.append(f"{name}: no description")
        client_errors = [
            status
            for status, response in operation["responses"].items()
            if status.startswith("4")
            and response.get("content", {}).get(JSON, {}).get("schema") == ERROR_BODY
        ]
        if not client_errors:
            problems.append(f"{name}: no 4xx answer with the error body")
        bodies = [
            *[media for _, media in _media(operation.get("requestBody", {}))],
            *[
                media
                for status, response in operation["responses"].items()
                if status.startswith("2")
                for _, media in _media(response)
            ],
        ]
        parameters = [p.get("schema", {}) | p for p in operation.get("parameters", [])]
        if not any(_examples(media) for media in bodies) and not any(
            "example" in p or p.get("examples") for p in parameters
        ):
            problems.append(f"{name}: no example of a request or of its answer")
    assert problems == []


def test_every_error_answer_lists_its_codes_with_an_example_of_each(
    document: dict[str, Any],
) -> None:
    problems: list[str] = []
    for name, operation in _operations(document):
        for status, response in operation["responses"].items():
            media = response.get("content", {}).get(JSON, {})
            if media.get("schema") != ERROR_BODY:
                continue
            codes = {value["error"]["code"] for value in _examples(media)}
            listed = set(re.findall(r"^- `([a-z_]+)`", response["description"], re.MULTILINE))
            if not codes or codes != listed:
                problems.append(f"{name} {status}: examples of {codes}, description lists {listed}")
            problems += [
                f"{name} {status}: `{code}` is answered with {STATUS_OF_CODE.get(code)}"
                for code in codes
                if STATUS_OF_CODE.get(code) != int(status)
            ]
    assert problems == []


def test_every_example_matches_its_schema(document: dict[str, Any]) -> None:
    def check(where: str, schema: dict[str, Any], values: list[Any]) -> Iterator[str]:
        validator = jsonschema_rs.Draft202012Validator(
            {**schema, "components": document["components"]}
        )
        for value in values:
            for error in validator.iter_errors(value):
                yield f"{where}: {error.message} at {list(error.instance_path)}"

    problems: list[str] = []
    checked = 0
    for name, operation in _operations(document):
        holders = [("request", operation.get("requestBody", {}))]
        holders += [(status, response) for status, response in operation["responses"].items()]
        for label, holder in holders:
            for media_type, media in _media(holder):
                if "schema" in media and _examples(media):
                    checked += len(_examples(media))
                    where = f"{name} {label} {media_type}"
                    problems += check(where, media["schema"], _examples(media))
        for parameter in operation.get("parameters", []):
            schema = parameter.get("schema", {})
            problems += check(f"{name} {parameter['name']}", schema, schema.get("examples", []))
    assert problems == []
    assert checked > 50  # the walk found the examples


def test_examples_keep_their_nulls(document: dict[str, Any]) -> None:
    # FastAPI drops nulls from the document it builds; the app puts them back in examples.
    queued = document["paths"]["/v1/messages"]["post"]["responses"]["202"]["content"][JSON]
    message = queued["examples"]["queued"]["value"]
    assert message["error"] is None
    assert message["text"] is None
    assert "<wa-outbound:null>" not in json.dumps(document)


def test_the_validation_error_body_is_the_only_one_documented(document: dict[str, Any]) -> None:
    assert "HTTPValidationError" not in document["components"]["schemas"]
    assert "ValidationError" not in document["components"]["schemas"]


def test_the_reference_names_every_operation(document: dict[str, Any]) -> None:
    reference = (ROOT / "docs" / "api.md").read_text(encoding="utf-8")
    missing = [name for name, _ in _operations(document) if f"`{name}`" not in reference]
    assert missing == [], "docs/api.md does not describe these operations"


def test_the_project_docs_link_only_inside_the_repository() -> None:
    pages = [ROOT / "README.md", *sorted((ROOT / "docs").glob("*.md"))]
    outside = [p.name for p in pages if "../shared" in p.read_text(encoding="utf-8")]
    assert outside == [], "readers who clone the project do not have ../shared"
