"""A route that, for an ordinary request, calls its endpoint without FastAPI's dependency
solver: the API's hottest route, `POST /v1/messages`, uses it.

FastAPI resolves a route's dependencies on every request by walking their tree and computing
cache keys and call kinds for each one: for this route (the query and text checks of every /v1
route, the API key and its bearer credentials, a JSON body and one header) that cost about 140
µs of CPU a request in an in-process loop, against about 90 µs for the rest of FastAPI's handling
of a bare body-only route (docs/performance.md, "Single enqueue").

Here, when the request's body is JSON (`Content-Type: application/json`), the handler does what
the solver would do, in the same order and with FastAPI's own functions: each dependency of the
route (only the ones listed in `_STEPS`, awaited directly), then the headers and the body
validated by FastAPI's `request_params_to_args` and `request_body_to_args`, then the endpoint,
and its answer serialised as FastAPI would. An error a dependency raises propagates as it would
have. Anything else (a body that is not JSON, a header or body that does not validate,
dependency overrides) goes to FastAPI's own handler from the start, which answers it exactly as
before; nothing the shortcut did before it gave up had any effect (the checks and the key
lookup only read).

A route whose dependencies are not exactly the known ones, or a FastAPI whose included routes
this module cannot see, gets FastAPI's handler alone: the shortcut never skips a dependency.
(FastAPI's own telemetry spans, off in this service, are not recorded on the shortcut.)
"""

from __future__ import annotations

from collections.abc import Awaitable, Callable, Coroutine
from dataclasses import dataclass
from typing import Any

import fastapi.routing
from fastapi import Request, Response
from fastapi.datastructures import DefaultPlaceholder
from fastapi.dependencies.models import Dependant
from fastapi.dependencies.utils import request_body_to_args, request_params_to_args

from wa_outbound.api.deps import bearer_scheme, principal
from wa_outbound.api.limits import single_valued_query, storable_text

Handler = Callable[[Request], Coroutine[Any, Any, Response]]
Step = Callable[[Request], Awaitable[Any]]


async def _principal_step(request: Request) -> Any:
    return await principal(request, await bearer_scheme(request))


# Each dependency the shortcut honours: its call, the parameters it takes, and how to run it.
_STEPS: dict[Any, tuple[tuple[str, ...], Step]] = {
    single_valued_query: ((), single_valued_query),
    storable_text: ((), storable_text),
    principal: (("credentials",), _principal_step),
}
_REQUIRED = {single_valued_query, storable_text, principal}


@dataclass(frozen=True)
class _Plan:
    route: Any  # the effective route: the APIRoute, or its context when it is included
    steps: tuple[tuple[str | None, Step], ...]
    # Every name a header parameter could be sent under (lower case, a superset): with none of
    # them in a request, and every header parameter optional, each one takes its default, as
    # FastAPI's `request_params_to_args` would decide at a far higher cost.
    header_names: frozenset[bytes]
    header_defaults: dict[str, Any] | None


class DirectRoute(fastapi.routing.APIRoute):
    """An APIRoute whose handler takes the shortcut described above when it can."""

    def get_route_handler(self) -> Handler:
        standard = super().get_route_handler()
        plan = _plan(_effective(self))
        if plan is None:
            return standard

        async def handler(request: Request) -> Response:
            answered = await _direct(request, plan)
            return answered if answered is not None else await standard(request)

        handler.direct = True  # type: ignore[attr-defined]  # read by the tests
        return handler


def _effective(route: fastapi.routing.APIRoute) -> Any:
    """The route as it serves requests: when it is built for an including router, FastAPI
    hands the inclusion's context (its dependencies added) through a context variable."""
    context_var = getattr(fastapi.routing, "_effective_route_context_var", None)
    if context_var is None:
        return None
    context = context_var.get()
    if context is not None and getattr(context, "original_route", None) is route:
        return context
    return route


def _plan(route: Any) -> _Plan | None:
    dependant: Dependant | None = getattr(route, "dependant", None)
    if dependant is None or not _plain(dependant) or len(dependant.body_params) != 1:
        return None
    if dependant.request_param_name is None or dependant.response_param_name is None:
        return None
    if not isinstance(route.response_class, DefaultPlaceholder) or route.response_field is None:
        return None
    steps: list[tuple[str | None, Step]] = []
    for sub in dependant.dependencies:
        known = _STEPS.get(sub.call)
        if known is None or sub.use_cache is False:
            return None
        takes, step = known
        if tuple(d.name for d in sub.dependencies) != takes or not _plain(sub):
            return None
        if sub.body_params or sub.header_params:
            return None
        steps.append((sub.name, step))
    if {sub.call for sub in dependant.dependencies} != _REQUIRED:
        return None
    names = {
        spelling.lower().encode("latin-1")
        for field in dependant.header_params
        for given in (field.name, field.alias)
        for spelling in (given, given.replace("_", "-"))
    }
    optional = not any(field.field_info.is_required() for field in dependant.header_params)
    defaults = (
        {field.name: field.get_default() for field in dependant.header_params} if optional else None
    )
    return _Plan(route, tuple(steps), frozenset(names), defaults)


def _plain(dependant: Dependant) -> bool:
    """No parameter the shortcut does not handle: path, query, cookie, background tasks,
    websocket, security scopes."""
    return not (
        dependant.path_params
        or dependant.query_params
        or dependant.cookie_params
        or dependant.background_tasks_param_name
        or dependant.websocket_param_name
        or dependant.http_connection_param_name
        or dependant.security_scopes_param_name
    )


async def _direct(request: Request, plan: _Plan) -> Response | None:
    """The endpoint's answer, or None for FastAPI's handler to answer instead."""
    route = plan.route
    overrides = getattr(route.dependency_overrides_provider, "dependency_overrides", None)
    if overrides or request.headers.get("content-type") != "application/json":
        return None
    try:
        body = await request.json()  # what FastAPI parses, kept on the request for it
    except ValueError:  # not JSON, or not UTF-8: FastAPI's handler answers for it
        return None
    values: dict[str, Any] = {}
    for name, step in plan.steps:
        result = await step(request)
        if name is not None:
            values[name] = result
    dependant: Dependant = route.dependant
    if plan.header_defaults is not None and not any(
        name in plan.header_names for name, _ in request.scope["headers"]
    ):
        headers: dict[str, Any] = dict(plan.header_defaults)
    else:
        headers, errors = request_params_to_args(dependant.header_params, request.headers)
        if errors:
            return None
    bodies, errors = await request_body_to_args(
        body_fields=dependant.body_params,
        received_body=body,
        embed_body_fields=route._embed_body_fields,
    )
    if errors:
        return None
    sub_response = Response()
    del sub_response.headers["content-length"]
    sub_response.status_code = None  # type: ignore[assignment]  # as FastAPI's solver does
    values.update(headers)
    values.update(bodies)
    values[dependant.request_param_name or "request"] = request
    values[dependant.response_param_name or "response"] = sub_response
    assert dependant.call is not None
    answer = await dependant.call(**values)
    if isinstance(answer, Response):
        return answer
    content = await fastapi.routing.serialize_response(
        field=route.response_field,
        response_content=answer,
        include=route.response_model_include,
        exclude=route.response_model_exclude,
        by_alias=route.response_model_by_alias,
        exclude_unset=route.response_model_exclude_unset,
        exclude_defaults=route.response_model_exclude_defaults,
        exclude_none=route.response_model_exclude_none,
        dump_json=True,
    )
    status_code = sub_response.status_code or route.status_code or 200
    response = Response(content, status_code=status_code, media_type="application/json")
    response.headers.raw.extend(sub_response.headers.raw)
    return response
