"""`cspm call` (issue 17): one plug-in run on its own, from a folder, a bare .wasm or a registry, with
`--input` or `--args`; and `--trace` showing the call tree even when the entry itself fails."""

from __future__ import annotations

import json
import shutil
from pathlib import Path

import pytest

from tests.conftest import PLUGINS, conformance_wasm, plugin_wasm, write_app
from tests.integration.test_cli import cspm


@pytest.fixture(scope="module", autouse=True)
def built() -> None:
    plugin_wasm("calculator")
    conformance_wasm("rust")


@pytest.fixture(autouse=True)
def own_config_and_cache(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setenv("CSPM_CONFIG_DIR", str(tmp_path / "config"))
    monkeypatch.setenv("CSPM_CACHE_DIR", str(tmp_path / "cache"))


def test_a_tool_folder_with_arguments_and_with_text() -> None:
    result = cspm("call", str(PLUGINS / "calculator"), "--args", '{"expression": "2 * (3 + 4)"}')
    assert result.returncode == 0 and result.stdout.strip() == "14", result.stderr
    result = cspm("call", str(PLUGINS / "calculator"), "--input", "1+2", "--json")
    data = json.loads(result.stdout)
    assert data["output"] == "3" and data["finish_reason"] == "final_answer" and data["entry"] == "calculator"


def test_arguments_are_checked_against_the_input_schema_before_the_call() -> None:
    result = cspm("call", str(PLUGINS / "calculator"), "--args", '{"expression": 3}')
    assert result.returncode == 2
    assert "bad_request: tool `calculator`: arguments.expression: 3 is not of type 'string'" in result.stderr
    result = cspm("call", str(PLUGINS / "calculator"), "--args", '{}', "--json")
    assert result.returncode == 2 and "'expression' is a required property" in json.loads(result.stdout)["error"][
        "message"]


def test_a_conformance_tool_echoes_its_arguments_and_config_is_checked() -> None:
    folder = PLUGINS / "conformance-rust"
    result = cspm("call", str(folder), "--args", '{"a": [1, "é"]}', "--json")
    assert json.loads(json.loads(result.stdout)["output"]) == {"a": [1, "é"]}
    result = cspm("call", str(folder), "--config", "kind=tool", "--input", "hi")
    assert result.returncode == 0 and result.stdout.strip() == "hi", result.stderr
    result = cspm("call", str(folder), "--kind", "agent", "--input", "q")
    assert result.returncode == 2 and "is a tool plug-in, not an agent" in result.stderr
    result = cspm("call", str(folder), "--config", "knd=llm", "--input", "hi")
    assert result.returncode == 2 and "no config key 'knd'" in result.stderr and "did you mean 'kind'" in result.stderr


def test_a_bare_wasm_needs_its_kind() -> None:
    wasm = str(conformance_wasm("rust"))
    result = cspm("call", wasm, "--input", "hi")
    assert result.returncode == 2 and "--kind" in result.stderr
    result = cspm("call", wasm, "--kind", "llm", "--config", "kind=llm", "--input", "hi")
    assert result.returncode == 0 and result.stdout.strip() == "echo: hi", result.stderr
    result = cspm("call", wasm, "--kind", "agent", "--config", "kind=agent", "--input", "q", "--json")
    assert json.loads(result.stdout)["response"] == {"output": "q", "finish_reason": "final_answer"}


def test_usage_errors() -> None:
    folder = str(PLUGINS / "calculator")
    assert cspm("call", folder).returncode == 2
    assert cspm("call", folder, "--input", "1", "--args", "{}").returncode == 2
    result = cspm("call", folder, "--args", "[1]")
    assert result.returncode == 2 and "JSON object" in result.stderr
    result = cspm("call", str(conformance_wasm("rust")), "--kind", "llm", "--args", "{}")
    assert result.returncode == 2 and "--args is for tools" in result.stderr


def test_a_registry_plugin_is_locked_installed_and_called(tmp_path: Path) -> None:
    root = tmp_path / "src" / "calc"
    shutil.copytree(PLUGINS / "calculator", root, ignore=shutil.ignore_patterns("src", "zig-cache", "*.sh"))
    (root / "plugin.yaml").write_text((root / "plugin.yaml").read_text().replace("chainsocket/", "test/"))
    out = tmp_path / "registry"
    assert cspm("index", "build", str(tmp_path / "src"), "--out", str(out), "--name", "local").returncode == 0
    assert cspm("registry", "add", "local", str(out), "--first").returncode == 0
    result = cspm("call", "test/calculator@^1", "--args", '{"expression": "6 * 7"}', "--json")
    assert result.returncode == 0, result.stdout + result.stderr
    assert json.loads(result.stdout)["output"] == "42"
    result = cspm("call", "test/calculator@^1", "--args", '{"expression": []}')
    assert result.returncode == 2 and "arguments.expression" in result.stderr
    assert not list((tmp_path / "cache" / "call").iterdir())  # the temporary app is gone


def test_trace_is_shown_when_the_entry_itself_fails(tmp_path: Path, wat_dir: Path) -> None:
    app = write_app(tmp_path, f"entry: t\ntools:\n  - {{name: t, plugin_name: {wat_dir / 'hog.wasm'}, "
                              f"grant: {{memory_pages: 16}}}}\n")
    result = cspm("run", str(app), "-i", "x", "--trace")
    assert result.returncode == 1
    assert "t tool" in result.stderr and "ran out of memory" in result.stderr
    assert result.stderr.index("t tool") < result.stderr.index("error:")
    result = cspm("call", str(wat_dir / "hog.wasm"), "--kind", "tool", "--input", "x", "--trace")
    assert result.returncode == 1 and "hog tool" in result.stderr and "error:" in result.stderr
    assert "hog tool" not in cspm("call", str(wat_dir / "hog.wasm"), "--kind", "tool", "--input", "x").stderr


def test_the_chat_loop_shows_the_trace_of_a_failed_answer_and_goes_on(tmp_path: Path, wat_dir: Path) -> None:
    app = write_app(tmp_path, f"entry: t\ntools:\n  - {{name: t, plugin_name: {wat_dir / 'hog.wasm'}, "
                              f"grant: {{memory_pages: 16}}}}\n")
    result = cspm("run", str(app), "--trace", stdin="x\ny\nexit\n")
    assert result.returncode == 0
    assert result.stderr.count("t tool") == 2 and result.stderr.count("ran out of memory") >= 2
