"""Text the databases can store: finding what they cannot (with its path), and replacing it."""

from __future__ import annotations

import json
from typing import Any

import orjson
import pytest

from wa_outbound import text

NESTED = {
    "ok": ["fine", {"deep": "a\x00b"}],
    "k\x00ey": 1,
    "lone": "\ud800",
    "pair": "\U0001f600",
}


def test_every_unstorable_string_and_key_is_found_with_its_path() -> None:
    assert sorted(text.unstorable_paths(NESTED), key=str) == sorted(
        [("ok", 1, "deep"), ("k\\u0000ey",), ("lone",)], key=str
    )


def test_clean_json_has_no_unstorable_path() -> None:
    clean = {"emoji": "\U0001f600", "accents": "éà", "escaped": "\\u0000", "list": [1, None, 2.5]}
    assert list(text.unstorable_paths(clean)) == []


def test_storable_replaces_in_keys_and_strings_and_keeps_the_rest() -> None:
    value: Any = json.loads(json.dumps(NESTED))
    assert text.storable(value) == {
        "ok": ["fine", {"deep": "a\ufffdb"}],
        "k\ufffdey": 1,
        "lone": "\ufffd",
        "pair": "\U0001f600",
    }
    assert text.storable("x\x00") == "x\ufffd"


@pytest.mark.parametrize(
    ("raw", "may_hold"),
    [
        (b'{"a": "\\u0000"}', True),
        (b'{"a": "\\uD800"}', True),
        (b'{"a": "\\udfff"}', True),
        (b'{"a": "\\ud83d\\ude00"}', True),  # a pair: looked at, and found clean
        (b'{"a": "\\u00e9", "b": "plain"}', False),
        (orjson.dumps({"a": "\U0001f600 é"}), False),  # UTF-8, no escapes
    ],
)
def test_only_json_with_a_suspect_escape_needs_a_walk(raw: bytes, may_hold: bool) -> None:
    assert text.may_hold_unstorable(raw) is may_hold


def test_deep_nesting_is_walked_without_recursion() -> None:
    value: Any = "a\x00"
    for _ in range(3_000):
        value = [{"k": value}]
    [path] = text.unstorable_paths(value)
    assert len(path) == 6_000
    text.storable(value)
    assert list(text.unstorable_paths(value)) == []


def test_decoded_storable_replaces_only_when_an_escape_is_there() -> None:
    assert text.decoded_storable(b'{"a\\u0000": ["b\\u0000"]}') == {"a\ufffd": ["b\ufffd"]}
    assert text.decoded_storable(b'{"a": "\\u00e9"}') == {"a": "\u00e9"}
    with pytest.raises(orjson.JSONDecodeError):
        text.decoded_storable(b'{"a": "\\ud800"}')
