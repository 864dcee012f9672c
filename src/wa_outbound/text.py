"""Text the databases can store.

PostgreSQL refuses the NUL character in `text` and in `jsonb` (SQLSTATE 22021 and 22P05), and a
Python string holding an unpaired surrogate (which JSON's `\\udXXX` escapes can make) cannot be
written as UTF-8 at all, on either database. The API refuses such text at the door, naming where
it is; what Meta sends is kept with those characters replaced, since Meta must never be refused.
"""

from __future__ import annotations

import re
from collections.abc import Iterator
from typing import Any, overload

import orjson

UNSTORABLE = re.compile("[\x00\ud800-\udfff]")
# In JSON text these characters can only be written as escapes (a raw control character or a
# raw surrogate is not valid JSON, nor valid UTF-8): a body without such an escape needs no walk.
_ESCAPE = re.compile(rb"\\u(?:0000|[dD][89a-fA-F])")
REPLACEMENT = "\ufffd"

JsonPath = tuple[str | int, ...]


def may_hold_unstorable(raw_json: bytes) -> bool:
    """False when the JSON text `raw_json` cannot decode to any unstorable character."""
    return _ESCAPE.search(raw_json) is not None


def decoded_storable(raw_json: bytes) -> Any:
    """JSON text decoded with its unstorable characters replaced by U+FFFD, for what is kept
    whatever it holds (Meta's webhooks and answers); orjson.JSONDecodeError if it is not JSON."""
    value = orjson.loads(raw_json)
    return storable(value) if may_hold_unstorable(raw_json) else value


def escaped(text: str) -> str:
    """`text` with its unstorable characters shown as `\\uXXXX`, for messages and paths."""
    return UNSTORABLE.sub(lambda match: f"\\u{ord(match.group()):04x}", text)


def nodes(value: Any) -> Iterator[tuple[JsonPath, Any]]:
    """Every value in decoded JSON, `value` itself first, with its path (keys as they are).
    Iterative: the nesting depth is the caller's."""
    stack: list[tuple[JsonPath, Any]] = [((), value)]
    while stack:
        path, node = stack.pop()
        yield path, node
        if isinstance(node, dict):
            stack.extend(((*path, key), item) for key, item in node.items())
        elif isinstance(node, list):
            stack.extend(((*path, index), item) for index, item in enumerate(node))


def unstorable_paths(value: Any) -> Iterator[JsonPath]:
    """Where decoded JSON holds an unstorable character: the path to each such string, and to
    each such key; keys shown `escaped`."""
    for path, node in nodes(value):
        key = path[-1] if path else None
        if (isinstance(node, str) and UNSTORABLE.search(node)) or (
            isinstance(key, str) and UNSTORABLE.search(key)
        ):
            yield tuple(escaped(part) if isinstance(part, str) else part for part in path)


@overload
def storable(value: str) -> str: ...
@overload
def storable(value: Any) -> Any: ...
def storable(value: Any) -> Any:
    """Decoded JSON with every unstorable character, in keys and strings, replaced by U+FFFD.
    Containers are changed in place."""
    if isinstance(value, str):
        return UNSTORABLE.sub(REPLACEMENT, value)
    stack = [value]
    while stack:
        node = stack.pop()
        if isinstance(node, dict):
            for key in list(node):
                item = node[key]
                if isinstance(item, str):
                    node[key] = UNSTORABLE.sub(REPLACEMENT, item)
                elif isinstance(item, dict | list):
                    stack.append(item)
                if UNSTORABLE.search(key):
                    node[UNSTORABLE.sub(REPLACEMENT, key)] = node.pop(key)
        elif isinstance(node, list):
            for index, item in enumerate(node):
                if isinstance(item, str):
                    node[index] = UNSTORABLE.sub(REPLACEMENT, item)
                elif isinstance(item, dict | list):
                    stack.append(item)
    return value
