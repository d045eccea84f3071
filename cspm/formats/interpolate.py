"""`${VAR}` and `${VAR:-default}` in app.yaml `config` and `grant` values, as in docker compose.

So that one app file runs against the real service and, with `OPENAI_BASE_URL=…`, against a local
one. Only those two blocks are expanded: names, plug-ins and secrets stay literal. `$$` is a `$`.
"""

from __future__ import annotations

import os
import re
from collections.abc import Mapping
from typing import Any

from cspm.errors import FormatError
from cspm.formats import yamlsrc

_PATTERN = re.compile(r"\$(?:\$|\{([A-Za-z_][A-Za-z0-9_]*)(?::-([^}]*))?\})")
_BLOCKS = ("config", "grant")
MAX_EXPANDED = 64 * 1024


def interpolate_app(data: dict[str, Any], located: yamlsrc.Located, shown: str,
                    env: Mapping[str, str] | None = None,
                    declared: frozenset[str] | None = None) -> dict[tuple[str, int], frozenset[str]]:
    """Expand in place from `env` (the process environment by default); an unset variable without a
    default is an error naming its line. With `declared` (a published app), only those variables are
    read at all: any other is refused, so an app cannot pick the user's cloud keys out of the
    environment. Returns the variables each component reads, by (section, index), whether set or not:
    what an untrusted app asks to read is shown before it runs."""
    environ = os.environ if env is None else env
    if declared is not None:
        environ = {k: v for k, v in environ.items() if k in declared}
    reads: dict[tuple[str, int], frozenset[str]] = {}
    for section in ("llms", "tools", "agents"):
        items = data.get(section)
        if not isinstance(items, list):
            continue
        for index, item in enumerate(items):
            if not isinstance(item, dict):
                continue
            names: set[str] = set()
            for block in _BLOCKS:
                if block in item:
                    item[block] = _walk(item[block], (section, index, block), located, shown, environ, names,
                                        declared)
            if names:
                reads[(section, index)] = frozenset(names)
    return reads


def _walk(value: Any, path: yamlsrc.Path_, located: yamlsrc.Located, shown: str, env: Mapping[str, str],
          names: set[str], declared: frozenset[str] | None) -> Any:
    if isinstance(value, str):
        return expand(value, path, located, shown, env, names, declared) if "$" in value else value
    if isinstance(value, list):
        return [_walk(v, (*path, i), located, shown, env, names, declared) for i, v in enumerate(value)]
    if isinstance(value, dict):
        return {(expand(k, path, located, shown, env, names, declared) if isinstance(k, str) and "$" in k else k):
                _walk(v, (*path, k), located, shown, env, names, declared) for k, v in value.items()}
    return value


def expand(text: str, path: yamlsrc.Path_ = (), located: yamlsrc.Located | None = None,
           shown: str = "app.yaml", env: Mapping[str, str] | None = None, names: set[str] | None = None,
           declared: frozenset[str] | None = None) -> str:
    environ = os.environ if env is None else env

    def one(match: re.Match[str]) -> str:
        if match.group(0) == "$$":
            return "$"
        name, default = match.group(1), match.group(2)
        if declared is not None and name not in declared:
            line = located.line_of(path) if located else None
            raise FormatError(shown, f"reads environment variable {name}, which this published app does not "
                                     f"declare", line, yamlsrc.format_path(path) if path else None,
                              hint="a published app reads only the variables it lists in `env:` or as the "
                                   "source of a secret; its publisher must declare it")
        if names is not None:
            names.add(name)
        value = environ.get(name)
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
