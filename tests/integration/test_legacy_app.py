"""The original Chainsocket app.json (issue 23): `cspm run app.json`, `cspm import`, and `cspm inspect`
of a module built for Extism 0.x.

The apps here are written in the original shape (tools, llms, agents, entry; `plugin_name` in a
`plugins/` folder) over real plug-ins: the calculator and openai-chat builds, an ABI 1 agent and an
ABI 0 tool assembled from WAT below (the original binaries carry no licence and are never used).
"""

from __future__ import annotations

import json
import os
import shutil
import subprocess
import sys
from collections.abc import Callable
from pathlib import Path
from typing import Any

import pytest

from cspm import plan_cache, planner
from cspm.errors import FormatError, PluginFileMissing
from cspm.formats import app as app_format
from cspm.formats import legacy_app
from cspm.verify.wasm import ABI0_DESCRIPTION
from tests.conftest import ROOT, plugin_wasm

LIVE_KEY = "sk-live-9f8e7d6c5b4a39281706f5e4"  # must never be written anywhere


def cspm(*args: str, cwd: Path = ROOT, env: dict[str, str] | None = None) -> subprocess.CompletedProcess[str]:
    path = os.pathsep.join(filter(None, [str(ROOT), os.environ.get("PYTHONPATH")]))  # this tree's cspm, any cwd
    result = subprocess.run([sys.executable, "-m", "cspm.cli.main", *args], capture_output=True, text=True,
                            cwd=cwd, env={**os.environ, "PYTHONPATH": path, **(env or {})}, timeout=180)
    assert "Traceback" not in result.stderr, result.stderr
    return result


def _wat_string(text: str) -> str:
    return text.replace("\\", "\\\\").replace('"', '\\"')


def abi1_agent_wat(tool: str) -> str:
    """An ABI 1 agent that asks tool `tool` for 6*7 and returns the tool's whole answer (or the host's
    error document) as its response's `tool`: `{"finish_reason":"final_answer","output":"asked",
    "tool":ANSWER}`."""
    request = json.dumps({"name": tool, "input": "6*7"}, separators=(",", ":"))
    prefix = '{"finish_reason":"final_answer","output":"asked","tool":'
    size = len(prefix)
    return f"""(module
  (import "extism:host/env" "alloc" (func $alloc (param i64) (result i64)))
  (import "extism:host/env" "store_u8" (func $store_u8 (param i64 i32)))
  (import "extism:host/env" "load_u8" (func $load_u8 (param i64) (result i32)))
  (import "extism:host/env" "length" (func $length (param i64) (result i64)))
  (import "extism:host/env" "output_set" (func $output_set (param i64 i64)))
  (import "extism:host/user" "call_tool" (func $call_tool (param i64) (result i64)))
  (memory (export "memory") 1)
  (data (i32.const 0) "{_wat_string(request)}")
  (data (i32.const 1024) "{_wat_string(prefix)}")
  (func $put (param $dst i64) (param $src i32) (param $n i32)
    (local $i i32)
    (block $done (loop $next
      (br_if $done (i32.ge_u (local.get $i) (local.get $n)))
      (call $store_u8 (i64.add (local.get $dst) (i64.extend_i32_u (local.get $i)))
                      (i32.load8_u (i32.add (local.get $src) (local.get $i))))
      (local.set $i (i32.add (local.get $i) (i32.const 1)))
      (br $next))))
  (func (export "call") (result i32)
    (local $req i64) (local $rep i64) (local $n i64) (local $out i64) (local $i i64)
    (local.set $req (call $alloc (i64.const {len(request)})))
    (call $put (local.get $req) (i32.const 0) (i32.const {len(request)}))
    (local.set $rep (call $call_tool (local.get $req)))
    (local.set $n (call $length (local.get $rep)))
    (local.set $out (call $alloc (i64.add (i64.const {size + 1}) (local.get $n))))
    (call $put (local.get $out) (i32.const 1024) (i32.const {size}))
    (block $done (loop $next
      (br_if $done (i64.ge_u (local.get $i) (local.get $n)))
      (call $store_u8 (i64.add (local.get $out) (i64.add (i64.const {size}) (local.get $i)))
                      (call $load_u8 (i64.add (local.get $rep) (local.get $i))))
      (local.set $i (i64.add (local.get $i) (i64.const 1)))
      (br $next)))
    (call $store_u8 (i64.add (local.get $out) (i64.add (i64.const {size}) (local.get $n))) (i32.const 125))
    (call $output_set (local.get $out) (i64.add (i64.const {size + 1}) (local.get $n)))
    (i32.const 0)))
"""


# An Extism 0.x module with the imports of the original google_search plug-in's kind: the kernel in
# `env`, its config and HTTP request, and a Chainsocket 0 call. It is read, never run, here.
ABI0_TOOL_WAT = """(module
  (import "env" "extism_input_length" (func (result i64)))
  (import "env" "extism_config_get" (func (param i64) (result i64)))
  (import "env" "extism_http_request" (func (param i64 i64) (result i64)))
  (import "env" "extism_output_set" (func (param i64 i64)))
  (import "env" "call_llm" (func (param i64) (result i64)))
  (memory (export "memory") 1)
  (func (export "call") (result i32) (i32.const 0)))
"""


def assemble(text: str, out: Path) -> Path:
    tool = shutil.which("wat2wasm")
    if tool is None:
        pytest.fail("wat2wasm (Debian package wabt) is required: .ci/setup installs it")
    source = out.with_suffix(".wat")
    source.write_text(text, encoding="utf-8")
    subprocess.run([tool, str(source), "-o", str(out)], check=True)
    source.unlink()
    return out


ORIGINAL: dict[str, Any] = {
    "tools": [
        {"name": "calc", "description": "evaluates arithmetic", "plugin_name": "calculator.wasm"},
        {"name": "google_search", "description": "runs a google search given an input string",
         "plugin_name": "google_search.wasm"},
    ],
    "llms": [{"name": "openai", "description": "calls chatGPT ", "plugin_name": "openai.wasm"}],
    "agents": [
        {"name": "solver", "description": "asks the calculator", "plugin_name": "solver.wasm",
         "prompt": "You are brief.", "tools": ["calc"], "llms": ["openai"]},
        {"name": "chatty", "description": "no tools", "plugin_name": "solver.wasm", "prompt": "",
         "tools": [], "llms": []},
    ],
    "entry": "solver",
}


@pytest.fixture(scope="module")
def modules(tmp_path_factory: pytest.TempPathFactory) -> dict[str, Path]:
    """The plug-ins of the original-shape apps: built once, copied into each app's folder."""
    folder = tmp_path_factory.mktemp("legacy-modules")
    return {
        "calculator.wasm": plugin_wasm("calculator"),
        "openai.wasm": plugin_wasm("openai-chat"),
        "google_search.wasm": assemble(ABI0_TOOL_WAT, folder / "google_search.wasm"),
        "solver.wasm": assemble(abi1_agent_wat("calc"), folder / "solver.wasm"),
    }


@pytest.fixture
def make_app(tmp_path: Path, modules: dict[str, Path]) -> Callable[..., Path]:
    """An app folder: app.json (ORIGINAL, changed by `edit`), the plug-ins in `plugins/` except the
    agent's, which lies beside app.json (a path relative to the file, the other place looked in)."""
    def make(edit: Callable[[dict[str, Any]], Any] | None = None, folder: str = "legacy") -> Path:
        root = tmp_path / folder
        (root / "plugins").mkdir(parents=True)
        for name, source in modules.items():
            shutil.copyfile(source, (root if name == "solver.wasm" else root / "plugins") / name)
        data = json.loads(json.dumps(ORIGINAL))
        if edit is not None:
            edit(data)
        path = root / "app.json"
        path.write_text(json.dumps(data, indent=4), encoding="utf-8")
        return path
    return make


def _components(plan: Any) -> dict[str, dict[str, Any]]:
    """A plan's components without `where` (which names the file and line)."""
    return {name: {k: v for k, v in c.items() if k != "where"} for name, c in plan.to_dict()["components"].items()}


# --- the original shape, read ---------------------------------------------------------------------

def test_the_original_shape_becomes_the_app_the_original_host_ran(make_app: Callable[..., Path]) -> None:
    path = make_app()
    app = planner.load_app_file(path)
    assert app.original and app.entry == "solver" and app.name == "legacy"
    c = app.components
    assert {n: x.kind for n, x in c.items()} == {"openai": "llm", "calc": "tool", "google_search": "tool",
                                               "solver": "agent", "chatty": "agent"}
    # plug-ins from plugins/ (as the original host looked), else beside the file
    assert c["calc"].plugin_path == path.parent / "plugins" / "calculator.wasm"
    assert c["solver"].plugin_path == path.parent / "solver.wasm"
    # the original config keys, as chainsocket.py gave them (keys aside)
    assert c["openai"].config == {"name": "openai"}
    assert c["calc"].config == {"name": "calc"}
    assert c["solver"].config == {"name": "solver", "llm_name": "openai"} and c["solver"].prompt == "You are brief."
    assert c["chatty"].config == {"name": "chatty"} and c["chatty"].prompt == ""
    # keys: secrets from the environment, only for a module that makes HTTP requests, only to its host
    (openai_key,) = c["openai"].secrets
    assert (openai_key.name, openai_key.source, openai_key.header, openai_key.format, openai_key.hosts,
            openai_key.query) == ("openai_apikey", "env:OPENAI_API_KEY", "Authorization", "Bearer {}",
                                  ("https://api.openai.com",), None)
    assert c["openai"].grant.hosts == ("https://api.openai.com",)
    (search_key,) = c["google_search"].secrets  # the ABI 0 tool imports env.extism_http_request
    assert (search_key.name, search_key.source, search_key.hosts, search_key.query) == (
        "google_apikey", "env:SERPAPI_API_KEY", ("https://serpapi.com",), "api_key")
    assert c["google_search"].grant.hosts == ("https://serpapi.com",)
    for name in ("calc", "solver", "chatty"):  # no HTTP import: no host, no key
        assert c[name].secrets == () and c[name].grant.hosts == (), name
    # wiring: an agent calls what it lists, nothing else; llms and tools call nothing
    assert (c["solver"].llms, c["solver"].tools, c["solver"].agents) == (("openai",), ("calc",), ())
    assert (c["chatty"].llms, c["chatty"].tools) == ((), ())
    lines = path.read_text().splitlines()  # messages and plans point into the app.json
    assert lines[c["solver"].line - 1].strip() == "{" and '"name": "solver"' in lines[c["solver"].line]


def test_a_cspm_app_written_as_json_is_read_by_cspms_own_loader(make_app: Callable[..., Path]) -> None:
    def cspm_shape(data: dict[str, Any]) -> None:
        data["tools"][0]["config"] = {"precision": 3}
        data["tools"][0]["plugin_name"] = "plugins/calculator.wasm"
    path = make_app(cspm_shape)
    assert legacy_app.read(path) is None
    with pytest.raises(PluginFileMissing):  # app.yaml semantics: plugin_name relative to the file only
        planner.build(planner.load_app_file(path))


# --- hostile and broken inputs --------------------------------------------------------------------

def _escape_link(data: dict[str, Any]) -> None:
    data["llms"][0]["plugin_name"] = "linked.wasm"


HOSTILE: list[tuple[str, Callable[[dict[str, Any]], Any] | str, type[Exception], str]] = [
    ("too big", "too-big", FormatError, "larger than 1024 KiB"),
    ("too deep", "too-deep", FormatError, "nested more than 8 levels deep"),
    ("not JSON", "not-json", FormatError, "not JSON"),
    ("duplicate key", "duplicate-key", FormatError, "the key 'entry' appears twice"),
    ("top level", lambda d: d.clear() or d.update({"x": 1}), FormatError, "unknown field"),
    ("unknown key", lambda d: d["llms"][0].update({"plugin_nam": "x"}), FormatError,
     "llms[0].plugin_nam: unknown field (did you mean 'plugin_name'?)"),
    ("agent key on a tool", lambda d: d["tools"][0].update({"prompt": "x"}), FormatError,
     "tools[0].prompt: unknown field"),
    ("section type", lambda d: d.update({"tools": {"calc": {}}}), FormatError, "tools: must be a list of tools"),
    ("component type", lambda d: d["llms"].append("openai"), FormatError, "llms[1]: must be an object"),
    ("name type", lambda d: d["llms"][0].update({"name": 7}), FormatError, "llms[0].name: must be a string"),
    ("bad name", lambda d: d["llms"][0].update({"name": "../openai"}), FormatError,
     "is not a name cspm allows"),
    ("list type", lambda d: d["agents"][0].update({"tools": "calc"}), FormatError,
     "agents[0].tools: must be a list of names"),
    ("missing plugin_name", lambda d: d["llms"][0].pop("plugin_name"), FormatError, "has no `plugin_name`"),
    ("duplicate names", lambda d: d["tools"][0].update({"name": "openai"}), FormatError,
     "'openai' is already the name of an llm"),
    ("entry names nothing", lambda d: d.update({"entry": "solvr"}), FormatError,
     "entry: 'solvr' names no agent of this app (did you mean 'solver'?)"),
    ("entry is a tool", lambda d: d.update({"entry": "calc"}), FormatError, "'calc' is a tool, not an agent"),
    ("no entry", lambda d: d.pop("entry"), FormatError, "has no `entry`"),
    ("dangling reference", lambda d: d["agents"][0].update({"tools": ["calcc"]}), FormatError,
     "agents[0].tools[0]: 'calcc' is not a tool of this app (did you mean 'calc'?)"),
    ("wrong kind", lambda d: d["agents"][0].update({"llms": ["calc"]}), FormatError,
     "'calc' is a tool, not an llm"),
    ("parent folder", lambda d: d["llms"][0].update({"plugin_name": "../openai.wasm"}), FormatError,
     "leaves the app's folder"),
    ("absolute path", lambda d: d["llms"][0].update({"plugin_name": "/etc/passwd"}), FormatError,
     "is an absolute path"),
    ("home folder", lambda d: d["llms"][0].update({"plugin_name": "~/openai.wasm"}), FormatError,
     "is an absolute path"),
    ("backslash", lambda d: d["llms"][0].update({"plugin_name": "..\\openai.wasm"}), FormatError,
     "has a NUL or a backslash"),
    ("link out", _escape_link, FormatError, "leads outside the app's folder"),
    ("a folder", lambda d: d["llms"][0].update({"plugin_name": "."}), FormatError, "not a plug-in path"),
    ("missing file", lambda d: d["llms"][0].update({"plugin_name": "gpt.wasm"}), PluginFileMissing,
     "'gpt.wasm' is in neither plugins/ nor the app's folder itself"),
]


@pytest.mark.parametrize("case, edit, error, message", HOSTILE, ids=[h[0] for h in HOSTILE])
def test_hostile_and_broken_files_are_refused_and_nothing_is_written(
        make_app: Callable[..., Path], tmp_path: Path, case: str, edit: Any, error: type[Exception],
        message: str) -> None:
    path = make_app(edit if callable(edit) else None)
    if case == "link out":
        outside = tmp_path / "outside.wasm"
        outside.write_bytes((path.parent / "plugins" / "openai.wasm").read_bytes())
        (path.parent / "plugins" / "linked.wasm").symlink_to(outside)
    elif edit == "too-big":
        path.write_text(json.dumps({**ORIGINAL, "tools": [{**ORIGINAL["tools"][0],
                                                           "description": "x" * (1024 * 1024)}]}))
    elif edit == "too-deep":
        path.write_text('{"tools": ' + "[" * 40 + "]" * 40 + "}")
    elif edit == "not-json":
        path.write_text("{'tools': []}")
    elif edit == "duplicate-key":
        path.write_text(json.dumps(ORIGINAL)[:-1] + ', "entry": "chatty"}')
    out = path.parent / "app.yaml"
    with pytest.raises(error) as caught:
        legacy_app.import_file(path, out, planner.module_uses_http)
    assert message in str(caught.value)
    assert str(path) in str(caught.value)  # the message names the file
    assert not out.exists()
    with pytest.raises(error):  # `cspm run app.json` refuses it the same way
        planner.load_app_file(path)


def test_the_cli_refuses_with_the_documented_code_and_writes_nothing(make_app: Callable[..., Path]) -> None:
    path = make_app(lambda d: d["llms"][0].update({"plugin_name": "../../etc/openai.wasm"}))
    result = cspm("import", str(path), "--json")
    assert result.returncode == 2, result.stdout
    error = json.loads(result.stdout)["error"]
    assert error["code"] == "input.format" and "leaves the app's folder" in error["message"]
    line = next(i for i, text in enumerate(path.read_text().splitlines(), 1) if "../../etc" in text)
    assert f"{path}:{line}: llms[0].plugin_name" in error["message"]  # file, line and field
    assert not (path.parent / "app.yaml").exists()
    run = cspm("run", str(path), "--input", "x")
    assert run.returncode == 2 and "leaves the app's folder" in run.stderr


def test_an_app_json_that_is_not_a_regular_file_is_refused_at_once(tmp_path: Path) -> None:
    fifo = tmp_path / "app.json"
    os.mkfifo(fifo)  # an open() that waited for a writer would hang the command
    with pytest.raises(FormatError, match="is not a regular file"):
        planner.load_app_file(fifo)


def test_run_without_an_app_yaml_points_at_the_app_json_beside_it(make_app: Callable[..., Path]) -> None:
    path = make_app()
    result = cspm("run", "--input", "x", cwd=path.parent)
    assert result.returncode == 2
    assert "app.yaml: no such file" in result.stderr
    assert "`cspm run app.json`, or `cspm import app.json`" in result.stderr


# --- cspm import ----------------------------------------------------------------------------------

def test_import_writes_an_app_yaml_that_plans_to_the_same_components(make_app: Callable[..., Path]) -> None:
    path = make_app()
    result = cspm("import", str(path), env={"OPENAI_API_KEY": LIVE_KEY})
    assert result.returncode == 0, result.stderr
    out = path.parent / "app.yaml"
    assert f"wrote {out} from {path} (1 llm, 2 tools, 2 agents; entry solver)" in " ".join(result.stderr.split())
    assert "export OPENAI_API_KEY=..." in result.stderr and "export SERPAPI_API_KEY=..." in result.stderr
    assert f"cspm run {out}" in result.stderr
    text = out.read_text()
    assert LIVE_KEY not in text and "apikey: sk" not in text
    written = app_format.load(out)  # cspm's own loader, nothing of the legacy module
    assert not written.original
    legacy = planner.build(planner.load_app_file(path))
    planned = planner.build(written)
    assert _components(planned) == _components(legacy)
    assert (planned.app_name, planned.kv_scope, planned.entry) == (legacy.app_name, legacy.kv_scope, legacy.entry)
    assert LIVE_KEY not in legacy.to_json()


def test_import_elsewhere_keeps_the_plugins_and_the_app_name(make_app: Callable[..., Path], tmp_path: Path) -> None:
    path = make_app()
    other = tmp_path / "elsewhere" / "research.yaml"
    other.parent.mkdir()
    result = cspm("import", str(path), "--out", str(other), "--json")
    assert result.returncode == 0, result.stderr
    assert "plugin_name: ../legacy/plugins/openai.wasm" in other.read_text()
    legacy = planner.build(planner.load_app_file(path))
    planned = planner.build(app_format.load(other))
    assert _components(planned) == _components(legacy) and planned.kv_scope == legacy.kv_scope == "legacy"


def test_import_never_overwrites_without_force(make_app: Callable[..., Path]) -> None:
    path = make_app()
    out = path.parent / "app.yaml"
    out.write_text("entry: mine\n")
    refused = cspm("import", str(path))
    assert refused.returncode == 2
    assert f"{out} already exists; `cspm import` does not overwrite it" in refused.stderr
    assert "--force" in refused.stderr and out.read_text() == "entry: mine\n"
    forced = cspm("import", str(path), "--force", "--json")
    assert forced.returncode == 0, forced.stderr
    assert json.loads(forced.stdout)["overwrote"] is True
    assert app_format.load(out).entry == "solver"
    same = cspm("import", str(path), "--out", str(path), "--force")
    assert same.returncode == 2 and "is the app.json being imported" in same.stderr
    assert json.loads(path.read_text())["entry"] == "solver"


def test_import_json_says_what_it_did_and_what_to_do(make_app: Callable[..., Path]) -> None:
    path = make_app()
    (path.parent / "secrets.json").write_text(json.dumps({"openai_apikey": LIVE_KEY, "google_apikey": "x"}))
    result = cspm("import", str(path), "--json")
    assert result.returncode == 0, result.stderr
    report = json.loads(result.stdout)
    out = str(path.parent / "app.yaml")
    assert report["app"] == out and report["from"] == str(path) and report["written"] is True
    assert report["overwrote"] is False and report["entry"] == "solver"
    assert report["components"] == {"llms": ["openai"], "tools": ["calc", "google_search"],
                                    "agents": ["solver", "chatty"]}
    assert report["secrets"] == [
        {"component": "openai", "name": "openai_apikey", "env": "OPENAI_API_KEY", "hosts": ["api.openai.com"]},
        {"component": "google_search", "name": "google_apikey", "env": "SERPAPI_API_KEY", "hosts": ["serpapi.com"]},
    ]
    assert report["next"] == ["export OPENAI_API_KEY=...", "export SERPAPI_API_KEY=...", f"cspm run {out}"]
    assert "secrets.json is not read" in report["notes"][0]
    assert LIVE_KEY not in Path(out).read_text() and LIVE_KEY not in result.stdout


def test_add_and_remove_refuse_an_original_app_json(make_app: Callable[..., Path]) -> None:
    path = make_app()
    before = path.read_bytes()
    result = cspm("remove", "chatty", "--app", str(path))
    assert result.returncode == 2 and "is an original Chainsocket app.json" in result.stderr
    assert f"cspm import {path}" in result.stderr and path.read_bytes() == before


# --- cspm run app.json ----------------------------------------------------------------------------

def test_run_app_json_on_abi1_plugins(make_app: Callable[..., Path]) -> None:
    path = make_app()
    env = {"OPENAI_API_KEY": LIVE_KEY, "SERPAPI_API_KEY": "serp-test"}  # bound at load, like the original's
    result = cspm("run", str(path), "--input", "what is 6*7?", "--json", env=env)
    assert result.returncode == 0, result.stderr
    answer = json.loads(result.stdout)
    assert (answer["finish_reason"], answer["entry"]) == ("final_answer", "solver")
    assert answer["response"]["tool"] == {"output": "42", "is_error": False}  # the calculator answered
    # the plan was kept by the file's bytes, as an app.yaml's is: the next run needs no planning
    os.environ.update(env)
    try:
        cached = plan_cache.lookup(str(path))
        assert cached is not None and cached.to_dict() == planner.build(planner.load_app_file(path)).to_dict()
        again = cspm("run", str(path), "--input", "again", "--json", env=env)
        assert again.returncode == 0 and json.loads(again.stdout)["response"]["tool"]["output"] == "42"
        path.write_text(path.read_text().replace("You are brief.", "You are terse."))
        assert plan_cache.lookup(str(path)) is None  # other bytes: planned again
    finally:
        for name in env:
            os.environ.pop(name, None)


def test_run_app_json_routes_only_what_an_agent_lists(make_app: Callable[..., Path]) -> None:
    path = make_app(lambda d: d["agents"][0].update({"tools": ["google_search"]}))
    env = {"OPENAI_API_KEY": "sk-test", "SERPAPI_API_KEY": "serp-test"}
    result = cspm("run", str(path), "--input", "6*7", "--json", env=env)
    assert result.returncode == 0, result.stderr
    refused = json.loads(result.stdout)["response"]["tool"]["error"]  # `calc` is not a tool it lists
    assert refused["code"] == "not_declared" and "calc" in refused["message"]


def test_run_app_json_needs_its_keys_from_the_environment(make_app: Callable[..., Path]) -> None:
    path = make_app()
    env = {k: v for k, v in os.environ.items() if k not in ("OPENAI_API_KEY", "SERPAPI_API_KEY")}
    result = subprocess.run([sys.executable, "-m", "cspm.cli.main", "run", str(path), "--input", "x"],
                            capture_output=True, text=True, cwd=ROOT, env=env, timeout=180)
    assert result.returncode == 1
    assert "environment variable" in result.stderr and "_API_KEY is not set" in result.stderr


def test_an_app_yaml_loads_nothing_of_the_original_format() -> None:
    """The plain `cspm run app.yaml` start-up never imports the app.json reader."""
    code = ("import sys; from cspm import planner; planner.load_app_file('examples/self-ask-demo/app.yaml'); "
            "import cspm.cli.run; print('cspm.formats.legacy_app' in sys.modules)")
    result = subprocess.run([sys.executable, "-c", code], capture_output=True, text=True, cwd=ROOT, timeout=60)
    assert result.returncode == 0, result.stderr
    assert result.stdout.strip() == "False"


# --- cspm inspect of an Extism 0.x module ---------------------------------------------------------

def test_inspect_says_what_cspm_does_with_an_abi0_module(modules: dict[str, Path]) -> None:
    module = modules["google_search.wasm"]
    result = cspm("inspect", str(module))
    assert result.returncode == 0, result.stderr
    first, *rest = result.stdout.splitlines()
    assert first == f"{module}: {ABI0_DESCRIPTION}"
    text = " ".join(" ".join(rest).split())
    assert "rewrites its Extism 0.x imports (`env.extism_*`) to Extism 1.x" in text
    assert "translates its Chainsocket 0 calls (call_llm)" in text
    assert "problem" not in result.stdout and "not a Chainsocket plug-in" not in result.stdout
    report = json.loads(cspm("inspect", str(module), "--json").stdout)
    assert report["abi"] == 0 and report["ok"] is True
    assert report["abi0"]["description"] == ABI0_DESCRIPTION and len(report["abi0"]["cspm_will"]) >= 3
    abi1 = json.loads(cspm("inspect", str(modules["calculator.wasm"]), "--json").stdout)
    assert abi1["abi"] == 1 and "abi0" not in abi1


def test_inspect_still_names_what_cspm_cannot_map(tmp_path: Path) -> None:
    module = assemble(ABI0_TOOL_WAT.replace('"extism_input_length"', '"extism_launch_missiles"'),
                      tmp_path / "odd.wasm")
    result = cspm("inspect", str(module))
    assert result.returncode == 1
    assert "env.extism_launch_missiles" in result.stderr


# --- the original app.json over Extism 0.x plug-ins (tests/wat/abi0_*.wat) ------------------------

def _abi0_app(tmp_path: Path, wat_dir: Path) -> Path:
    """The original app's shape and file names over the ABI 0 test plug-ins: an agent that asks the
    llm its config `llm_name` names, an llm that answers what it heard, a tool with an HTTP import."""
    root = tmp_path / "chainsocket"
    (root / "plugins").mkdir(parents=True)
    for name, source in (("self_ask.wasm", "abi0_agent"), ("openai.wasm", "abi0_echo"),
                         ("google_search.wasm", "abi0_kernel")):
        shutil.copyfile(wat_dir / f"{source}.wasm", root / "plugins" / name)
    app = {"tools": [{"name": "google_search", "description": "search", "plugin_name": "google_search.wasm"}],
           "llms": [{"name": "openai", "description": "calls chatGPT", "plugin_name": "openai.wasm"}],
           "agents": [{"name": "self_ask_agent", "description": "self ask", "plugin_name": "self_ask.wasm",
                       "prompt": "Answer briefly.", "tools": ["google_search"], "llms": ["openai"]}],
           "entry": "self_ask_agent"}
    path = root / "app.json"
    path.write_text(json.dumps(app, indent=4), encoding="utf-8")
    return path


def test_run_the_original_app_json_over_abi0_plugins(tmp_path: Path, wat_dir: Path) -> None:
    path = _abi0_app(tmp_path, wat_dir)
    env = {"SERPAPI_API_KEY": LIVE_KEY}  # the one key: only the tool imports extism_http_request
    result = cspm("run", str(path), "--input", "Who lived longer?", "--json", env=env)
    assert result.returncode == 0, result.stderr
    answer = json.loads(result.stdout)
    # AgentReq in; an LLMReq to the llm of `llm_name`, system prompt = `prompt`; its ActionRep back
    assert answer["output"] == "openai heard: Who lived longer? | system: Answer briefly."
    assert answer["finish_reason"] == "final_answer"
    assert LIVE_KEY not in result.stdout + result.stderr


def test_an_original_plugin_reads_its_config_keys_and_only_a_placeholder_key(
        tmp_path: Path, wat_dir: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setenv("SERPAPI_API_KEY", LIVE_KEY)
    with planner.load_app(_abi0_app(tmp_path, wat_dir)) as rt:
        assert rt.call_export("google_search", "config", b"name") == b"google_search"
        placeholder = rt.call_export("google_search", "config", b"google_apikey").decode()
        assert placeholder.startswith("cspm-secret-google_apikey-") and LIVE_KEY not in placeholder
        assert rt.call_export("google_search", "config", b"openai_apikey") == b"<none>"  # not a tool's key
        assert rt.plan.components["google_search"].grant.hosts == ("https://serpapi.com",)
        assert rt.plan.components["self_ask_agent"].config == {"name": "self_ask_agent", "llm_name": "openai",
                                                              "prompt": "Answer briefly."}
