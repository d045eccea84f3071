"""`cspm run` as users run it: a subprocess, real plug-ins, exit codes, never a traceback."""

from __future__ import annotations

import json
import os
import subprocess
import sys
from pathlib import Path

import pytest

from tests.conftest import ROOT, conformance_wasm, write_app


def cspm(*args: str, stdin: str | None = None, cwd: Path = ROOT, env: dict | None = None
         ) -> subprocess.CompletedProcess[str]:
    result = subprocess.run([sys.executable, "-m", "cspm.cli.main", *args], input=stdin, capture_output=True,
                            text=True, cwd=cwd, env={**os.environ, **(env or {})}, timeout=120)
    assert "Traceback" not in result.stderr, result.stderr
    return result


@pytest.fixture(scope="module", autouse=True)
def built() -> None:
    for lang in ("rust", "c", "zig"):
        conformance_wasm(lang)


def test_example_app_one_shot_json_with_trace() -> None:
    result = cspm("run", "examples/hello-conformance.yaml", "--input", "hi", "--json", "--trace")
    assert result.returncode == 0, result.stderr
    data = json.loads(result.stdout)
    assert data["output"] == "hi" and data["finish_reason"] == "final_answer" and data["entry"] == "echo_agent"
    assert data["trace"]["name"] == "echo_agent" and data["trace"]["children"][0]["name"] == "echo_tool"


def test_interactive_loop_keeps_one_session() -> None:
    result = cspm("run", "examples/hello-conformance.yaml", stdin="one\n\ntwo\nexit\nnot read\n")
    assert result.returncode == 0, result.stderr
    assert result.stdout.count("You > ") == 4
    assert "echo_agent > one" in result.stdout and "echo_agent > two" in result.stdout
    assert "not read" not in result.stdout and "session" in result.stderr


def test_trace_tree_and_session_flag() -> None:
    result = cspm("run", "examples/hello-conformance.yaml", "-i", "x", "--trace", "--session", "abc")
    assert result.returncode == 0 and result.stdout.strip() == "x"
    assert "echo_agent" in result.stderr and "└── echo_tool tool" in result.stderr
    data = json.loads(cspm("run", "examples/hello-conformance.yaml", "-i", "x", "--json", "--session", "abc").stdout)
    assert data["session"] == "abc"


@pytest.mark.parametrize("text, expect", [
    ("entry: a\nagents: [", "not valid YAML"),
    ("entry: a\nagents:\n  - {name: a, plugin_name: x.wasm, tools: [ghost]}\n", "'ghost' is not a tool of this app"),
])
def test_config_errors(tmp_path: Path, text: str, expect: str) -> None:
    result = cspm("run", str(write_app(tmp_path, text)), "-i", "x")
    assert result.returncode == 2 and expect in result.stderr and "error:" in result.stderr


def test_missing_file_and_json_errors(tmp_path: Path) -> None:
    result = cspm("run", str(tmp_path / "nope.yaml"), "-i", "x")
    assert result.returncode == 2 and "no such file" in result.stderr
    result = cspm("run", str(tmp_path / "nope.yaml"), "-i", "x", "--json")
    assert result.returncode == 2 and "no such file" in json.loads(result.stdout)["error"]["message"]


def test_plugin_errors_exit_nonzero(tmp_path: Path, wat_dir: Path) -> None:
    for wasm, grant, expect in [
        (wat_dir / "nocall.wasm", "{}", "does not export a function `call`"),
        (wat_dir / "spin.wasm", "{timeout_ms: 100}", "timed out after 100 ms"),
        (wat_dir / "hog.wasm", "{memory_pages: 16}", "ran out of memory"),
    ]:
        app = write_app(tmp_path, f"entry: t\ntools:\n  - {{name: t, plugin_name: {wasm}, grant: {grant}}}\n")
        result = cspm("run", str(app), "-i", "x")
        assert result.returncode == 1 and expect in result.stderr, result.stderr


def test_http_to_ungranted_host_fails_clearly(tmp_path: Path) -> None:
    app = write_app(tmp_path, f"entry: t\ntools:\n  - {{name: t, plugin_name: {conformance_wasm('c')}}}\n")
    result = cspm("run", str(app), "-i", "http://example.com/", "--json")
    assert result.returncode == 1
    data = json.loads(result.stdout)
    assert data["finish_reason"] == "error" and "host example.com is not granted" in data["output"]


def test_verbose_shows_plugin_logs(tmp_path: Path, wat_dir: Path) -> None:
    app = write_app(tmp_path, f"entry: t\ntools:\n  - {{name: t, plugin_name: {wat_dir / 'logger.wasm'}}}\n")
    quiet = cspm("run", str(app), "-i", "x")
    loud = cspm("run", str(app), "-i", "x", "-v")
    assert "[t] info:" in loud.stderr and "[t] info:" not in quiet.stderr
    assert loud.returncode == 1 and "invalid JSON" in loud.stderr
