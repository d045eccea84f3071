"""`cspm add` as a newcomer uses it (issue 16, item 10): it starts an app from nothing, refuses a
second copy of a plug-in unless asked, binds the secrets and grants the manifest declares, and wires
a new llm or tool into an agent only when told (`--into`, or yes to the question at a terminal)."""

from __future__ import annotations

import json
import os
import pty
import select
import shutil
import subprocess
import sys
import time
from pathlib import Path

import pytest

from cspm.formats import app as app_format
from cspm.formats import app_edit
from tests.conftest import ROOT, conformance_wasm
from tests.integration.test_cli import cspm

KIND = "config: {{kind: {{type: string, default: {kind}}}}}\n"


@pytest.fixture(autouse=True)
def own_config_and_cache(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setenv("CSPM_CONFIG_DIR", str(tmp_path / "config"))
    monkeypatch.setenv("CSPM_CACHE_DIR", str(tmp_path / "cache"))


def source(root: Path, name: str, kind: str, lang: str, extra: str = "") -> None:
    folder = root / name.split("/")[1]
    folder.mkdir(parents=True)
    shutil.copy(conformance_wasm(lang), folder / "m.wasm")
    (folder / "plugin.yaml").write_text(f"name: {name}\nversion: 1.0.0\nkind: {kind}\nabi: 1\nwasm: m.wasm\n"
                                        f"description: {name}\n{KIND.format(kind=kind)}{extra}")


@pytest.fixture
def registry(tmp_path: Path) -> Path:
    root = tmp_path / "src"
    source(root, "test/boss", "agent", "rust")
    source(root, "test/echo", "tool", "c")
    source(root, "test/keyed", "llm", "zig", "capabilities: {hosts: [api.acme.test]}\n"
           "secrets:\n  api_key: {required: false, env: ACME_API_KEY, hosts: [api.acme.test, 'http://127.0.0.1:9']}\n"
           "  optional: {required: false}\n")
    source(root, "test/legacy", "tool", "c", "secrets: {token: {required: true}}\n")
    out = tmp_path / "registry"
    result = cspm("index", "build", str(root), "--out", str(out), "--name", "local")
    assert result.returncode == 0, result.stderr
    assert cspm("registry", "add", "local", str(out), "--first").returncode == 0
    return out


def add(app: Path, *args: str) -> dict:
    result = cspm("add", *args, "--app", str(app), "--json")
    assert result.returncode == 0, result.stdout + result.stderr
    return json.loads(result.stdout)["added"]


@pytest.mark.parametrize("start", [None, "", "# my first app\n", "name: first\n", "name: first\nentry:\n"])
def test_add_starts_an_app_from_nothing_and_the_first_component_is_its_entry(
        tmp_path: Path, registry: Path, start: str | None) -> None:
    app = tmp_path / "proj" / "app.yaml"
    app.parent.mkdir()
    if start is not None:
        app.write_text(start)
    assert add(app, "test/boss")["entry"] is True
    text = app.read_text()
    assert "entry: boss\n" in text and text.startswith((start or "").replace("entry:\n", ""))
    assert add(app, "test/echo", "--into", "boss") == {
        "requirement": "test/echo@^1.0.0", "kind": "tool", "component": "echo", "secrets": [], "grant": [],
        "into": "boss", "entry": False}
    loaded = app_format.load(app)
    assert loaded.entry == "boss" and loaded.components["boss"].tools == ("echo",)
    ran = cspm("run", str(app), "-i", "ahoy", "--json")
    assert ran.returncode == 0, ran.stderr
    assert json.loads(ran.stdout)["output"] == "ahoy"


def test_a_failed_first_add_leaves_nothing_behind(tmp_path: Path, registry: Path) -> None:
    app = tmp_path / "app.yaml"
    result = cspm("add", "test/nothing", "--app", str(app))
    assert result.returncode != 0 and not app.exists() and not app.with_suffix(".lock").exists()
    app.write_text("name: first\n")
    assert cspm("add", "test/nothing", "--app", str(app)).returncode != 0
    assert app.read_text() == "name: first\n"
    result = cspm("add", "test/echo", "--into", "boss", "--app", str(app))
    assert result.returncode == 2 and "no agent 'boss' yet" in result.stderr


def test_a_second_copy_of_a_plugin_is_refused_unless_named(tmp_path: Path, registry: Path) -> None:
    app = tmp_path / "app.yaml"
    add(app, "test/boss")
    add(app, "test/echo", "--as", "search")
    before = app.read_text()
    result = cspm("add", "test/echo", "--app", str(app))
    assert result.returncode != 0 and app.read_text() == before
    assert "already has a tool called 'search' that uses test/echo" in result.stderr
    assert "--as NAME" in result.stderr
    assert add(app, "test/echo", "--as", "search2")["component"] == "search2"
    assert [c.name for c in app_format.load(app).components.values() if c.kind == "tool"] == ["search", "search2"]


def test_add_binds_the_declared_secret_variable_and_grants_its_origins(tmp_path: Path, registry: Path) -> None:
    app = tmp_path / "app.yaml"
    add(app, "test/boss")
    added = add(app, "test/keyed")
    assert added["secrets"] == ["env:ACME_API_KEY"]  # the manifest's variable; `optional` names none: not bound
    assert added["grant"] == ["api.acme.test", "http://127.0.0.1:9"]
    keyed = app_format.load(app, env={"ACME_API_KEY": "k"}).components["keyed"]
    assert [(s.name, s.source) for s in keyed.secrets] == [("api_key", "env:ACME_API_KEY")]
    assert keyed.grant.hosts == ("https://api.acme.test", "http://127.0.0.1:9")
    # a manifest that names no variable for a required secret: the derived name, as before
    assert add(app, "test/legacy")["secrets"] == ["env:LEGACY_TOKEN"]


def test_add_openai_chat_from_the_bundled_registry_binds_its_key_and_grant(tmp_path: Path) -> None:
    app = tmp_path / "app.yaml"
    app.write_text("name: chat\n")
    add(app, "chainsocket/conversational")
    added = add(app, "chainsocket/openai-chat", "--into", "conversational")
    assert added["secrets"] == ["env:OPENAI_API_KEY"] and added["grant"] == ["api.openai.com"]
    assert "secrets: {api_key: 'env:OPENAI_API_KEY'}, grant: {hosts: [api.openai.com]}" in app.read_text()
    serp = add(app, "chainsocket/serpapi-search", "--as", "search")
    assert serp["secrets"] == ["env:SERPAPI_API_KEY"] and serp["grant"] == ["serpapi.com"]  # as the README says
    assert "SERPAPI_SEARCH_API_KEY" not in app.read_text()


def test_without_into_nothing_is_wired_silently(tmp_path: Path, registry: Path) -> None:
    app = tmp_path / "app.yaml"
    add(app, "test/boss")
    result = cspm("add", "test/echo", "--app", str(app))  # no terminal: no question, a hint
    assert result.returncode == 0, result.stderr
    assert app_format.load(app).components["boss"].tools == ()
    assert "agent `boss` cannot call it until it is in its `tools:` list" in result.stderr
    assert "--into boss" in result.stderr
    bad = cspm("add", "test/keyed", "--into", "bos", "--app", str(app))
    assert bad.returncode == 2 and "did you mean 'boss'?" in bad.stderr


def test_at_a_terminal_add_asks_before_wiring_into_the_entry_agent(tmp_path: Path, registry: Path) -> None:
    app = tmp_path / "app.yaml"
    add(app, "test/boss")
    main, child = pty.openpty()
    proc = subprocess.Popen([sys.executable, "-m", "cspm.cli.main", "add", "test/echo", "--app", str(app)],
                            stdin=child, stdout=subprocess.PIPE, stderr=child, cwd=ROOT, env=os.environ.copy())
    os.close(child)
    seen, deadline = b"", time.monotonic() + 60
    while b"Let agent 'boss' use the tool 'echo'?" not in seen and time.monotonic() < deadline:
        if select.select([main], [], [], 1)[0]:
            seen += os.read(main, 4096)
    assert b"Let agent 'boss' use the tool 'echo'?" in seen, seen
    os.write(main, b"y\n")
    assert proc.wait(timeout=60) == 0
    os.close(main)
    assert app_format.load(app).components["boss"].tools == ("echo",)


@pytest.mark.parametrize(("agent", "expected"), [
    ("  - {name: boss, plugin: x/y@1}\n", "  - {name: boss, plugin: x/y@1, tools: [echo]}\n"),
    ("  - {name: boss, plugin: x/y@1, tools: [a]}\n", "  - {name: boss, plugin: x/y@1, tools: [a, echo]}\n"),
    ("  - name: boss\n    plugin: x/y@1\n", "  - name: boss\n    plugin: x/y@1\n    tools: [echo]\n"),
    ("  - name: boss\n    tools:\n      - a\n    plugin: x/y@1\n",
     "  - name: boss\n    tools:\n      - a\n      - echo\n    plugin: x/y@1\n"),
    ("  - name: boss\n    tools: []  # none yet\n", "  - name: boss\n    tools: [echo]  # none yet\n"),
    ("  - name: boss\n    tools:\n", "  - name: boss\n    tools: [echo]\n"),
])
def test_add_reference_keeps_the_layout(agent: str, expected: str) -> None:
    text = f"# keep me\nentry: boss\nagents:\n{agent}# the end\n"
    assert app_edit.add_reference(text, "boss", "tools", "echo", "app.yaml") == \
        f"# keep me\nentry: boss\nagents:\n{expected}# the end\n"
