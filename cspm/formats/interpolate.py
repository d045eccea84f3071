"""`${VAR}` and `${VAR:-default}` in app.yaml `config` and `grant` values, as in docker compose.

So that one app file runs against the real service and, with `OPENAI_BASE_URL=…`, against a local
one. Only those two blocks are expanded: names, plug-ins and secrets stay literal. `$$` is a `$`.
"""

from __future__ import annotations

import os
import re
from typing import Any

from cspm.errors import FormatError
from cspm.formats import yamlsrc

_PATTERN = re.compile(r"\$(?:\$|\{([A-Za-z_][A-Za-z0-9_]*)(?::-([^}]*))?\})")
_BLOCKS = ("config", "grant")
MAX_EXPANDED = 64 * 1024


def interpolate_app(data: dict[str, Any], located: yamlsrc.Located, shown: str) -> None:
    """Expand in place; an unset variable without a default is an error naming its line."""
    for section in ("llms", "tools", "agents"):
        items = data.get(section)
        if not isinstance(items, list):
            continue
        for index, item in enumerate(items):
            if not isinstance(item, dict):
                continue
            for block in _BLOCKS:
                if block in item:
                    item[block] = _walk(item[block], (section, index, block), located, shown)


def _walk(value: Any, path: yamlsrc.Path_, located: yamlsrc.Located, shown: str) -> Any:
    if isinstance(value, str):
        return expand(value, path, located, shown) if "$" in value else value
    if isinstance(value, list):
        return [_walk(v, (*path, i), located, shown) for i, v in enumerate(value)]
    if isinstance(value, dict):
        return {(expand(k, path, located, shown) if isinstance(k, str) and "$" in k else k):
                _walk(v, (*path, k), located, shown) for k, v in value.items()}
    return value


def expand(text: str, path: yamlsrc.Path_ = (), located: yamlsrc.Located | None = None,
           shown: str = "app.yaml") -> str:
    def one(match: re.Match[str]) -> str:
        if match.group(0) == "$$":
            return "$"
        name, default = match.group(1), match.group(2)
        value = os.environ.get(name)
        if value is None or (value == "" and default is not None):
            if default is None:
                line = located.line_of(path) if located else None
                raise FormatError(shown, f"environment variable {name} is not set", line,
                                  yamlsrc.format_path(path) if path else None,
                                  hint=f"export {name}=…, or write ${{{name}:-default}}")
            return default
        return value

    out = _PATTERN.sub(one, text)
    if len(out) > MAX_EXPANDED:
        line = located.line_of(path) if located else None
        raise FormatError(shown, f"expands to more than {MAX_EXPANDED} characters", line, yamlsrc.format_path(path))
    return out
