"""YAML loading that remembers where every value came from, so errors can name the line.

Safe by construction: only PyYAML's safe types, a byte limit, a node budget that stops
alias-expansion bombs ("billion laughs") before they allocate, and a nesting limit (libyaml's
composer recurses in C, so `[[[[...` 20,000 deep would overflow the stack: a segfault, not an error).
"""

from __future__ import annotations

from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import yaml

MAX_BYTES = 4 * 1024 * 1024
MAX_NODES = 200_000
MAX_DEPTH = 100
_FLOW_SCAN = 1000  # more `[`/`{` than this: measure the nesting on the event stream before composing

Path_ = tuple[str | int, ...]


@dataclass
class Located:
    """A parsed document plus the line (1-based) of every path in it."""

    data: Any
    lines: dict[Path_, int] = field(default_factory=dict)

    def line_of(self, path: Path_) -> int | None:
        """The line of the deepest known prefix of `path`."""
        for cut in range(len(path), -1, -1):
            line = self.lines.get(tuple(path[:cut]))
            if line is not None:
                return line
        return None


class YamlError(Exception):
    def __init__(self, message: str, line: int | None = None) -> None:
        super().__init__(message)
        self.message = message
        self.line = line


def format_path(path: Path_) -> str:
    """`agents[0].tools` style, as users read it."""
    out = ""
    for part in path:
        out += f"[{part}]" if isinstance(part, int) else (f".{part}" if out else str(part))
    return out or "(top level)"


# libyaml's parser when the wheel has it (5-10x faster on a 50-plug-in lock); the same nodes and marks
_Loader = getattr(yaml, "CSafeLoader", yaml.SafeLoader)


def load_text(text: str) -> Located:
    if len(text.encode("utf-8", "surrogatepass")) > MAX_BYTES:
        raise YamlError(f"file is larger than {MAX_BYTES // (1024 * 1024)} MiB")
    if text.count("[") + text.count("{") > _FLOW_SCAN:
        _check_flow_depth(text)  # block nesting needs indentation: MAX_BYTES bounds it well below a crash
    loader = _Loader(text)
    try:
        node = loader.get_single_node()
        if node is None:
            return Located(None, {(): 1})
        located = Located(None)
        budget = [MAX_NODES]
        located.data = _convert(loader, node, (), located.lines, budget)
        return located
    except yaml.YAMLError as exc:
        raise _invalid(exc) from None
    finally:
        loader.dispose()


def _invalid(exc: yaml.YAMLError) -> YamlError:
    """PyYAML's error as ours, with its line; libyaml's own depth limit (PyYAML >= 6.0.4) is worded
    as ours, so the message does not depend on the PyYAML release."""
    if isinstance(exc, yaml.MarkedYAMLError):
        mark = exc.problem_mark or exc.context_mark
        line = mark.line + 1 if mark is not None else None
        problem = str(exc.problem or exc.context)
        if "maximum nesting depth" in problem:
            return YamlError(f"nested deeper than {MAX_DEPTH} levels", line)
        return YamlError(f"not valid YAML: {problem}", line)
    if "maximum nesting depth" in str(exc):
        return YamlError(f"nested deeper than {MAX_DEPTH} levels")
    return YamlError(f"not valid YAML: {exc}")


def _check_flow_depth(text: str) -> None:
    """Refuse nesting deeper than MAX_DEPTH from the parser's events, which do not recurse."""
    loader = _Loader(text)
    depth = 0
    try:
        while loader.check_event():
            event = loader.get_event()
            if isinstance(event, yaml.CollectionStartEvent):
                depth += 1
                if depth > MAX_DEPTH:
                    raise YamlError(f"nested deeper than {MAX_DEPTH} levels", event.start_mark.line + 1)
            elif isinstance(event, yaml.CollectionEndEvent):
                depth -= 1
    except yaml.YAMLError as exc:
        raise _invalid(exc) from None
    finally:
        loader.dispose()


def load_file(path: Path) -> Located:
    try:
        size = path.stat().st_size
        if size > MAX_BYTES:
            raise YamlError(f"file is {size} bytes, over the {MAX_BYTES // (1024 * 1024)} MiB limit")
        raw = path.read_bytes()
    except FileNotFoundError:
        raise YamlError("no such file") from None
    except IsADirectoryError:
        raise YamlError("is a directory, not a file") from None
    except PermissionError:
        raise YamlError("permission denied") from None
    try:
        text = raw.decode("utf-8")
    except UnicodeDecodeError as exc:
        raise YamlError(f"not UTF-8 (byte {exc.start})") from None
    return load_text(text)


def _convert(loader: yaml.SafeLoader, node: yaml.Node, path: Path_, lines: dict[Path_, int],
             budget: list[int]) -> Any:
    budget[0] -= 1
    if budget[0] < 0:
        raise YamlError(f"document expands to more than {MAX_NODES} nodes (an alias bomb?)",
                        node.start_mark.line + 1)
    if len(path) > MAX_DEPTH:
        raise YamlError(f"nested deeper than {MAX_DEPTH} levels", node.start_mark.line + 1)
    lines.setdefault(path, node.start_mark.line + 1)
    if isinstance(node, yaml.MappingNode):
        loader.flatten_mapping(node)
        out: dict[str, Any] = {}
        for key_node, value_node in node.value:
            if not isinstance(key_node, yaml.ScalarNode):  # never built: `? [*bomb]` would expand unchecked
                raise YamlError(f"a mapping key is a {key_node.id}, not a string", key_node.start_mark.line + 1)
            key = _scalar(loader, key_node)
            if not isinstance(key, str):
                raise YamlError(f"mapping key {key!r:.80} is not a string", key_node.start_mark.line + 1)
            if key in out:
                raise YamlError(f"duplicate key {key!r}", key_node.start_mark.line + 1)
            child = (*path, key)
            lines[child] = key_node.start_mark.line + 1
            out[key] = _convert(loader, value_node, child, lines, budget)
        return out
    if isinstance(node, yaml.SequenceNode):
        return [_convert(loader, item, (*path, i), lines, budget) for i, item in enumerate(node.value)]
    value = _scalar(loader, node)
    if isinstance(value, str | int | float | bool) or value is None:
        return value
    return str(value)  # dates and other safe scalars become their text


def _scalar(loader: yaml.SafeLoader, node: yaml.Node) -> Any:
    try:
        return loader.construct_object(node, deep=True)
    except (ValueError, OverflowError, LookupError, AttributeError, TypeError) as exc:
        # PyYAML's own constructors, on a timestamp `2001-13-45` (month 13), or on a tag that does not
        # fit its value: `!!timestamp abc` (AttributeError), `!!bool maybe` (KeyError), `!!int x`
        detail = f": {exc}" if isinstance(exc, ValueError | OverflowError) else ""
        raise YamlError(f"not valid YAML: {node.value!r:.80} cannot be read as {node.tag.rsplit(':', 1)[-1]}"
                        f"{detail} (quote it to keep it as text)", node.start_mark.line + 1) from None
