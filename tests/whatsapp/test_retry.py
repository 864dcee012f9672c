"""The retry policy is keyed on Meta's error code, with capped exponential backoff and jitter."""

from __future__ import annotations

import random

import pytest

from wa_outbound.whatsapp.retry import ProviderError, Verdict, backoff_s, classify, pause_reason


def _error(code: str, **kw: object) -> ProviderError:
    return ProviderError(code=code, title="t", message="m", **kw)  # type: ignore[arg-type]


@pytest.mark.parametrize(
    "code", ["1", "2", "4", "80007", "130429", "131000", "131016", "131057", "133004"]
)
def test_transient_codes_are_retried(code: str) -> None:
    assert classify(_error(code)) is Verdict.RETRY


@pytest.mark.parametrize(
    "code",
    [
        "0",
        "3",
        "10",
        "190",
        "200",
        "299",
        "131005",
        "100",
        "132001",
        "131026",
        "131047",
        "131049",
        "131048",
        "131064",
        "368",
        "130472",
        "135000",
    ],
)
def test_permanent_codes_go_to_the_dead_letter_queue(code: str) -> None:
    assert classify(_error(code)) is Verdict.PERMANENT


def test_pair_limit_is_its_own_verdict() -> None:
    assert classify(_error("131056")) is Verdict.PAIR_LIMITED


def test_transport_errors_and_http_5xx_are_retried() -> None:
    assert classify(_error("transport_error", transport=True)) is Verdict.RETRY
    assert classify(_error("http_503", http_status=503)) is Verdict.RETRY


def test_the_http_status_never_overrides_the_code() -> None:
    assert classify(_error("131026", http_status=500)) is Verdict.PERMANENT
    assert classify(_error("130429", http_status=400)) is Verdict.RETRY


def test_backoff_doubles_within_jitter_and_is_capped() -> None:
    rng = random.Random(7)
    for attempt, nominal in [(1, 2.0), (2, 4.0), (3, 8.0), (4, 16.0)]:
        delay = backoff_s(attempt, base_s=2, max_s=900, rng=rng)
        assert nominal * 0.8 <= delay <= nominal * 1.2
    assert backoff_s(30, base_s=2, max_s=900, rng=rng) <= 900


def test_retry_after_is_a_floor() -> None:
    assert backoff_s(1, base_s=2, max_s=900, retry_after_s=120) == 120


def test_pair_limited_waits_four_to_the_attempt() -> None:
    delay = backoff_s(2, base_s=2, max_s=900, verdict=Verdict.PAIR_LIMITED, rng=random.Random(1))
    assert 16 * 0.8 <= delay <= 16 * 1.2


@pytest.mark.parametrize(
    ("code", "http_status", "reason"),
    [
        ("190", 401, "token_invalid"),
        ("190", 400, "token_invalid"),
        ("10", 403, "token_invalid"),
        ("200", 403, "token_invalid"),
        ("102", 401, "token_invalid"),  # any OAuth error Meta answers with 401
        ("368", 400, "account_restricted"),
        ("131031", 400, "account_restricted"),
        ("131042", 400, "payment_issue"),
        ("131026", 400, None),
        ("130429", 429, None),
        ("http_401", 401, None),  # a 401 without Meta's error body: not an OAuth error
    ],
)
def test_errors_of_the_sender_name_its_pause_reason(
    code: str, http_status: int, reason: str | None
) -> None:
    error = ProviderError(code=code, title="t", message="m", http_status=http_status)
    assert pause_reason(error) == reason


def test_a_transport_error_never_pauses_a_sender() -> None:
    error = ProviderError(code="transport_error", title="t", message="m", transport=True)
    assert pause_reason(error) is None
