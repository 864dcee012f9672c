"""Phone numbers: normalisation to E.164 and masking for logs."""

from __future__ import annotations

import re

_SEPARATORS = re.compile(r"[\s\-().]")
_E164_DIGITS = re.compile(r"[1-9][0-9]{7,14}")


def normalize(raw: str) -> str:
    """Return `+<digits>` or raise ValueError. Accepts a leading `+` or `00`, spaces, dashes."""
    compact = _SEPARATORS.sub("", raw.strip())
    if compact.startswith("+"):
        compact = compact[1:]
    elif compact.startswith("00"):
        compact = compact[2:]
    if not _E164_DIGITS.fullmatch(compact):
        raise ValueError("must be an E.164 phone number: + then 8 to 15 digits")
    return "+" + compact


def mask(phone: str) -> str:
    """`+33612345678` -> `+3361****678`: enough to correlate, not enough to identify."""
    if len(phone) <= 8:
        return phone[:2] + "****"
    return phone[:5] + "****" + phone[-3:]
