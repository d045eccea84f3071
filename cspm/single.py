"""`cspm call`: one plug-in run on its own, without an app file or a driver agent.

The target is a plug-in folder (plugin.yaml), a bare .wasm (its kind given), or `ns/name@spec` from
the registries, locked into a throw-away app in the cache and installed and verified as `cspm add`
would. Either way the result is an AppConfig of one component, run by the ordinary Runtime: the
grant is the manifest's capabilities and nothing more (a bare .wasm gets the default grant), and a
registry plug-in is not a published app, so no capability approval applies.
"""

from __future__ import annotations

import contextlib
import tempfile
from collections.abc import Iterator
from pathlib import Path
from typing import TYPE_CHECKING, Any

from cspm.errors import InputError
from cspm.formats import app as app_format
from cspm.formats import bounded_json, yamlsrc
from cspm.formats import manifest as manifest_format
from cspm.formats.app import AppConfig, Component, Grant

if TYPE_CHECKING:
    from cspm.fetch import Progress
    from cspm.runtime.engine import RunResult, Runtime

KINDS = ("tool", "llm", "agent")


def parse_config(pairs: list[str]) -> dict[str, Any]:
    """`k=v` pairs: a value that parses as JSON is that value (`n=3`, `flags=[1,2]`), else the text."""
    out: dict[str, Any] = {}
    for pair in pairs:
        key, sep, value = pair.partition("=")
        if not sep or not key:
            raise InputError(f"--config {pair!r}: expected KEY=VALUE")
        try:
            out[key] = bounded_json.loads(value)
        except bounded_json.JsonRejected:
            out[key] = value
    return out


def parse_arguments(text: str) -> dict[str, Any]:
    try:
        value = bounded_json.loads(text)
    except bounded_json.JsonRejected as exc:
        raise InputError(f"--args: {exc}", hint="give a JSON object, e.g. --args '{\"expression\": \"1+2\"}'") from None
    if not isinstance(value, dict):
        raise InputError("--args: a tool's arguments are a JSON object", hint="e.g. --args '{\"key\": \"value\"}'")
    return value


def is_local(target: str) -> bool:
    """A folder, a plugin.yaml or a .wasm on disk (or meant to be: a path, not `ns/name`)."""
    path = Path(target)
    return path.exists() or target.endswith((".wasm", ".yaml", ".yml")) or target.startswith((".", "/", "~"))


@contextlib.contextmanager
def open_target(target: str, *, kind: str | None = None, config: dict[str, Any] | None = None,
                offline: bool = False, warn: Any = None, progress: Progress | None = None) -> Iterator[AppConfig]:
    """The one-component app for `target`; a registry plug-in's temporary app lives while this does."""
    config = config or {}
    if is_local(target):
        yield _local(Path(target).expanduser(), kind, config)
        return
    from cspm.cachedir import Bucket
    from cspm.project import Project, add

    root = Bucket.CALL.path()
    root.mkdir(parents=True, exist_ok=True)
    with tempfile.TemporaryDirectory(dir=root) as folder:
        app_path = Path(folder) / "app.yaml"
        added = add(app_path, target, offline=offline, warn=warn, progress=progress)
        with Project(app_path, offline=offline, warn=warn) as project:
            app = project.prepare(frozen=True, progress=progress)
        component = app.components[added.component]
        if kind is not None and kind != component.kind:
            raise InputError(f"{target} is {app_format._a(component.kind)} plug-in, not {app_format._a(kind)}")
        manifest = component.manifest
        _apply_config(component, manifest, config, target)
        app.name = f"call:{manifest.name if manifest else added.requirement.split('@')[0]}"
        yield app


def _local(path: Path, kind: str | None, config: dict[str, Any]) -> AppConfig:
    shown = str(path)
    manifest = None
    if path.is_dir() or path.name == manifest_format.MANIFEST_FILE:
        if path.is_dir() and not (path / manifest_format.MANIFEST_FILE).exists():
            raise InputError(f"{shown} has no {manifest_format.MANIFEST_FILE}",
                             hint="give the plug-in's folder, or its .wasm with --kind")
        manifest = manifest_format.load(path)
        if manifest.kind not in KINDS:
            raise InputError(f"{manifest.name} is {app_format._a(manifest.kind)} package, not a plug-in to call")
        if kind is not None and kind != manifest.kind:
            raise InputError(f"{manifest.name} is {app_format._a(manifest.kind)} plug-in, not {app_format._a(kind)}",
                             hint="leave out --kind: a plug-in folder's kind comes from its plugin.yaml")
        wasm, chosen, name = manifest.wasm, manifest.kind, manifest.name
    else:
        if not path.exists():
            raise InputError(f"{shown} does not exist", hint="give a plug-in folder, a .wasm, or NAMESPACE/NAME@SPEC")
        if kind is None:
            raise InputError(f"{shown} is a bare module: its kind is not known",
                             hint="say it with --kind tool|llm|agent (or give the plug-in's folder)")
        wasm, chosen, name = path, kind, path.stem
    short = name.rsplit("/", 1)[-1]
    component = Component(kind=chosen, name=short, description="", plugin_path=wasm,  # type: ignore[arg-type]
                          plugin_ref=None, config={}, secrets=(), grant=Grant())
    if manifest is not None:
        app_format.bind(component, manifest, shown, yamlsrc.Located({}))
    _apply_config(component, manifest, config, shown)
    # the app's path names the file errors point at; relative grant paths resolve beside it
    where = manifest.folder / manifest_format.MANIFEST_FILE if manifest is not None else wasm
    return AppConfig(path=where, name=f"call:{name}", entry=short, components={short: component})


def _apply_config(component: Component, manifest: manifest_format.Manifest | None, config: dict[str, Any],
                  shown: str) -> None:
    """`--config` over the manifest's defaults, refused where the manifest does not declare the key."""
    if manifest is not None:
        for key, problem in manifest.config_problems(config).items():
            raise InputError(f"--config {key}: {problem}")
    component.config = {**component.config, **config}


def call(runtime: Runtime, text: str | None = None, arguments: dict[str, Any] | None = None) -> RunResult:
    """One request: `text` to any kind (as `cspm run --input`), or `arguments` to a tool, checked
    against its input_schema first (Runtime.run_message: the check an agent's `call_tool` gets)."""
    if arguments is None:
        return runtime.run(text or "")
    node = runtime.nodes[runtime.plan.entry]
    if node.component.kind != "tool":
        raise InputError(f"--args is for tools; `{node.name}` is {app_format._a(node.component.kind)}",
                         hint="give it text with --input")
    return runtime.run_message(node.name, {"arguments": arguments})
