"""Schema fuzzing: schemathesis drives every operation of the app's own OpenAPI document against
the service running as its own process on PostgreSQL, with an organisation's key and the admin
token, so no operation stops at authentication.

No answer may be a 5xx, every answer must be one the document declares, with the declared body
(the contract's error body for errors), and the service logs no error. Operations that take an
id reach their logic: the service is prepared with messages, dead-lettered messages, consents
and spare API keys, and each generated case is, at hypothesis's choice, pointed at one of them
(its ids, a consented `to`, the organisation's `X-Org-Id`), or left as generated (404, 422...).

CI runs `WA_FUZZ_EXAMPLES` (30) examples per operation, derandomized; `make fuzz` runs 1,000
and writes its figures to `WA_FUZZ_REPORT`.
"""

from __future__ import annotations

import asyncio
import os
import time
from collections import Counter
from collections.abc import Iterator
from dataclasses import dataclass
from typing import Any

import httpx
import orjson
import pytest
import schemathesis
from hypothesis import HealthCheck, settings
from hypothesis import strategies as st
from schemathesis.specs.openapi import checks

import meta_payloads as meta
from alert_factories import add_messages, dead_row
from factories import engine_for
from fuzz_service import APP_SECRET, Service, record, running_service
from helpers import ADMIN, TEMPLATE, make_settings
from wa_outbound.app import create_app
from wa_outbound.orgs import organizations

EXAMPLES_PER_OPERATION = int(os.environ.get("WA_FUZZ_EXAMPLES", "30"))
# Rows prepared per kind of request that uses one up: hypothesis points about half the cases
# at a prepared row, and the pool starts again from its first row when it runs out.
POOL_SIZE = EXAMPLES_PER_OPERATION + 50
# Operations called with the admin token; every other one with the organisation's key.
ADMIN_PATHS = ("/v1/admin/", "/v1/alerts")
ADMIN_OPERATIONS = {("PUT", "/v1/rate-limits/whatsapp/quota")}
# Consent granted for each; the first has an open service window (text messages pass).
PHONES = ["+33612345678", "+33698765432", "+447700900123", "+14155550123"]
# Left out, each for a reason of the API's design rather than a defect:
EXCLUDED_CHECKS = [
    # A schema-valid request may still break a business rule (no consent: 422; an id that
    # does not exist: 404), so valid data is not always accepted.
    checks.positive_data_acceptance,
    # Overlapping paths: DELETE /v1/dlq/report is DELETE /v1/dlq/{id} with a bad id (422).
    checks.unsupported_method,
    checks.allow_header_conformance,
]


@dataclass
class Pool:
    """Prepared ids, each handed out once, then from the first again (by then the request meets
    a row that an earlier one changed: its 404 or 409)."""

    ids: list[str]
    taken: int = 0

    def take(self) -> str:
        value = self.ids[self.taken % len(self.ids)]
        self.taken += 1
        return value


@dataclass
class Served:
    service: Service
    org_id: str
    org_auth: dict[str, str]
    # (method, path template) → {path parameter → the pool its prepared values come from}
    pools: dict[tuple[str, str], dict[str, Pool]]
    phones: Pool
    replay_ids: Pool


def _document() -> dict[str, Any]:
    # The app's own; building it needs no database.
    document: dict[str, Any] = create_app(make_settings("sqlite+aiosqlite:///:memory:")).openapi()
    return document


def _schema(document: dict[str, Any]) -> schemathesis.schemas.BaseSchema:
    loaded = schemathesis.openapi.from_dict(document).exclude(path="/metrics")
    # Unknown query parameters are ignored, as most HTTP APIs do; OpenAPI does not forbid them.
    # The credentials are the test's own (valid ones): schemathesis does not make them up.
    loaded.config.generation.update(allow_extra_parameters=False, with_security_parameters=False)
    return loaded


DOCUMENT = _document()
DOCUMENTED = {
    f"{method.upper()} {path}" for path, item in DOCUMENT["paths"].items() for method in item
}
schema = _schema(DOCUMENT)
# The cases each operation was called with (and the probes with methods the document does not
# give a path), every request sent (a check may send its own), and the answers' statuses.
CASES: Counter[str] = Counter()
SENT: Counter[str] = Counter()
ANSWERS: Counter[tuple[str, int]] = Counter()
# The prepared service, set by the `served` fixture for the hook below, which runs while
# hypothesis generates cases and has no access to fixtures.
PREPARED: list[Served] = []


@schema.hook("after_call")
def _count(context: Any, case: schemathesis.Case[Any], response: Any) -> None:
    SENT[f"{case.method} {case.path}"] += 1
    ANSWERS[f"{case.method} {case.path}", response.status_code] += 1


@schema.hook("flatmap_case")
def _prepared_or_generated(
    context: Any, case: schemathesis.Case[Any]
) -> st.SearchStrategy[schemathesis.Case[Any]]:
    """The case as generated, or (hypothesis's choice) pointed at prepared rows."""
    if not PREPARED:
        return st.just(case)
    return st.booleans().map(lambda prepared: _pointed(case, PREPARED[0]) if prepared else case)


@pytest.fixture(scope="module")
def served(pg_template: str, tmp_path_factory: pytest.TempPathFactory) -> Iterator[Served]:
    started = time.monotonic()
    with running_service(pg_template, tmp_path_factory.mktemp("fuzz-api")) as service:
        PREPARED[:] = [_prepare(service)]
        yield PREPARED[0]
    PREPARED.clear()
    record(
        "api",
        examples_per_operation=EXAMPLES_PER_OPERATION,
        operations=len(CASES.keys() & DOCUMENTED),
        cases=sum(n for operation, n in CASES.items() if operation in DOCUMENTED),
        method_probes=sum(n for operation, n in CASES.items() if operation not in DOCUMENTED),
        requests=sum(SENT.values()),
        cases_by_operation={op: n for op, n in sorted(CASES.items()) if op in DOCUMENTED},
        answers_by_operation={
            op: {
                str(status): n
                for (answered, status), n in sorted(ANSWERS.items())
                if answered == op
            }
            for op in sorted(CASES.keys() & DOCUMENTED)
        },
        seconds=round(time.monotonic() - started, 1),
    )


def _prepare(service: Service) -> Served:
    """An organisation with its key, consents, a service window, and the rows the id routes
    take: messages to read and to cancel, dead-lettered ones, spare API keys."""
    with httpx.Client(base_url=service.base_url, timeout=60) as client:
        org = _ok(client.post("/v1/admin/orgs", json={"name": "Fuzz"}, headers=ADMIN))
        key = _ok(client.post(f"/v1/admin/orgs/{org['id']}/api-keys", json={}, headers=ADMIN))
        auth = {"Authorization": f"Bearer {key['api_key']}"}
        for phone in PHONES:
            _ok(client.put(f"/v1/consents/{phone}", json={"status": "granted"}, headers=auth))
        inbound = orjson.dumps(meta.envelope(value_extra=meta.inbound_text(PHONES[0], "hi")))
        signature = {"X-Hub-Signature-256": meta.sign(inbound, APP_SECRET)}
        _ok(client.post("/webhooks/whatsapp", content=inbound, headers=signature))
        read = _queue(client, auth, 5)
        cancel = _queue(client, auth, POOL_SIZE)
    replay, discard, bulk, keys = asyncio.run(_insert_rows(service, org["id"]))
    phones = Pool(PHONES)
    by_org = {"org_id": Pool([org["id"]])}
    return Served(
        service=service,
        org_id=org["id"],
        org_auth=auth,
        pools={
            ("GET", "/v1/messages/{message_id}"): {"message_id": read},
            ("GET", "/v1/messages/{message_id}/events"): {"message_id": read},
            ("POST", "/v1/messages/{message_id}/cancel"): {"message_id": cancel},
            ("POST", "/v1/dlq/{message_id}/replay"): {"message_id": replay},
            ("DELETE", "/v1/dlq/{message_id}"): {"message_id": discard},
            ("GET", "/v1/consents/{phone_number}"): {"phone_number": phones},
            ("PUT", "/v1/consents/{phone_number}"): {"phone_number": phones},
            ("GET", "/v1/admin/orgs/{org_id}"): by_org,
            ("POST", "/v1/admin/orgs/{org_id}/api-keys"): by_org,
            ("DELETE", "/v1/admin/orgs/{org_id}/api-keys/{key_id}"): {**by_org, "key_id": keys},
        },
        phones=phones,
        replay_ids=bulk,
    )


def _ok(response: httpx.Response) -> Any:
    assert response.status_code < 300, response.text
    return response.json()


def _queue(client: httpx.Client, auth: dict[str, str], count: int) -> Pool:
    ids: list[str] = []
    while len(ids) < count:
        batch = [{"to": PHONES[1], "template": TEMPLATE}] * min(1000, count - len(ids))
        body = _ok(client.post("/v1/messages/batch", json={"messages": batch}, headers=auth))
        ids += [result["message"]["id"] for result in body["results"]]
    return Pool(ids)


async def _insert_rows(service: Service, org_id: str) -> tuple[Pool, Pool, Pool, Pool]:
    """Dead-lettered messages (the API cannot make them with the dispatcher off) for single
    replays, discards and bulk replays; and API keys for revocation, none of them the key the
    fuzzer authenticates with."""
    rows = [[dead_row(org_id=org_id) for _ in range(POOL_SIZE)] for _ in range(3)]
    keys: list[str] = []
    async with engine_for(service.database_url) as engine:
        await add_messages(engine, [row for pool in rows for row in pool])
        async with engine.begin() as conn:
            for _ in range(POOL_SIZE):
                key = await organizations.create_api_key(
                    conn, org_id=org_id, name="spare", actor="fuzz"
                )
                keys.append(str(key.id))
    replay, discard, bulk = (Pool([str(row["id"]) for row in pool]) for pool in rows)
    return replay, discard, bulk, Pool(keys)


def _pointed(case: schemathesis.Case[Any], served: Served) -> schemathesis.Case[Any]:
    """Ids of prepared rows in the path, a consented `to`, ids of dead-lettered messages in a
    bulk replay, the organisation in `X-Org-Id`. Schemathesis revalidates the changed case, so
    a negative case that became valid is judged as valid."""
    operation = (case.method, case.path)
    for name, pool in served.pools.get(operation, {}).items():
        case.path_parameters = {**(case.path_parameters or {}), name: pool.take()}
    body = case.body
    if operation == ("POST", "/v1/messages") and isinstance(body, dict):
        case.body = {**body, "to": served.phones.take()}
    elif operation == ("POST", "/v1/messages/batch") and isinstance(body, dict):
        items = body.get("messages")
        if isinstance(items, list):
            items = [
                {**item, "to": served.phones.take()} if isinstance(item, dict) else item
                for item in items
            ]
            case.body = {**body, "messages": items}
    elif operation == ("POST", "/v1/dlq/replay") and isinstance(body, dict):
        ids = body.get("ids")
        if isinstance(ids, list):
            case.body = {**body, "ids": [served.replay_ids.take() for _ in ids]}
    elif operation == ("PUT", "/v1/rate-limits/whatsapp/quota"):
        headers = case.headers.copy()  # assigned, not changed in place: schemathesis notices
        headers["X-Org-Id"] = served.org_id
        case.headers = headers
    return case


def _credentials(case: schemathesis.Case[Any], served: Served) -> dict[str, str]:
    if case.path.startswith(ADMIN_PATHS) or (case.method, case.path) in ADMIN_OPERATIONS:
        return ADMIN
    return served.org_auth


@schema.parametrize()
@settings(
    max_examples=EXAMPLES_PER_OPERATION,
    deadline=None,
    database=None,
    suppress_health_check=list(HealthCheck),
)
def test_every_operation_answers_as_documented_and_never_with_a_server_error(
    case: schemathesis.Case[Any], served: Served
) -> None:
    CASES[f"{case.method} {case.path}"] += 1
    case.call_and_validate(
        base_url=served.service.base_url,
        headers=_credentials(case, served),
        excluded_checks=EXCLUDED_CHECKS,
        timeout=30,
    )


def test_the_service_logged_no_error_while_fuzzed(served: Served) -> None:
    assert served.service.errors() == []
