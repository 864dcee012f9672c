"""Phone number normalisation and masking."""

from __future__ import annotations

import pytest

from wa_outbound.phone import mask, normalize


@pytest.mark.parametrize(
    ("raw", "expected"),
    [
        ("+33612345678", "+33612345678"),
        ("33612345678", "+33612345678"),
        ("+33 6 12-34-56-78", "+33612345678"),
        ("0033612345678", "+33612345678"),
        ("+1 (415) 555-0100", "+14155550100"),
    ],
)
def test_normalize(raw: str, expected: str) -> None:
    assert normalize(raw) == expected


@pytest.mark.parametrize(
    "raw", ["", "+", "1234567", "+0612345678", "abc", "+1234567890123456", "+33 6x"]
)
def test_normalize_rejects(raw: str) -> None:
    with pytest.raises(ValueError, match=r"E\.164"):
        normalize(raw)


def test_mask_hides_the_middle() -> None:
    assert mask("+33612345678") == "+3361****678"
    assert "12345" not in mask("+33612345678")
