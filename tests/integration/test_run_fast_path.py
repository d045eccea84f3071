"""The warm fast path of `cspm run APP --input TEXT` (cspm.cli.fast_run, cspm.plan_cache).

Every run is a real process. A probe records which modules the process imported, which tells the
fast path (no typer, no planner) from the normal path; the normal path's output is the reference,
reached with `--offline` (a flag the fast path does not take, and a no-op for a local app).
"""

from __future__ import annotations

import hashlib
import io
import json
import os
import shutil
import subprocess
import sys
from collections.abc import Callable
from pathlib import Path
from typing import Any

import pytest

from cspm.cli import fast_run
from tests.conftest import ROOT, conformance_wasm

PROBE = """
import json, os, sys
sys.argv = ["cspm", *sys.argv[1:]]
try:
    from cspm.cli.main import main
    main()
finally:
    with open(os.environ["FAST_PATH_PROBE"], "w") as out:
        json.dump({"normal": "cspm.planner" in sys.modules, "typer": "typer" in sys.modules,
                   "rich": "rich" in sys.modules, "yaml": "yaml" in sys.modules}, out)
"""


@pytest.fixture(scope="module", autouse=True)
def built() -> None:
    for lang in ("rust", "c", "zig"):
        conformance_wasm(lang)


class Cli:
    """`cspm` in a folder of its own (the cwd is part of a plan's key), with its own user config."""

    def __init__(self, folder: Path) -> None:
        self.folder = folder
        self.probe = folder / "probe.json"
        self.env = {**os.environ, "PYTHONPATH": str(ROOT), "FAST_PATH_PROBE": str(self.probe),
                    "CSPM_CONFIG_DIR": str(folder / "config")}
        self.env.pop("FAST_X", None)

    def __call__(self, *args: str, env: dict[str, str] | None = None, stdin: str = ""
                 ) -> tuple[subprocess.CompletedProcess[str], dict[str, bool]]:
        self.probe.unlink(missing_ok=True)
        done = subprocess.run([sys.executable, "-c", PROBE, *args], capture_output=True, text=True, input=stdin,
                              cwd=self.folder, env={**self.env, **(env or {})}, timeout=120)
        assert "Traceback" not in done.stderr, done.stderr
        return done, json.loads(self.probe.read_text())

    def fast(self, *args: str, rich: bool = False, **kwargs: object) -> subprocess.CompletedProcess[str]:
        """`rich`: the answer is text rich would change (tabs, `:emoji:`): rich prints it, as ever."""
        done, seen = self(*args, **kwargs)  # type: ignore[arg-type]
        assert seen == {"normal": False, "typer": False, "rich": rich, "yaml": False}, (seen, done.stderr)
        return done

    def normal(self, *args: str, **kwargs: object) -> subprocess.CompletedProcess[str]:
        done, seen = self(*args, **kwargs)  # type: ignore[arg-type]
        assert seen["typer"] and seen["normal"], (seen, done.stderr)
        return done


def app_text(prompt: str = "You repeat what you are told.", extra: str = "") -> str:
    c, zig, rust = (conformance_wasm(lang) for lang in ("c", "zig", "rust"))
    return f"""name: fast
entry: echo_agent
llms:
  - {{name: echo_llm, plugin_name: {c}, config: {{kind: llm}}}}
tools:
  - {{name: echo_tool, plugin_name: {zig}, config: {{kind: tool{extra}}}}}
agents:
  - name: echo_agent
    plugin_name: {rust}
    config: {{kind: agent}}
    prompt: {prompt}
    llms: [echo_llm]
    tools: [echo_tool]
    grant: {{kv: true}}
"""


@pytest.fixture
def cli(tmp_path: Path) -> Cli:
    (tmp_path / "app.yaml").write_text(app_text())
    return Cli(tmp_path)


def entries() -> list[Path]:
    from cspm.cachedir import Bucket

    return list(Bucket.PLANS.path().glob("*.json")) if Bucket.PLANS.path().is_dir() else []


def entry_of(cli: Cli) -> Path:
    """The cached plan of this test's app: the one written last (tests run one at a time)."""
    found = entries()
    assert found
    return max(found, key=lambda p: p.stat().st_mtime_ns)


def same(a: subprocess.CompletedProcess[str], b: subprocess.CompletedProcess[str], json_out: bool = False) -> None:
    assert (a.returncode, a.stderr) == (b.returncode, b.stderr)
    if json_out:  # the session id is new on every run
        left, right = json.loads(a.stdout), json.loads(b.stdout)
        left.pop("session"), right.pop("session")
        assert left == right
    else:
        assert a.stdout == b.stdout


def test_a_warm_run_prints_what_the_normal_path_prints(cli: Cli) -> None:
    first = cli.normal("run", "app.yaml", "--input", "hi")
    assert first.returncode == 0 and first.stdout == "hi\n", first.stderr
    same(cli.fast("run", "app.yaml", "--input", "hi"), first)
    same(cli.fast("run", "app.yaml", "-i", "tab\there: :smile: ünï ✓  ", rich=True),
         cli.normal("run", "app.yaml", "-i", "tab\there: :smile: ünï ✓  ", "--offline"))
    same(cli.fast("run", "--input=x y", "app.yaml", "--session", "s1"),
         cli.normal("run", "app.yaml", "--input", "x y", "--session", "s1", "--offline"))


def test_json_is_the_same_document(cli: Cli) -> None:
    cli.normal("run", "app.yaml", "-i", "hi", "--json")
    fast = cli.fast("run", "app.yaml", "-i", "\x1b[31mred\u202e", "--json")
    same(fast, cli.normal("run", "app.yaml", "-i", "\x1b[31mred\u202e", "--json", "--offline"), json_out=True)
    assert json.loads(fast.stdout)["output"] == "\x1b[31mred\u202e"


def test_the_default_app_file_and_errors_with_their_exit_codes(cli: Cli) -> None:
    cli.normal("run", "-i", "hi")
    same(cli.fast("run", "-i", "hi"), cli.normal("run", "-i", "hi", "--offline"))
    bad = {"CSPM_KV_URL": "bogus://nowhere"}  # refused by the runtime's kv, either path
    fast = cli.fast("run", "-i", "hi", env=bad, rich=True)  # an error is printed by rich
    assert fast.returncode != 0 and "bogus" in fast.stderr
    same(fast, cli.normal("run", "-i", "hi", "--offline", env=bad))
    fast_json = cli.fast("run", "-i", "hi", "--json", env=bad, rich=True)
    same(fast_json, cli.normal("run", "-i", "hi", "--json", "--offline", env=bad))
    assert "error" in json.loads(fast_json.stdout)


@pytest.mark.parametrize("args", [
    ("-i", "hi", "--trace"), ("-i", "hi", "-v"), ("-i", "hi", "--offline"), ("-i", "hi", "--frozen"),
    ("-i", "hi", "--refresh"), ("-i", "hi", "--allow-capabilities"), ("-i", "hi", "--kv", "sqlite:///x.db"),
    ("-i", "hi", "--json", "--json"), ("-i", "hi", "-i", "again"), ("-i", "hi", "--", "app.yaml"), ("-ihi",),
    ("-i", "-starts-with-a-dash"), ("-i", "hi", "--session"), ("-i", "hi", "second.yaml"), ("-i", "hi", "--jsn"),
])
def test_anything_the_fast_path_does_not_take_runs_the_normal_way(cli: Cli, args: tuple[str, ...]) -> None:
    cli.normal("run", "app.yaml", "-i", "hi")
    assert fast_run.parse(["run", "app.yaml", *args]) is None
    cli.normal("run", "app.yaml", *args)


def test_parse_takes_only_plain_spellings() -> None:
    assert fast_run.parse(["run", "a.yaml", "-i", "x"]) == fast_run.Request("a.yaml", "x", False, None)
    assert fast_run.parse(["run", "--json", "--input=", "--session", "s"]) == fast_run.Request("app.yaml", "", True,
                                                                                               "s")
    for argv in (["run"], ["run", "a.yaml"], ["plan", "a.yaml", "-i", "x"], [], ["run", "-i", "x", "-i", "y"],
                 ["run", "-i", "x", "--session=s", "--session", "t"], ["run", "-i=x"], ["--version"]):
        assert fast_run.parse(argv) is None, argv


def test_the_chat_loop_and_other_commands_are_never_taken(cli: Cli) -> None:
    cli.normal("run", "app.yaml", "-i", "hi")
    assert cli.normal("run", "app.yaml", stdin="one\nexit\n").returncode == 0
    assert cli.normal("plan", "app.yaml", "--json").returncode == 0


def test_a_changed_app_file_is_planned_again(cli: Cli) -> None:
    cli.normal("run", "app.yaml", "-i", "hi")
    cli.fast("run", "app.yaml", "-i", "hi")
    (cli.folder / "app.yaml").write_text(app_text(prompt="Something else."))
    cli.normal("run", "app.yaml", "-i", "hi")
    assert '"prompt": "Something else."' in entry_of(cli).read_text()
    cli.fast("run", "app.yaml", "-i", "hi")
    broken = app_text().replace("entry: echo_agent", "entry: nobody")
    (cli.folder / "app.yaml").write_text(broken)
    done = cli.normal("run", "app.yaml", "-i", "hi")
    assert done.returncode != 0 and "nobody" in done.stderr


def test_the_app_argument_as_typed_and_the_working_folder_are_part_of_the_key(cli: Cli) -> None:
    cli.normal("run", "app.yaml", "-i", "hi")
    cli.normal("run", "./app.yaml", "-i", "hi")  # `source` and `where` quote it as typed
    cli.fast("run", "./app.yaml", "-i", "hi")
    (cli.folder / "sub").mkdir()
    done, seen = Cli(cli.folder / "sub")("run", "../app.yaml", "-i", "hi")
    assert seen["normal"] and done.returncode == 0


def test_a_lock_file_or_a_user_config_appearing_is_planned_again(cli: Cli) -> None:
    cli.normal("run", "app.yaml", "-i", "hi")
    (cli.folder / "app.lock").write_text("")
    cli.normal("run", "app.yaml", "-i", "hi")
    cli.fast("run", "app.yaml", "-i", "hi")
    (cli.folder / "config").mkdir(exist_ok=True)
    (cli.folder / "config" / "config.yaml").write_text("registries: []\n")
    cli.normal("run", "app.yaml", "-i", "hi")
    cli.fast("run", "app.yaml", "-i", "hi")


def test_a_changed_environment_variable_is_planned_again(cli: Cli) -> None:
    (cli.folder / "app.yaml").write_text(app_text(extra=", note: '${FAST_X:-unset}'"))
    cli.normal("run", "app.yaml", "-i", "hi")
    assert '"note": "unset"' in entry_of(cli).read_text()
    cli.fast("run", "app.yaml", "-i", "hi")
    cli.normal("run", "app.yaml", "-i", "hi", env={"FAST_X": "one"})
    cli.fast("run", "app.yaml", "-i", "hi", env={"FAST_X": "one"})
    assert '"note": "one"' in entry_of(cli).read_text()
    cli.normal("run", "app.yaml", "-i", "hi", env={"FAST_X": ""})  # set but empty is not unset
    cli.normal("run", "app.yaml", "-i", "hi")


def test_a_rebuilt_module_is_hashed_again(cli: Cli) -> None:
    local = cli.folder / "tool.wasm"
    shutil.copy(conformance_wasm("zig"), local)
    (cli.folder / "app.yaml").write_text(app_text().replace(str(conformance_wasm("zig")), "tool.wasm"))
    cli.normal("run", "app.yaml", "-i", "hi")
    cli.fast("run", "app.yaml", "-i", "hi")
    shutil.copy(conformance_wasm("c"), local)  # another module under the same name: a new digest
    done = cli.normal("run", "app.yaml", "-i", "hi")
    digest = "sha256:" + hashlib.sha256(local.read_bytes()).hexdigest()
    assert digest in entry_of(cli).read_text()
    assert done.returncode == cli.fast("run", "app.yaml", "-i", "hi").returncode
    local.unlink()
    missing = cli.normal("run", "app.yaml", "-i", "hi")
    assert missing.returncode != 0 and "tool.wasm" in missing.stderr


def test_a_removed_granted_folder_is_planned_again(cli: Cli) -> None:
    (cli.folder / "docs").mkdir()
    granted = app_text().replace("grant: {kv: true}", "grant: {kv: true, paths: {docs: /docs}}")
    (cli.folder / "app.yaml").write_text(granted)
    cli.normal("run", "app.yaml", "-i", "hi")
    cli.fast("run", "app.yaml", "-i", "hi")
    (cli.folder / "docs").rmdir()
    done = cli.normal("run", "app.yaml", "-i", "hi")
    assert done.returncode != 0 and "not a directory" in done.stderr


def test_a_cold_compile_cache_runs_the_normal_way(cli: Cli, tmp_path: Path) -> None:
    cli.normal("run", "app.yaml", "-i", "hi")
    plans = entry_of(cli)
    fresh = {"CSPM_CACHE_DIR": str(tmp_path / "cold-cache")}
    (tmp_path / "cold-cache" / "plans").mkdir(parents=True, mode=0o700)
    shutil.copy(plans, tmp_path / "cold-cache" / "plans" / plans.name)  # a plan, but nothing compiled
    cli.normal("run", "app.yaml", "-i", "hi", env=fresh)
    cli.fast("run", "app.yaml", "-i", "hi", env=fresh)


def redigest(entry: dict[str, Any]) -> None:
    entry["plan_digest"] = hashlib.sha256(json.dumps(entry["plan"], sort_keys=True).encode()).hexdigest()


def widen_hosts(e: dict[str, Any]) -> None:  # the stored digest no longer matches
    e["plan"]["components"]["echo_tool"]["grant"]["hosts"].append("evil.example")


def unknown_entry(e: dict[str, Any]) -> None:  # digest fixed, but plan.json's checks fail
    e["plan"]["entry"] = "nobody"
    redigest(e)


def no_grant(e: dict[str, Any]) -> None:
    e["plan"]["components"]["echo_tool"]["grant"] = {}
    redigest(e)


def published(e: dict[str, Any]) -> None:  # a published app's plan is never kept: its approvals
    e["plan"]["app"]["origin"] = {"name": "a/b", "version": "1.0.0", "registry": "r", "registry_url": "https://r"}
    redigest(e)


@pytest.mark.parametrize("tamper", [
    widen_hosts, unknown_entry, no_grant, published,
    lambda e: e.__setitem__("key", "0" * 64), lambda e: e.__setitem__("format", 99),
    lambda e: e.__setitem__("modules", {}), lambda e: e.pop("env_digest"),
])
def test_a_tampered_entry_is_ignored_and_replaced(cli: Cli, tamper: Callable[[dict[str, Any]], object]) -> None:
    first = cli.normal("run", "app.yaml", "-i", "hi")
    path = entry_of(cli)
    entry = json.loads(path.read_text())
    tamper(entry)
    path.write_text(json.dumps(entry))
    same(cli.normal("run", "app.yaml", "-i", "hi"), first)  # planned again, and kept again
    assert "evil.example" not in path.read_text()
    cli.fast("run", "app.yaml", "-i", "hi")


@pytest.mark.parametrize("damage", ["garbage", "empty", "huge", "group-writable", "symlink", "folder-writable"])
def test_a_damaged_or_foreign_entry_is_not_read(cli: Cli, damage: str) -> None:
    first = cli.normal("run", "app.yaml", "-i", "hi")
    path = entry_of(cli)
    if damage == "garbage":
        path.write_bytes(b"\xff{not json")
    elif damage == "empty":
        path.write_bytes(b"")
    elif damage == "huge":
        path.write_bytes(b" " * (4 * 2**20 + 1))
    elif damage == "group-writable":
        path.chmod(0o620)
    elif damage == "symlink":
        target = cli.folder / "elsewhere.json"
        target.write_bytes(path.read_bytes())
        path.unlink()
        path.symlink_to(target)
    else:
        path.parent.chmod(0o777)
    try:
        same(cli.normal("run", "app.yaml", "-i", "hi"), first)
    finally:
        path.parent.chmod(0o700)


def test_published_apps_and_registry_references_are_not_kept(tmp_path: Path) -> None:
    from cspm import plan_cache
    from cspm.formats import app as app_format

    (tmp_path / "app.yaml").write_text(app_text())
    local = app_format.load(tmp_path / "app.yaml")
    assert plan_cache.cacheable(local)
    local.components["echo_tool"].digest = "sha256:" + "a" * 64  # bound to a stored module: locked
    assert not plan_cache.cacheable(local)


def test_plain_text_is_written_as_rich_writes_it() -> None:
    from rich.console import Console

    from cspm.cli import output, plainout

    samples = ["hi", "", "a\nb\n", "tab\tstop", ":smile: :no_such:", "trailing  ", "wide 漢字 ✓", "\x1b[2J",
               "\r\nline", "\u202etxt", "\x9b31m", "[bold]not markup[/]", "x" * 500, "ends with colon:"]
    for text in samples:
        for end in ("\n", ""):
            expected = io.StringIO()
            Console(file=expected, highlight=False, soft_wrap=True).print(output.plain(text), end=end, markup=False)
            got = io.StringIO()
            sys_stdout, sys.stdout = sys.stdout, got
            try:
                plainout.answer(text, end=end)
            finally:
                sys.stdout = sys_stdout
            assert got.getvalue() == expected.getvalue(), (text, end)  # rich itself, or the same bytes


def test_a_moved_symlink_on_the_way_to_a_module_is_planned_again(cli: Cli) -> None:
    for name, lang in (("a", "zig"), ("b", "c")):
        (cli.folder / name).mkdir()
        shutil.copy(conformance_wasm(lang), cli.folder / name / "tool.wasm")
    (cli.folder / "mods").symlink_to("a")
    (cli.folder / "app.yaml").write_text(app_text().replace(str(conformance_wasm("zig")), "mods/tool.wasm"))
    cli.normal("run", "app.yaml", "-i", "hi")
    cli.fast("run", "app.yaml", "-i", "hi")
    (cli.folder / "mods").unlink()
    (cli.folder / "mods").symlink_to("b")  # the files under both names are untouched
    cli.normal("run", "app.yaml", "-i", "hi")
    assert str(cli.folder / "b" / "tool.wasm") in entry_of(cli).read_text()


def test_a_stdout_that_cannot_take_the_answer_fails_the_same_way(cli: Cli) -> None:
    ascii_only = {"PYTHONIOENCODING": "ascii"}
    cli.normal("run", "app.yaml", "-i", "hi")
    fast, seen = cli("run", "app.yaml", "-i", "ünï", env=ascii_only)
    assert not seen["normal"] and fast.returncode != 0  # ran, then rich words the error (typer: the bug path)
    same(fast, cli.normal("run", "app.yaml", "-i", "ünï", "--offline", env=ascii_only))
    same(cli.fast("run", "app.yaml", "-i", "plain", env=ascii_only),
         cli.normal("run", "app.yaml", "-i", "plain", "--offline", env=ascii_only))
