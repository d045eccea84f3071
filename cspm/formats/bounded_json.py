"""The one JSON loader for untrusted bytes: a plug-in's answer or request, an index line, a registry's
`config.json`, an HTTP body.

Python's own `json.loads` fails on hostile input in ways callers do not expect: nesting deeper than
the interpreter's recursion limit raises RecursionError, an integer of more than 4,300 digits raises
a bare ValueError, and nesting just under the limit parses but then breaks whatever walks the value
next (schema checks, `json.dumps`, rich). Here every such input is one `JsonRejected` (a ValueError)
with a message that says what was wrong, so each boundary refuses it with its own documented error.
"""

from __future__ import annotations

import json
from typing import Any

MAX_DEPTH = 64  # arrays and objects inside each other: no format of cspm's needs a tenth of that
MAX_NUMBER_DIGITS = 100  # an integer or float literal; no field cspm reads is longer
DEFAULT_MAX_BYTES = 16 * 1024 * 1024


class JsonRejected(ValueError):
    """Not JSON, or JSON past a limit: the message is safe to show (it never quotes the input)."""


def _int(text: str) -> int:
    if len(text) > MAX_NUMBER_DIGITS:
        raise JsonRejected(f"a number has more than {MAX_NUMBER_DIGITS} digits")
    return int(text)


def _float(text: str) -> float:
    if len(text) > MAX_NUMBER_DIGITS:
        raise JsonRejected(f"a number has more than {MAX_NUMBER_DIGITS} digits")
    return float(text)


def _constant(name: str) -> Any:
    raise JsonRejected(f"{name} is not JSON")


_DECODER = json.JSONDecoder(parse_int=_int, parse_float=_float, parse_constant=_constant)  # made once: hot path
_SCAN = _DECODER.scan_once  # type: ignore[attr-defined]
_SKIP_SPACE = json.decoder.WHITESPACE.match  # type: ignore[attr-defined]


def _decode(text: str) -> Any:
    """`_DECODER.decode(text)` without its two whitespace regex passes when there is no whitespace to skip
    (a plug-in's message rarely has any): a quarter of the time on a small message, the same errors."""
    start = _SKIP_SPACE(text, 0).end() if text[:1] in (" ", "\t", "\n", "\r") else 0
    try:
        value, end = _SCAN(text, start)
    except StopIteration as exc:
        raise json.JSONDecodeError("Expecting value", text, exc.value) from None
    if end != len(text):
        end = _SKIP_SPACE(text, end).end()
        if end != len(text):
            raise json.JSONDecodeError("Extra data", text, end)
    return value


def loads(data: bytes | bytearray | str, *, max_bytes: int = DEFAULT_MAX_BYTES, max_depth: int = MAX_DEPTH) -> Any:
    """Parse `data` (UTF-8 when bytes); JsonRejected when it is not JSON or is past a limit."""
    if len(data) > max_bytes:
        raise JsonRejected(f"{len(data)} bytes is more than the {max_bytes}-byte limit")
    if isinstance(data, bytes | bytearray):
        try:
            text = data.decode("utf-8")
        except UnicodeDecodeError as exc:
            raise JsonRejected(f"not UTF-8 (byte {exc.start})") from None
    else:
        text = data
    try:
        value = _decode(text)
    except JsonRejected:
        raise
    except RecursionError:
        raise JsonRejected(f"nested more than {max_depth} levels deep") from None
    except json.JSONDecodeError as exc:
        raise JsonRejected(f"not JSON: {exc.msg} at line {exc.lineno} column {exc.colno}") from None
    except ValueError as exc:  # anything else json or int() refuses
        raise JsonRejected(f"not JSON: {exc}") from None
    # The cheap bound first: nesting can be no deeper than the number of brackets in the text.
    if text.count("[") + text.count("{") > max_depth and depth(value, max_depth) > max_depth:
        raise JsonRejected(f"nested more than {max_depth} levels deep")
    return value


def depth(value: Any, limit: int) -> int:
    """How deep `value` nests (0 for a scalar), counting no further than `limit + 1`; no recursion."""
    deepest = 0
    stack: list[tuple[Any, int]] = [(value, 0)]
    while stack:
        item, level = stack.pop()
        if isinstance(item, dict):
            children: Any = item.values()
        elif isinstance(item, list):
            children = item
        else:
            continue
        level += 1
        if level > deepest:
            deepest = level
            if deepest > limit:
                return deepest
        stack.extend((child, level) for child in children if isinstance(child, dict | list))
    return deepest
