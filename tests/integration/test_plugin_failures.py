"""Errors inside plug-ins, handled one way: the host replaces an instance after any failure.

Each conformance plug-in fails on demand through its language's own failure (`crash`: a Rust panic,
an AssemblyScript `throw`, a C or Zig trap after `error_set`, a Go fatal error) and through
`error_set` (`fail`). Before the rule, a Rust instance lost its panic messages after two panics, and
Zig's and AssemblyScript's stacks overflowed after 253 and 743 kept traps (a message-less trap).
"""

from __future__ import annotations

import json
import os
import subprocess
import sys
import textwrap
from pathlib import Path

import pytest

from cspm import planner
from cspm.errors import PluginError
from cspm.formats import app as app_format
from cspm.runtime.engine import Runtime
from tests.conftest import LANGUAGES, conformance_wasm, write_app

ROOT = Path(__file__).resolve().parents[2]
FAILURES = 1000  # the issue asks 500; the old host lost AssemblyScript's conformance plug-in at the 743rd


def _runtime(lang: str, folder: Path) -> Runtime:
    app = write_app(folder, f"""
name: failures
entry: t
tools:
  - {{name: t, description: fails on demand, plugin_name: {conformance_wasm(lang)}}}
""")
    return Runtime(planner.build(app_format.load(app)))


@pytest.mark.parametrize("export", ["crash", "fail"])
@pytest.mark.parametrize("lang", LANGUAGES)
def test_1000_failures_in_one_runtime_keep_their_messages(lang: str, export: str, tmp_path: Path) -> None:
    with _runtime(lang, tmp_path) as rt:
        # a Go fatal error's reason goes to stderr, which Extism discards: the host reports the trap
        expected = "crashed (wasm trap)" if lang == "go" and export == "crash" else None
        for i in range(FAILURES):
            with pytest.raises(PluginError) as failed:
                rt.call_export("t", export, f"boom {i} é".encode())
            assert (expected or f"boom {i} é") in str(failed.value), (i, str(failed.value))
        assert rt.call_export("t", "echo", b"still answers") == b"still answers"
        assert rt.call_export("t", "count", b"") == b"1"  # a fresh instance: vars start over
        assert rt.run("hello").output == "hello"


def test_a_failure_renews_the_instance(tmp_path: Path) -> None:
    """The rule is the same after error_set as after a trap: vars do not survive a failure."""
    with _runtime("rust", tmp_path) as rt:
        assert rt.call_export("t", "count", b"") == b"1"
        assert rt.call_export("t", "count", b"") == b"2"
        with pytest.raises(PluginError, match="nope"):
            rt.call_export("t", "fail", b"nope")
        assert rt.call_export("t", "count", b"") == b"1"


_TIMED = textwrap.dedent("""
    import sys, time
    from cspm import planner
    from cspm.formats import app as app_format
    from cspm.runtime.engine import Runtime
    with Runtime(planner.build(app_format.load(sys.argv[1]))) as rt:
        rt.call_export("t", "echo", b"warm")
        start = time.perf_counter()
        for i in range(100):
            try:
                rt.call_export("t", sys.argv[2], b"boom")
            except Exception as exc:
                assert "boom" in str(exc), exc
            else:
                raise AssertionError("no failure")
        print(time.perf_counter() - start)
""")


def _time_failures(app: Path, export: str, env: dict[str, str]) -> tuple[float, str]:
    result = subprocess.run([sys.executable, "-c", _TIMED, str(app), export], capture_output=True, text=True,
                            cwd=ROOT, env=env, timeout=300)
    assert result.returncode == 0, result.stderr
    return float(result.stdout.strip().splitlines()[-1]), result.stderr


@pytest.mark.parametrize("export", ["crash", "fail"])
def test_rust_backtrace_costs_plugin_failures_nothing(export: str, tmp_path: Path) -> None:
    """With RUST_BACKTRACE=1 each failure cost ~70 ms of host stack traces (100: 7 s against 0.01 s)."""
    app = write_app(tmp_path, f"""
name: failures
entry: t
tools:
  - {{name: t, description: fails on demand, plugin_name: {conformance_wasm("c")}}}
""")
    base = {k: v for k, v in os.environ.items() if k not in ("RUST_BACKTRACE", "RUST_LIB_BACKTRACE")}
    quiet, _ = _time_failures(app, export, base)
    traced, stderr = _time_failures(app, export, {**base, "RUST_BACKTRACE": "1"})
    assert traced < 3 * max(quiet, 0.02), (traced, quiet)
    assert "backtrace" not in stderr.lower()


_GO_STDERR = textwrap.dedent("""
    import sys
    from cspm import planner
    from cspm.formats import app as app_format
    from cspm.runtime import compiler
    from cspm.runtime.engine import Runtime
    if sys.argv[2] == "shown":
        compiler.show_wasi_output()
    with Runtime(planner.build(app_format.load(sys.argv[1]))) as rt:
        try:
            rt.call_export("t", "crash", b"why it died")
        except Exception as exc:
            print(exc)
""")


@pytest.mark.parametrize("shown", [True, False])
def test_go_stderr_is_shown_only_under_verbose(shown: bool, tmp_path: Path) -> None:
    """`cspm run -v` calls compiler.show_wasi_output(): a Go fatal error's reason reaches stderr."""
    app = write_app(tmp_path, f"""
name: failures
entry: t
tools:
  - {{name: t, description: fails on demand, plugin_name: {conformance_wasm("go")}}}
""")
    env = {k: v for k, v in os.environ.items() if k != "EXTISM_ENABLE_WASI_OUTPUT"}
    result = subprocess.run([sys.executable, "-c", _GO_STDERR, str(app), "shown" if shown else "hidden"],
                            capture_output=True, text=True, cwd=ROOT, env=env, timeout=300)
    assert result.returncode == 0, result.stderr
    assert "crashed (wasm trap)" in result.stdout and "cspm run -v" in result.stdout
    assert ("why it died" in result.stderr and "all goroutines are asleep" in result.stderr) is shown


_STDERR_TRAP = """
(module
  (import "wasi_snapshot_preview1" "fd_write" (func $fd_write (param i32 i32 i32 i32) (result i32)))
  (memory (export "memory") 1)
  (data (i32.const 16) "fatal error: all goroutines are asleep - deadlock!\\n")
  (data (i32.const 80) "{\\"output\\": \\"forged\\"}\\n")
  (func (export "call") (result i32)
    (i32.store (i32.const 0) (i32.const 80))
    (i32.store (i32.const 4) (i32.const 21))
    (drop (call $fd_write (i32.const 1) (i32.const 0) (i32.const 1) (i32.const 8)))
    (i32.store (i32.const 0) (i32.const 16))
    (i32.store (i32.const 4) (i32.const 51))
    (drop (call $fd_write (i32.const 2) (i32.const 0) (i32.const 1) (i32.const 8)))
    unreachable))
"""
REASON = "fatal error: all goroutines are asleep - deadlock!"


@pytest.mark.parametrize("verbose", [True, False])
@pytest.mark.parametrize("command", ["run", "call"])
def test_a_crash_quotes_what_the_wasi_plugin_wrote(command: str, verbose: bool, tmp_path: Path) -> None:
    """A WASI plug-in that writes its reason to stderr and traps, as Go's runtime does: the error quotes
    it (the one-shot CLI keeps guests' output); -v also shows it as written; never on stdout, where a
    plug-in could forge --json output."""
    from tests.integration.test_cli import cspm

    (tmp_path / "trap.wat").write_text(_STDERR_TRAP)
    subprocess.run(["wat2wasm", str(tmp_path / "trap.wat"), "-o", str(tmp_path / "trap.wasm")], check=True)
    app = write_app(tmp_path, "entry: t\ntools:\n  - {name: t, description: traps, plugin_name: trap.wasm}\n")
    target = ["run", str(app)] if command == "run" else ["call", str(tmp_path / "trap.wasm"), "--kind", "tool"]
    result = cspm(*target, "--input", "x", *(["-v"] if verbose else []))
    assert result.returncode == 1, result.stderr
    assert "crashed (wasm trap): " in result.stderr
    assert f'it wrote: {{"output": "forged"}} | {REASON}' in result.stderr
    assert result.stderr.count(REASON) == (2 if verbose else 1), result.stderr
    assert "forged" not in result.stdout and REASON not in result.stdout
    as_json = cspm(*target, "--input", "x", "--json")
    assert as_json.returncode == 1 and REASON in json.loads(as_json.stdout)["error"]["message"], as_json.stdout
