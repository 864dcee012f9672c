"""Scripted answers of the fake Meta Graph API: one `Step` per request, built with `accept()`,
`meta_error()`, `http_status()`, `delay()`, `hang()` or `drop()`, queued per number or given to
every number with a suffix (`Scripts`). Steps travel as JSON (`to_json()`, `step_from_json()`)
to a fake running in another process."""

from __future__ import annotations

import random
from collections import deque
from collections.abc import Callable
from dataclasses import dataclass, field
from typing import Any, Literal

import orjson
from starlette.responses import Response

from meta_payloads import error_response

StepKind = Literal["accept", "meta_error", "http_status", "delay", "hang", "drop"]


@dataclass(frozen=True, slots=True)
class Step:
    """One scripted answer. Build it with the functions below rather than directly."""

    kind: StepKind
    status: int = 200
    code: int | None = None
    message: str = ""
    details: str = ""
    retry_after: int | None = None
    text: str = ""
    seconds: float = 0.0

    def response(self) -> Response:
        """The answer of a `meta_error` or `http_status` step."""
        if self.kind == "http_status":
            return Response(self.text, self.status, media_type="text/plain")
        assert self.code is not None
        body = orjson.dumps(error_response(self.code, self.message, details=self.details))
        headers = {} if self.retry_after is None else {"Retry-After": str(self.retry_after)}
        return Response(body, self.status, headers=headers, media_type="application/json")

    def to_json(self) -> dict[str, Any]:
        """The step as `{"kind": ..., <its builder's arguments>}`."""
        if self.kind == "meta_error":
            arguments: dict[str, Any] = {
                "code": self.code,
                "http_status": self.status,
                "retry_after": self.retry_after,
                "message": self.message,
                "details": self.details,
            }
        elif self.kind == "http_status":
            arguments = {"status": self.status, "text": self.text}
        elif self.kind == "delay":
            arguments = {"seconds": self.seconds}
        else:
            arguments = {}
        return {"kind": self.kind, **arguments}


def accept() -> Step:
    """200 with a fresh wamid (what every request gets once its script is used up)."""
    return Step("accept")


def meta_error(
    code: int,
    http_status: int = 400,
    retry_after: int | None = None,
    message: str = "",
    details: str = "",
) -> Step:
    """Meta's error body with `code`, plus a `Retry-After` header when given."""
    return Step(
        "meta_error",
        status=http_status,
        code=code,
        retry_after=retry_after,
        message=message,
        details=details,
    )


def http_status(status: int, text: str = "") -> Step:
    """A bare HTTP answer with a text body, such as a load balancer's 500 or 502."""
    return Step("http_status", status=status, text=text)


def delay(seconds: float) -> Step:
    """Accepts the message at once but answers only after `seconds`."""
    return Step("delay", seconds=seconds)


def hang() -> Step:
    """Never answers (until the fake stops): longer than any client's timeout."""
    return Step("hang", status=0)


def drop() -> Step:
    """Accepts the message (a wamid is issued, its statuses follow), then drops the connection
    before answering: the client cannot know that Meta has it."""
    return Step("drop")


_BUILDERS: dict[str, Callable[..., Step]] = {
    "accept": accept,
    "meta_error": meta_error,
    "http_status": http_status,
    "delay": delay,
    "hang": hang,
    "drop": drop,
}


def step_from_json(data: dict[str, Any]) -> Step:
    """The inverse of `Step.to_json()`; ValueError or TypeError on anything else."""
    arguments = dict(data)
    kind = arguments.pop("kind", None)
    if kind not in _BUILDERS:
        raise ValueError(f"unknown step kind {kind!r}; one of {sorted(_BUILDERS)}")
    return _BUILDERS[kind](**arguments)


@dataclass(slots=True)
class _SuffixRule:
    suffix: str
    steps: tuple[Step, ...]
    once: bool
    seen: dict[str, int] = field(default_factory=dict)

    def next_for(self, to: str) -> Step | None:
        n = self.seen.get(to, 0)
        self.seen[to] = n + 1
        if self.once:
            return self.steps[n] if n < len(self.steps) else None
        return self.steps[n % len(self.steps)]


class Scripts:
    """Which step each request gets, by recipient (`to` without its '+')."""

    def __init__(self) -> None:
        self._queues: dict[str, deque[Step]] = {}
        self._rules: list[_SuffixRule] = []

    def add(self, to: str, steps: tuple[Step, ...]) -> None:
        self._queues.setdefault(to, deque()).extend(steps)

    def add_suffix(self, suffix: str, steps: tuple[Step, ...], *, once: bool) -> None:
        self._rules = [rule for rule in self._rules if rule.suffix != suffix]
        if steps:
            self._rules.append(_SuffixRule(suffix, steps, once))
            self._rules.sort(key=lambda rule: -len(rule.suffix))

    def clear(self) -> None:
        self._queues.clear()
        self._rules.clear()

    def next_for(self, to: str) -> Step | None:
        """The step for this request to `to`; None means accept. Its own queue comes first,
        then the rule with the longest matching suffix."""
        queue = self._queues.get(to)
        if queue:
            return queue.popleft()
        for rule in self._rules:
            if to.endswith(rule.suffix):
                return rule.next_for(to)
        return None


class Chaos:
    """A seeded fault mix for sends no script covers: 10 % a bare HTTP 500, 5 % Meta's 130429
    with `Retry-After: 1`, 5 % no answer at all (the message is not taken: a timeout that is not a
    duplicate), 10 % accepted after a latency spike of 0.2-3 s, the rest accepted at once."""

    def __init__(self, seed: int) -> None:
        self._random = random.Random(seed)

    def next_step(self) -> Step:
        draw = self._random.random()
        if draw < 0.10:
            return http_status(500, "chaos")
        if draw < 0.15:
            return meta_error(130429, http_status=429, retry_after=1)
        if draw < 0.20:
            return hang()
        if draw < 0.30:
            return delay(self._random.uniform(0.2, 3.0))
        return accept()
