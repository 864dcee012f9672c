"""The per-second cap's arithmetic (GCRA), shared by the database limiter and the Lua script."""

from __future__ import annotations

import pytest

from wa_outbound.ratelimit import gcra

NOW = 1_800_000_000.0


def test_an_idle_org_may_send_one_second_of_its_cap_at_once() -> None:
    assert gcra.allowed(0.0, NOW, 80.0) == 80


def test_after_a_full_burst_the_next_message_waits_one_interval() -> None:
    tat = gcra.advance(0.0, NOW, 80.0, 80)
    assert gcra.allowed(tat, NOW, 80.0) == 0
    assert gcra.next_allowed_in(tat, NOW, 80.0) == pytest.approx(1 / 80, abs=1e-6)
    assert gcra.allowed(tat, NOW + 1 / 80, 80.0) == 1


def test_the_cap_refills_at_its_rate() -> None:
    tat = gcra.advance(0.0, NOW, 10.0, 10)
    assert gcra.allowed(tat, NOW + 0.5, 10.0) == 5
    assert gcra.allowed(tat, NOW + 5.0, 10.0) == 10


def test_a_cap_below_one_per_second_allows_one_message_per_interval() -> None:
    tat = gcra.advance(0.0, NOW, 0.5, 1)
    assert gcra.allowed(0.0, NOW, 0.5) == 1
    assert gcra.allowed(tat, NOW + 1.9, 0.5) == 0
    assert gcra.next_allowed_in(tat, NOW, 0.5) == pytest.approx(2.0, abs=1e-6)


def test_granting_nothing_leaves_the_state_alone() -> None:
    assert gcra.advance(NOW + 3, NOW, 10.0, 0) == NOW + 3
