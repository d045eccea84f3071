"""The original Chainsocket app.json (Chainsocket 0, its Python host `chainsocket.py`) as a cspm app.

The original file lists `tools`, `llms` and `agents` (each `name`, `description`, `plugin_name`; an
agent also `prompt`, `tools`, `llms`) and the `entry` agent. Its host loaded every `plugin_name` from
a `plugins/` folder beside it, put the keys of `secrets.json` into each plug-in's config, let every
plug-in reach api.openai.com and serpapi.com, and routed `call_llm`/`call_tool`/`call_agent` by name.

Here that file is read with every input bounded (size, nesting, names, paths that stay inside the
app's folder) and turned into the document app.yaml would be (`convert`), which cspm's own parser
then checks and loads: so `cspm run app.json` and the app.yaml `cspm import` writes are one app.
What the original host gave each plug-in, cspm gives it as an app.yaml would say it:

| original                                   | cspm                                                          |
|--------------------------------------------|---------------------------------------------------------------|
| config `name` (every plug-in)              | config `name`                                                 |
| config `prompt`, `llm_name` = `llms[0]`    | the agent's `prompt`, config `llm_name`                       |
| config `openai_apikey` (llms, agents)      | secret `openai_apikey` from env OPENAI_API_KEY, api.openai.com |
| config `google_apikey` (tools)             | secret `google_apikey` from env SERPAPI_API_KEY, serpapi.com  |
| every plug-in may reach both hosts         | only a module that makes HTTP requests, only its key's host   |
| any plug-in may call any other by name     | an agent calls the llms and tools it lists                    |

A key is never in config, the file cspm writes or a plan: the host reads it from the environment.
Which modules make HTTP requests is asked of the caller (`uses_http`): reading a module's imports is
the verify layer's, above this one.
"""

from __future__ import annotations

import json
import re
from collections.abc import Callable
from dataclasses import dataclass
from functools import cache
from pathlib import Path, PurePosixPath
from typing import Any

from cspm import schemas
from cspm.errors import FormatError, InputError, PluginFileMissing
from cspm.formats import bounded_json, yamlsrc
from cspm.formats.app import SECTIONS, AppConfig, Kind
from cspm.wording import did_you_mean

MAX_BYTES = 1024 * 1024  # the original app.json is 1 KB
MAX_DEPTH = 8  # the shape nests 4 deep: {agents: [{tools: ["x"]}]}
MAX_ITEMS = 256  # components per section, names per agent list (app.yaml's own limits)
MAX_DESCRIPTION = 4096
MAX_PROMPT = 1024 * 1024
MAX_PATH = 4096
MAX_SEGMENT = 255
PLUGINS_FOLDER = "plugins"  # where the original host looked for every `plugin_name`

TOP_KEYS = ("tools", "llms", "agents", "entry")
COMPONENT_KEYS = ("name", "description", "plugin_name")
AGENT_KEYS = (*COMPONENT_KEYS, "prompt", "tools", "llms")
# keys only cspm's app.yaml has: a .json file with one of them is a cspm app file written as JSON
CSPM_TOP_KEYS = frozenset({"name", "env", "description"})
CSPM_COMPONENT_KEYS = frozenset({"plugin", "config", "secrets", "grant", "models", "data", "agents"})

UsesHttp = Callable[[Path], bool]


@cache
def _ident() -> re.Pattern[str]:
    """app.yaml's `ident` (app.json `$defs/ident`), the schema's own pattern: names are checked here
    first only to word the error for the original file."""
    return re.compile(schemas.load("app.json")["$defs"]["ident"]["pattern"])


def _is_ident(name: str) -> bool:
    return _ident().search(name) is not None


@dataclass(frozen=True)
class LegacySecret:
    """A key of the original `secrets.json`, as the original host handed it to plug-ins (config key)
    and as cspm binds it: read from an environment variable, sent only to the host it is for."""

    key: str  # the config key the original plug-ins read
    env: str  # where cspm reads the value
    host: str  # the one origin it may go to (https)
    query: str | None  # injected as this query parameter instead of `Authorization: Bearer <key>`

    def spec(self) -> dict[str, Any]:
        """The app.yaml secret: header or query parameter as the API reads its key."""
        spec: dict[str, Any] = {"from": f"env:{self.env}"}
        if self.query:
            spec["query"] = self.query
        spec["hosts"] = [self.host]
        return spec


# the original openai plug-in sends `Authorization: Bearer <openai_apikey>` to api.openai.com; the
# google_search one puts `google_apikey` in a request to https://serpapi.com/search as `api_key`
OPENAI = LegacySecret("openai_apikey", "OPENAI_API_KEY", "api.openai.com", None)
SERPAPI = LegacySecret("google_apikey", "SERPAPI_API_KEY", "serpapi.com", "api_key")
SECRET_OF: dict[Kind, LegacySecret] = {"llm": OPENAI, "agent": OPENAI, "tool": SERPAPI}


@dataclass(frozen=True)
class OriginalComponent:
    kind: Kind
    name: str
    description: str
    plugin_name: str  # as the file wrote it
    plugin_path: Path  # the file it names, inside the app's folder
    prompt: str = ""
    llms: tuple[str, ...] = ()
    tools: tuple[str, ...] = ()


@dataclass(frozen=True)
class OriginalApp:
    """An original app.json, checked: every name, reference and plug-in path is good."""

    path: Path
    entry: str
    components: tuple[OriginalComponent, ...]  # in the file's order: llms, tools, agents
    located: yamlsrc.Located


def read(path: Path) -> OriginalApp | None:
    """The original app.json at `path`, checked; None when the file is a cspm app file written as JSON
    (it has a key only app.yaml has), which cspm's own loader reads. FormatError or PluginFileMissing
    names the file, line and field of anything wrong."""
    shown = str(path)
    located = _parse(path, shown)
    data = located.data
    if not isinstance(data, dict):
        raise FormatError(shown, "expected a JSON object with `tools`, `llms`, `agents` and `entry`", 1)
    if _is_cspm_shape(data):
        return None
    _known_keys(data, TOP_KEYS, (), located, shown)
    folder = path.parent
    components: list[OriginalComponent] = []
    seen: dict[str, tuple[Kind, int | None]] = {}
    for section, kind in SECTIONS.items():
        items = data.get(section, [])
        if not isinstance(items, list):
            raise _error(shown, located, (section,), f"must be a list of {section}, not {_type(items)}")
        if len(items) > MAX_ITEMS:
            raise _error(shown, located, (section,), f"has {len(items)} entries, more than {MAX_ITEMS}")
        for index, raw in enumerate(items):
            at: yamlsrc.Path_ = (section, index)
            component = _component(kind, raw, at, folder, located, shown)
            if component.name in seen:
                other_kind, line = seen[component.name]
                where = f" on line {line}" if line else ""
                raise _error(shown, located, (*at, "name"),
                             f"{component.name!r} is already the name of {_a(other_kind)}{where}: "
                             "cspm needs every name to be unique")
            seen[component.name] = (kind, located.line_of(at))
            components.append(component)
    if "entry" not in data:
        raise _error(shown, located, (), "has no `entry`: the agent `cspm run` talks to")
    entry = data["entry"]
    agents = {c.name for c in components if c.kind == "agent"}
    if not isinstance(entry, str):
        raise _error(shown, located, ("entry",), f"must be the name of an agent, not {_type(entry)}")
    if entry not in agents:
        known = seen.get(entry)
        what = f"is {_a(known[0])}, not an agent" if known else "names no agent of this app"
        raise _error(shown, located, ("entry",), f"{_clip(entry)!r} {what}{did_you_mean(entry, agents)}")
    kinds = {c.name: c.kind for c in components}
    for index, component in enumerate(c for c in components if c.kind == "agent"):
        for section, kind in (("llms", "llm"), ("tools", "tool")):
            for j, ref in enumerate(component.llms if kind == "llm" else component.tools):
                if kinds.get(ref) != kind:
                    what = f"is {_a(kinds[ref])}, not {_a(kind)}" if ref in kinds else f"is not {_a(kind)} of this app"
                    candidates = [n for n, k in kinds.items() if k == kind]
                    raise _error(shown, located, ("agents", index, section, j),
                                 f"{_clip(ref)!r} {what}{did_you_mean(ref, candidates)}")
    return OriginalApp(path=path, entry=entry, components=tuple(components), located=located)


def convert(app: OriginalApp, uses_http: UsesHttp, *, base: Path | None = None) -> dict[str, Any]:
    """The app.yaml document of `app`: plug-in paths relative to `base` (the folder of the file that
    will hold it; default: the app.json's), each original config key, secret and grant as above."""
    base = base or app.path.parent
    out: dict[str, Any] = {"name": app_name(app.path), "entry": app.entry}
    for section, kind in SECTIONS.items():
        entries = []
        for c in (c for c in app.components if c.kind == kind):
            item: dict[str, Any] = {"name": c.name}
            if c.description:
                item["description"] = c.description
            item["plugin_name"] = _relative(c.plugin_path, base)
            config = {"name": c.name}
            if kind == "agent":
                item["prompt"] = c.prompt
                if c.llms:
                    config["llm_name"] = c.llms[0]  # the original host's choice: the first llm
            item["config"] = config
            if uses_http(c.plugin_path):
                secret = SECRET_OF[kind]
                item["secrets"] = {secret.key: secret.spec()}
                item["grant"] = {"hosts": [secret.host]}
            if kind == "agent":
                item["llms"] = list(c.llms)
                item["tools"] = list(c.tools)
            entries.append(item)
        if entries:
            out[section] = entries
    return out


def load(path: Path, uses_http: UsesHttp) -> AppConfig | None:
    """`cspm run app.json`: the original app as cspm's app model, exactly what the app.yaml that
    `cspm import` writes for it loads to; None for a cspm app file written as JSON."""
    from cspm.formats import app as app_format

    original = read(path)
    if original is None:
        return None
    app = app_format.parse(yamlsrc.Located(convert(original, uses_http), original.located.lines), path)
    app.original = True
    return app


def secrets_of(document: dict[str, Any]) -> list[tuple[str, LegacySecret]]:
    """(component, secret) for every key a converted app reads: what the user must export."""
    by_key = {s.key: s for s in SECRET_OF.values()}
    return [(item["name"], by_key[key]) for section in SECTIONS for item in document.get(section, [])
            for key in item.get("secrets", {})]


def to_yaml(document: dict[str, Any], source: Path) -> str:
    """The app.yaml text of a converted document, with a header saying where it came from."""
    import yaml

    header = (f"# Converted from the original Chainsocket {source.name} by `cspm import` (docs/formats.md,\n"
              "# \"The original app.json\"). API keys are read from the environment, never written here.\n")
    return header + yaml.safe_dump(document, sort_keys=False, allow_unicode=True, width=100)


def app_name(path: Path) -> str:
    """The app's name (its kv scope): what app.yaml's default gives a file named app.json (its
    folder's name), made an ident so the app.yaml `cspm import` writes can state it."""
    from cspm.formats.app import _default_name

    name = _default_name(path).lstrip(".-")[:64]
    return name if _is_ident(name) else "app"


@dataclass(frozen=True)
class Imported:
    """What `cspm import` wrote: the app.yaml document and where."""

    source: Path
    out: Path
    document: dict[str, Any]
    overwrote: bool

    @property
    def secrets(self) -> list[tuple[str, LegacySecret]]:
        return secrets_of(self.document)


def import_file(source: Path, out: Path, uses_http: UsesHttp, *, force: bool = False) -> Imported:
    """Write the app.yaml of the original app.json `source` to `out`, atomically; never over an existing
    file unless `force`. Nothing is written when the source is refused. The text is loaded back with
    cspm's own parser before it is written, so the file written is one `cspm run` takes."""
    from cspm import atomicfile
    from cspm.formats import app as app_format

    original = read(source)
    if original is None:
        raise InputError(f"{source} is already a cspm app file (it has keys only app.yaml has)",
                         hint=f"run it as it is: `cspm run {source}`")
    if out.is_dir():
        raise InputError(f"{out} is a folder", hint=f"name the file: `cspm import {source} --out {out / 'app.yaml'}`")
    if not out.parent.is_dir():
        raise InputError(f"{out.parent} is not a folder", hint="create it, or write the app.yaml elsewhere: "
                                                                f"`cspm import {source} --out app.yaml`")
    if out.resolve() == source.resolve():
        raise InputError(f"{out} is the app.json being imported",
                         hint=f"write an app.yaml: `cspm import {source} --out app.yaml`")
    exists = out.exists() or out.is_symlink()
    if exists and not force:
        raise InputError(f"{out} already exists; `cspm import` does not overwrite it",
                         hint=f"write elsewhere (`cspm import {source} --out OTHER.yaml`) or replace it "
                              f"(`cspm import {source} --out {out} --force`)")
    document = convert(original, uses_http, base=out.parent)
    text = to_yaml(document, source)
    app_format.parse(yamlsrc.load_text(text), out)  # what `cspm run` will read: a failure here is a bug
    atomicfile.write(out, text)
    return Imported(source, out, document, exists)


# --- reading --------------------------------------------------------------------------------------

def _parse(path: Path, shown: str) -> yamlsrc.Located:
    """Strict JSON, at most MAX_BYTES and MAX_DEPTH, no duplicate keys; lines kept for messages."""
    import os
    import stat

    try:  # non-blocking: a FIFO named app.json must not hang the open
        fd = os.open(path, os.O_RDONLY | os.O_NONBLOCK | getattr(os, "O_CLOEXEC", 0))
    except FileNotFoundError:
        raise FormatError(shown, "no such file", hint="check the path") from None
    except OSError as exc:
        raise FormatError(shown, f"cannot read it: {exc.strerror or exc}") from None
    with os.fdopen(fd, "rb") as handle:
        if not stat.S_ISREG(os.fstat(handle.fileno()).st_mode):
            raise FormatError(shown, "is not a regular file")
        try:
            raw = handle.read(MAX_BYTES + 1)
        except OSError as exc:
            raise FormatError(shown, f"cannot read it: {exc.strerror or exc}") from None
    if len(raw) > MAX_BYTES:
        raise FormatError(shown, f"is larger than {MAX_BYTES // 1024} KiB: not an app.json")
    try:
        bounded_json.loads(raw, max_bytes=MAX_BYTES, max_depth=MAX_DEPTH)
        text = raw.decode("utf-8")  # bounded_json said it is UTF-8, JSON and within the limits
        data = json.loads(text, object_pairs_hook=_no_duplicates)
    except (bounded_json.JsonRejected, _Duplicate) as exc:
        raise FormatError(shown, str(exc)) from None
    try:  # JSON is YAML: its parser knows each value's line (a tab-indented file may not parse: no lines)
        located = yamlsrc.load_text(text)
        lines = located.lines if located.data == data else {}
    except yamlsrc.YamlError:
        lines = {}
    return yamlsrc.Located(data, lines)


class _Duplicate(ValueError):
    pass


def _no_duplicates(pairs: list[tuple[str, Any]]) -> dict[str, Any]:
    out: dict[str, Any] = {}
    for key, value in pairs:
        if key in out:
            raise _Duplicate(f"the key {_clip(key)!r} appears twice in one object")
        out[key] = value
    return out


def _is_cspm_shape(data: dict[str, Any]) -> bool:
    if CSPM_TOP_KEYS & data.keys():
        return True
    for section in SECTIONS:
        items = data.get(section)
        for item in items if isinstance(items, list) else ():
            if isinstance(item, dict) and CSPM_COMPONENT_KEYS & item.keys():
                return True
    return False


def _component(kind: Kind, raw: Any, at: yamlsrc.Path_, folder: Path, located: yamlsrc.Located,
               shown: str) -> OriginalComponent:
    if not isinstance(raw, dict):
        raise _error(shown, located, at, f"must be an object with `name` and `plugin_name`, not {_type(raw)}")
    keys = AGENT_KEYS if kind == "agent" else COMPONENT_KEYS
    _known_keys(raw, keys, at, located, shown)
    for key in ("name", "plugin_name"):
        if key not in raw:
            raise _error(shown, located, at, f"has no `{key}`")
    name = _string(raw, "name", at, located, shown, 64)
    if not _is_ident(name):
        raise _error(shown, located, (*at, "name"),
                     f"{_clip(name)!r} is not a name cspm allows: letters, digits and `_.-`, at most 64, "
                     "not starting with `.` or `-`")
    description = _string(raw, "description", at, located, shown, MAX_DESCRIPTION) if "description" in raw else ""
    plugin_name = _string(raw, "plugin_name", at, located, shown, MAX_PATH)
    plugin_path = _plugin_path(plugin_name, folder, (*at, "plugin_name"), located, shown)
    if kind != "agent":
        return OriginalComponent(kind, name, description, plugin_name, plugin_path)
    prompt = _string(raw, "prompt", at, located, shown, MAX_PROMPT) if "prompt" in raw else ""
    return OriginalComponent(kind, name, description, plugin_name, plugin_path, prompt,
                             _names(raw, "llms", at, located, shown), _names(raw, "tools", at, located, shown))


def _known_keys(raw: dict[str, Any], keys: tuple[str, ...], at: yamlsrc.Path_, located: yamlsrc.Located,
                shown: str) -> None:
    for key in raw:
        if key not in keys:
            raise _error(shown, located, (*at, key),
                         f"unknown field{did_you_mean(key, keys)}: the original app.json has only "
                         f"{', '.join(f'`{k}`' for k in keys)} here")


def _string(raw: dict[str, Any], key: str, at: yamlsrc.Path_, located: yamlsrc.Located, shown: str,
            limit: int) -> str:
    value = raw[key]
    if not isinstance(value, str):
        raise _error(shown, located, (*at, key), f"must be a string, not {_type(value)}")
    if len(value) > limit:
        raise _error(shown, located, (*at, key), f"is {len(value)} characters long, more than {limit}")
    return value


def _names(raw: dict[str, Any], key: str, at: yamlsrc.Path_, located: yamlsrc.Located,
           shown: str) -> tuple[str, ...]:
    value = raw.get(key, [])
    if not isinstance(value, list) or not all(isinstance(v, str) for v in value):
        raise _error(shown, located, (*at, key), "must be a list of names")
    if len(value) > MAX_ITEMS:
        raise _error(shown, located, (*at, key), f"has {len(value)} names, more than {MAX_ITEMS}")
    return tuple(value)


def _plugin_path(raw: str, folder: Path, at: yamlsrc.Path_, located: yamlsrc.Located, shown: str) -> Path:
    """The file `raw` names: in `plugins/` beside the app file (where the original host looked), else
    beside the app file. A relative path that stays in the app's folder, also once links are followed."""
    def refuse(why: str) -> FormatError:
        return _error(shown, located, at, f"{_clip(raw)!r} {why}",
                      hint="name a .wasm inside the app's folder, e.g. \"openai.wasm\" for plugins/openai.wasm")

    if not raw or "\0" in raw or "\\" in raw:
        raise refuse("is not a plug-in path (empty, or has a NUL or a backslash)")
    if PurePosixPath(raw).is_absolute() or raw.startswith("~"):
        raise refuse("is an absolute path: the original app.json names files in its `plugins/` folder")
    parts = [p for p in raw.split("/") if p != "."]
    if any(p == ".." for p in parts):
        raise refuse("leaves the app's folder (`..`)")
    if not parts or any(not p or len(p) > MAX_SEGMENT for p in parts):
        raise refuse("is not a plug-in path (an empty or over-long part)")
    try:
        root = folder.resolve()
    except OSError as exc:
        raise FormatError(shown, f"cannot resolve its folder: {exc.strerror or exc}") from None
    for base in (folder / PLUGINS_FOLDER, folder):
        candidate = base.joinpath(*parts)
        try:
            if not (candidate.exists() or candidate.is_symlink()):
                continue
            real = candidate.resolve(strict=True)
        except (OSError, RuntimeError) as exc:
            why = exc.strerror if isinstance(exc, OSError) and exc.strerror else "a broken or looping link"
            raise refuse(f"cannot be followed: {why} ({candidate})") from None
        if not real.is_relative_to(root):
            raise refuse(f"leads outside the app's folder {root} (to {real})")
        if not real.is_file():
            raise refuse(f"is not a file ({candidate})")
        return candidate
    line = located.line_of(at)
    where = f"{shown}:{line}" if line else shown
    raise PluginFileMissing(f"{where}: {yamlsrc.format_path(at)}: {_clip(raw)!r} is in neither {PLUGINS_FOLDER}/ "
                            f"nor the app's folder itself ({root})",
                            hint="build or copy the plug-in there, or fix `plugin_name`")


def _relative(path: Path, base: Path) -> str:
    """`path` as app.yaml names it from `base`: relative, with `/`."""
    import os

    return Path(os.path.relpath(path.absolute(), base.absolute())).as_posix()


def _error(shown: str, located: yamlsrc.Located, at: yamlsrc.Path_, message: str,
           hint: str | None = None) -> FormatError:
    field = yamlsrc.format_path(tuple(_clip(p) if isinstance(p, str) else p for p in at))  # a key may be long
    return FormatError(shown, message, located.line_of(at), field, hint=hint)


def _type(value: Any) -> str:
    return {dict: "an object", list: "a list", str: "a string", bool: "true/false", type(None): "null"}.get(
        type(value), "a number")


def _clip(text: str, limit: int = 80) -> str:
    return text if len(text) <= limit else text[:limit] + "…"


def _a(kind: str) -> str:
    return f"an {kind}" if kind in ("llm", "agent") else f"a {kind}"
