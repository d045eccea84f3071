"""Hostile app.yaml files and misbehaving plug-ins through `cspm run`: each stops fast with its exact
message and exit code, and the project folder is left as it was (no lock, nothing else)."""

from __future__ import annotations

from pathlib import Path

import pytest

from tests.conftest import conformance_wasm
from tests.hostile.conftest import Snapshot, refused
from tests.integration.test_cli import cspm

C = "{c}"  # the C conformance plug-in, filled in per test

BILLION_LAUGHS = 'a: &a ["lol","lol","lol","lol","lol","lol","lol","lol","lol"]\n' + "".join(
    f"{chr(98 + i)}: &{chr(98 + i)} [{','.join([f'*{chr(97 + i)}'] * 9)}]\n" for i in range(9)) + \
    "entry: t\ntools: *j\n"
MERGE_BOMB = "x0: &x0 {k: v}\n" + "".join(
    f"x{i}: &x{i} [{', '.join([f'*x{i - 1}'] * 10)}]\n" for i in range(1, 8)) + "entry: t\n"

APP_CASES = [
    ("not-yaml", "entry: a\nagents: [", 2, "not valid YAML"),
    ("billion-laughs", BILLION_LAUGHS, 2, "document expands to more than 200000 nodes (an alias bomb?)"),
    ("alias-bomb-in-mappings", MERGE_BOMB, 2, "document expands to more than 200000 nodes (an alias bomb?)"),
    ("deep-flow-nesting", "entry: t\ntools: " + "[" * 50_000 + "]" * 50_000 + "\n", 2,
     "app.yaml:2: nested deeper than 100 levels"),
    ("deep-block-nesting", "entry: t\ntools:\n" + "".join("  " * i + "-\n" for i in range(1, 400)), 2,
     "nested deeper than 100 levels"),
    ("ten-mb-string", "entry: t\ntools:\n  - {name: t, description: '" + "a" * 10_000_000 + "'}\n", 2,
     "app.yaml: file is 10000047 bytes, over the 4 MiB limit"),
    ("unknown-entry", f"entry: nobody\ntools:\n  - {{name: t, description: d, plugin_name: {C}}}\n", 2,
     "app.yaml:1: entry: 'nobody' is not defined"),
    ("unknown-tool", f"entry: a\nagents:\n  - {{name: a, description: d, plugin_name: {C}, tools: [ghost]}}\n", 2,
     "agents[0].tools[0]: 'ghost' is not a tool of this app"),
    ("unknown-sub-agent", f"entry: a\nagents:\n  - {{name: a, description: d, plugin_name: {C}, agents: [ghost]}}\n",
     2, "agents[0].agents[0]: 'ghost' is not an agent of this app"),
    ("lookalike-plugin-name", "entry: t\ntools:\n  - {name: t, description: d, plugin: \"te\u0455t/echo@1\"}\n", 2,
     "package name 'te\u0455t/echo' is not allowed"),
    ("binary-not-utf8", "entry: t\n\udcff\n", 2, "not UTF-8"),
]


@pytest.mark.parametrize("text, code, expect", [c[1:] for c in APP_CASES], ids=[c[0] for c in APP_CASES])
def test_hostile_app_files_fail_fast(tmp_path: Path, text: str, code: int, expect: str) -> None:
    app = tmp_path / "proj" / "app.yaml"
    app.parent.mkdir()
    app.write_bytes(text.replace(C, str(conformance_wasm("c"))).encode("utf-8", "surrogateescape"))
    snap = Snapshot(tmp_path)
    refused("run", str(app), "-i", "x", code=code, expect=expect)
    snap.assert_unchanged()


AGENT = "{{name: {name}, description: d, plugin_name: {wasm}, config: {{kind: agent}}, agents: [{to}]}}"
PLUGIN_CASES = [
    ("loops-forever", "entry: t\ntools:\n  - {name: t, description: d, plugin_name: spin.wasm, "
                      "grant: {timeout_ms: 300}}\n", "x", "tool `t` timed out after 300 ms"),
    ("exhausts-memory", "entry: t\ntools:\n  - {name: t, description: d, plugin_name: hog.wasm, "
                        "grant: {memory_pages: 16}}\n", "x", "ran out of memory (limit 16 pages = 1024 KiB)"),
    ("invalid-json", "entry: t\ntools:\n  - {name: t, description: d, plugin_name: badjson.wasm}\n", "x",
     "tool `t` returned invalid JSON: b'{\"output\": \"unterminated'"),
    ("empty-output", "entry: t\ntools:\n  - {name: t, description: d, plugin_name: logger.wasm}\n", "[/] [bold]",
     "tool `t` returned invalid JSON: b''"),
    ("http-to-ungranted-host", "entry: t\ntools:\n  - {name: t, description: d, plugin_name: C, "
                               "grant: {hosts: [api.example.com]}}\n", "http://169.254.169.254/latest/meta-data",
     "host 169.254.169.254 is not granted to this plug-in over http (granted: https://api.example.com)"),
    ("recurses-into-itself", "entry: a\nagents:\n  - " + AGENT.format(name="a", wasm="C", to="a") + "\n", "x",
     "call cycle: a -> a"),
    ("mutual-recursion", "entry: a\nagents:\n  - " + AGENT.format(name="a", wasm="C", to="b") + "\n  - "
     + AGENT.format(name="b", wasm="C", to="a") + "\n", "x", "call cycle: a -> b -> a"),
]


@pytest.mark.parametrize("text, given, expect", [c[1:] for c in PLUGIN_CASES], ids=[c[0] for c in PLUGIN_CASES])
def test_misbehaving_plugins_are_stopped(tmp_path: Path, wat_modules: dict[str, bytes], text: str, given: str,
                                         expect: str) -> None:
    project = tmp_path / "proj"  # the compile cache may fill: these modules are valid, they misbehave
    project.mkdir()
    for name in ("spin", "hog", "badjson", "logger"):
        (project / f"{name}.wasm").write_bytes(wat_modules[name])
    app = project / "app.yaml"
    app.write_text(text.replace("plugin_name: C", f"plugin_name: {conformance_wasm('c')}"))
    snap = Snapshot(project)
    result = cspm("run", str(app), "-i", given, "-v")
    assert result.returncode == 1, result.stdout + result.stderr
    assert expect in result.stdout + result.stderr, result.stdout + result.stderr
    assert "internal error" not in result.stderr
    snap.assert_unchanged()


def test_a_log_flood_is_bounded_and_said(tmp_path: Path, wat_modules: dict[str, bytes]) -> None:
    """20,000 lines logged: 2,000 shown, then how many were dropped; the answer still arrives."""
    (tmp_path / "flood.wasm").write_bytes(wat_modules["flood"])
    app = tmp_path / "app.yaml"
    app.write_text("entry: t\ntools:\n  - {name: t, description: d, plugin_name: flood.wasm}\n")
    result = cspm("run", str(app), "-i", "x", "-v")
    assert result.returncode == 0 and result.stdout.strip() == "flooded", result.stderr[-500:]
    lines = result.stderr.splitlines()
    assert len(lines) == 2001
    assert lines[-1] == "[t] 18000 more log lines dropped (at most 2000 lines and 1024 KiB are kept per plug-in)"
