"""The retry policy's decisions, as pure functions: which answers and failures are retried for
which calls, the backoff's bounds, and Retry-After in both its forms."""

from __future__ import annotations

from datetime import UTC, datetime

import httpx
import pytest
from wa_outbound_client import RetryPolicy
from wa_outbound_client._retry import retry_after_s
from wa_outbound_client.errors import (
    ApiError,
    RateLimited,
    ServerError,
    ServiceUnavailable,
    error_from_response,
)

POLICY = RetryPolicy(max_attempts=3, initial_delay_s=1.0, max_delay_s=4.0, max_retry_after_s=30)
SENT_BUT_LOST = httpx.ReadTimeout("read timed out")
NEVER_SENT = httpx.ConnectError("connection refused")


@pytest.mark.parametrize(
    ("status", "replay_safe", "retried"),
    [
        (429, False, True),
        (503, False, True),
        (500, True, True),
        (502, True, True),
        (500, False, False),  # a proxy's 5xx may hide a request that was done
        (504, False, False),
        (404, True, False),
        (409, True, False),
        (422, True, False),
    ],
)
def test_which_answers_are_retried(status: int, replay_safe: bool, retried: bool) -> None:
    delay_s = POLICY.after_response(
        attempt=1, status=status, retry_after_s=None, replay_safe=replay_safe
    )
    assert (delay_s is not None) is retried


def test_a_lost_answer_is_retried_only_for_calls_safe_to_repeat() -> None:
    assert POLICY.after_exception(attempt=1, exc=SENT_BUT_LOST, replay_safe=True) is not None
    assert POLICY.after_exception(attempt=1, exc=SENT_BUT_LOST, replay_safe=False) is None
    assert POLICY.after_exception(attempt=1, exc=NEVER_SENT, replay_safe=False) is not None


def test_attempts_are_bounded_and_the_backoff_doubles_up_to_its_ceiling() -> None:
    assert POLICY.after_exception(attempt=3, exc=NEVER_SENT, replay_safe=True) is None
    for attempt, ceiling in [(1, 1.0), (2, 2.0), (3, 4.0), (6, 4.0)]:
        delays = [POLICY.backoff_s(attempt) for _ in range(200)]
        assert all(ceiling / 2 <= d <= ceiling for d in delays)


def test_retry_after_is_waited_as_given_unless_too_long() -> None:
    assert POLICY.after_response(attempt=1, status=429, retry_after_s=7, replay_safe=False) == 7
    assert POLICY.after_response(attempt=1, status=429, retry_after_s=31, replay_safe=True) is None


def test_retry_after_in_seconds_or_as_an_http_date() -> None:
    now = datetime(2026, 12, 2, 8, 0, 0, tzinfo=UTC)
    assert retry_after_s("12") == 12
    assert retry_after_s("Wed, 02 Dec 2026 08:00:30 GMT", now) == 30
    assert retry_after_s("Wed, 02 Dec 2026 07:00:00 GMT", now) == 0
    assert retry_after_s("soon") is None
    assert retry_after_s(None) is None


def test_error_answers_become_their_family_with_the_body() -> None:
    body = b'{"error": {"code": "service_unavailable", "message": "db", "details": {"a": 1}}}'
    unavailable = error_from_response(503, body)
    assert isinstance(unavailable, ServiceUnavailable)
    assert isinstance(unavailable, ServerError)
    assert (unavailable.code, unavailable.message, unavailable.details) == (
        "service_unavailable",
        "db",
        {"a": 1},
    )
    limited = error_from_response(429, b"slow down", retry_after_s=3)
    assert isinstance(limited, RateLimited)
    assert (limited.code, limited.message, limited.retry_after_s) == ("http_429", "slow down", 3)
    teapot = error_from_response(418, b"<html>")
    assert type(teapot) is ApiError
    assert teapot.code == "http_418"
