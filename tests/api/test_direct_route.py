"""`POST /v1/messages` answers an ordinary request without FastAPI's dependency solver
(api/direct_route.py), and every request exactly as FastAPI's own handler does: the same
requests, sent to the app as built and to one whose route has the shortcut turned off, get the
same answers."""

from __future__ import annotations

from typing import Any

import fastapi.routing
import httpx
import orjson
import pytest

from helpers import TEMPLATE, app_client, create_org_with_key, grant, make_settings
from wa_outbound.api import direct_route
from wa_outbound.app import create_app

PHONE = "+33612345678"
UNCONSENTED = "+33699999999"
JSON = {"Content-Type": "application/json"}
# Each case: (query string, extra headers, raw body, whether it takes the shortcut). The
# answers of the ones taken must not depend on having taken it.
CASES: list[tuple[str, dict[str, str], bytes, bool]] = [
    ("", JSON, b'{"to": "+33612345678", "template": %s}', True),
    ("", {**JSON, "Idempotency-Key": "k-1"}, b'{"to": "+33612345678", "template": %s}', True),
    ("", {**JSON, "Idempotency-Key": "k-1"}, b'{"to": "+33612345678", "template": %s}', True),
    ("", {**JSON, "Idempotency-Key": "k-1"}, b'{"to": "+33612345679", "template": %s}', True),
    ("", {**JSON, "Idempotency-Key": ""}, b'{"to": "+33612345678", "template": %s}', False),
    ("", JSON, b'{"to": "+33699999999", "template": %s}', True),
    ("", JSON, b'{"to": "+33612345678", "text": {"body": "hi"}}', True),
    ("", JSON, b'{"to": "+33612345678", "template": %s, "from": "nobody"}', True),
    ("", JSON, b'{"to": "+33612345678", "template": %s, "reply_to": "evt_1"}', True),
    ("", JSON, b'{"to": "not a phone", "template": %s}', False),
    ("", JSON, b'{"to": "+33612345678"}', False),
    ("", JSON, b'{"to": "+33612345678", "template": %s, "extra": 1}', False),
    ("", JSON, b'{"to": "+33612345678", "template": ', False),
    ("", JSON, b"", False),
    ("", JSON, b"[1, 2]", False),
    ("", JSON, b'{"to": "+33612345678", "template": %s, "metadata": {"k": "a\\u0000b"}}', True),
    ("", {"Content-Type": "text/plain"}, b'{"to": "+33612345678", "template": %s}', False),
    ("", {}, b'{"to": "+33612345678", "template": %s}', False),
    ("x=1&x=2", JSON, b'{"to": "+33612345678", "template": %s}', True),
    ("x=1", JSON, b'{"to": "+33612345678", "template": %s}', True),
]
VARYING = {"id", "org_id", "created_at", "updated_at", "next_attempt_at"}


def body_of(raw: bytes) -> bytes:
    return raw.replace(b"%s", orjson.dumps(TEMPLATE)) if b"%s" in raw else raw


def normalised(response: httpx.Response) -> tuple[int, Any]:
    try:
        content = response.json()
    except ValueError:
        return response.status_code, response.text
    if isinstance(content, dict):
        content = {k: ("<varies>" if k in VARYING else v) for k, v in content.items()}
    return response.status_code, content


async def answers(database_url: str, *, auth_case: str) -> list[tuple[int, Any]]:
    async with app_client(create_app(make_settings(database_url))) as client:
        _org, auth = await create_org_with_key(client)
        await grant(client, auth, PHONE)
        if auth_case == "none":
            auth = {}
        elif auth_case == "unknown":
            auth = {"Authorization": "Bearer wao_unknown"}
        elif auth_case == "basic":
            auth = {"Authorization": "Basic dXNlcjpwYXNz"}
        got = []
        for query, headers, raw, _direct in CASES:
            url = "/v1/messages" + (f"?{query}" if query else "")
            response = await client.post(url, content=body_of(raw), headers={**auth, **headers})
            got.append(normalised(response))
        return got


@pytest.fixture
def database_url(sqlite_url: str) -> str:
    """The shortcut is the same on every database: SQLite is enough."""
    return sqlite_url


@pytest.mark.parametrize("auth_case", ["key", "none", "unknown", "basic"])
async def test_the_shortcut_answers_as_fastapi_does(
    database_url: str, auth_case: str, monkeypatch: pytest.MonkeyPatch
) -> None:
    direct = await answers(database_url, auth_case=auth_case)
    with monkeypatch.context() as patched:
        patched.setattr(direct_route, "_plan", lambda _route: None)
        standard = await answers(database_url, auth_case=auth_case)
    assert direct == standard
    if auth_case == "key":  # the battery covers what it means to
        statuses = [status for status, _ in direct]
        assert statuses[:4] == [202, 202, 200, 409]
        assert {400, 422} <= set(statuses)
    else:
        assert {status for status, _ in direct} <= {400, 401, 422}


async def test_only_the_ordinary_requests_take_the_shortcut_and_it_skips_the_solver(
    database_url: str, monkeypatch: pytest.MonkeyPatch
) -> None:
    solved = 0
    solve = fastapi.routing.solve_dependencies  # type: ignore[attr-defined]
    handed_over = 0
    direct = direct_route._direct

    async def counting(*args: Any, **kwargs: Any) -> Any:
        nonlocal solved
        if kwargs["request"].url.path == "/v1/messages":
            solved += 1
        return await solve(*args, **kwargs)

    async def watched(request: Any, plan: Any) -> Any:
        nonlocal handed_over
        answer = await direct(request, plan)
        handed_over += answer is None
        return answer

    monkeypatch.setattr(fastapi.routing, "solve_dependencies", counting)
    monkeypatch.setattr(direct_route, "_direct", watched)
    async with app_client(create_app(make_settings(database_url))) as client:
        _org, auth = await create_org_with_key(client)
        await grant(client, auth, PHONE)
        for query, headers, raw, takes_shortcut in CASES:
            before = (solved, handed_over)
            url = "/v1/messages" + (f"?{query}" if query else "")
            await client.post(url, content=body_of(raw), headers={**auth, **headers})
            case = (query, headers, raw)
            assert (handed_over == before[1]) == takes_shortcut, case
            if takes_shortcut:
                assert solved == before[0], case


def test_a_route_with_a_dependency_the_shortcut_does_not_know_keeps_fastapis_handler() -> None:
    async def unknown() -> None:
        return None

    router = fastapi.APIRouter(dependencies=[fastapi.Depends(unknown)])

    async def endpoint(body: dict[str, str], request: fastapi.Request) -> dict[str, str]:
        return body

    router.add_api_route(
        "/x", endpoint, methods=["POST"], route_class_override=direct_route.DirectRoute
    )
    route = router.routes[0]
    assert direct_route._plan(route) is None
