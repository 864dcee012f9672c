"""The fake Graph API's message templates: `GET /{version}/{waba_id}/message_templates` as Meta
answers it (a page of `data`, `paging.cursors` and `paging.next` while more remain, `name`
filtering), with a number of that WABA's token. Requests are counted; `failing` answers 500.

A WABA whose templates the test did not set lists the two the suite sends, `order_update` and
`hello_world` (Meta gives every new WABA its `hello_world` sample)."""

from __future__ import annotations

from dataclasses import dataclass, field
from typing import Any

from starlette.requests import Request
from starlette.responses import Response

from fake_meta_numbers import Numbers, _json, unauthorized
from meta_payloads import error_response

DEFAULT_TEMPLATES = [
    {
        "id": str(90_000 + n),
        "name": name,
        "language": "en_US",
        "status": "APPROVED",
        "category": "UTILITY",
        "components": [{"type": "BODY", "text": "Hello {{1}}"}],
    }
    for n, name in enumerate(("order_update", "hello_world"))
]


@dataclass(slots=True)
class FakeTemplates:
    numbers: Numbers
    by_waba: dict[str, list[dict[str, Any]]] = field(default_factory=dict)
    requests: list[dict[str, str]] = field(default_factory=list)
    failing: bool = False

    def add(
        self,
        waba_id: str,
        name: str,
        *,
        language: str = "en_US",
        status: str = "APPROVED",
        category: str = "UTILITY",
        components: list[Any] | None = None,
    ) -> dict[str, Any]:
        items = self.by_waba.setdefault(waba_id, [])
        item = {
            "id": str(100_000 + sum(len(v) for v in self.by_waba.values())),
            "name": name,
            "language": language,
            "status": status,
            "category": category,
            "components": components or [{"type": "BODY", "text": "Hello {{1}}"}],
            "parameter_format": "POSITIONAL",
        }
        items.append(item)
        return item

    async def list(self, request: Request) -> Response:
        waba_id = request.path_params["waba_id"]
        self.requests.append({"waba_id": waba_id, **request.query_params})
        if self.failing:
            return _json(error_response(1, "An unknown error occurred"), 500)
        header = request.headers.get("authorization", "")
        listed = [n for n in self.numbers.by_id.values() if n.waba_id == waba_id]
        if not any(header == f"Bearer {n.token}" for n in listed):
            return unauthorized()
        items = self.by_waba.get(waba_id) or DEFAULT_TEMPLATES
        name = request.query_params.get("name")
        if name is not None:
            items = [item for item in items if name in item["name"]]  # Meta matches loosely
        limit = int(request.query_params.get("limit", "25"))
        start = int(request.query_params.get("after", "0"))
        page = items[start : start + limit]
        fields = request.query_params.get("fields")
        if fields:
            wanted = {"id", *fields.split(",")}
            page = [{k: v for k, v in item.items() if k in wanted} for item in page]
        body: dict[str, Any] = {"data": page}
        if page:
            body["paging"] = {"cursors": {"before": str(start), "after": str(start + len(page))}}
            if start + len(page) < len(items):
                following = request.url.include_query_params(after=str(start + len(page)))
                body["paging"]["next"] = str(following)
        return _json(body)
