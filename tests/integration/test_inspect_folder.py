"""`cspm inspect FOLDER` (issue 17): plugin.yaml and the built module checked together — the declared
wasm exists, the module is a plug-in of its kind, capabilities fit what it imports and needs, and
declared config keys appear in it (what it reads without declaring cannot be known from its bytes)."""

from __future__ import annotations

import json
import shutil
from pathlib import Path

import pytest

from tests.conftest import PLUGINS, conformance_wasm, plugin_wasm
from tests.integration.test_cli import cspm


def folder(tmp_path: Path, wasm: Path | None, extra: str = "", kind: str = "tool") -> Path:
    root = tmp_path / "p"
    (root / "build").mkdir(parents=True)
    if wasm is not None:
        shutil.copy(wasm, root / "build" / "m.wasm")
    (root / "plugin.yaml").write_text(f"name: test/p\nversion: 1.0.0\nkind: {kind}\nabi: 1\nwasm: build/m.wasm\n"
                                      f"{extra}")
    return root


def findings(path: Path) -> tuple[int, list[dict]]:
    result = cspm("inspect", str(path), "--json")
    return result.returncode, json.loads(result.stdout)["findings"]


def test_a_bundled_plugin_folder_is_ok() -> None:
    plugin_wasm("calculator")
    result = cspm("inspect", str(PLUGINS / "calculator"))
    assert result.returncode == 0, result.stderr
    assert "chainsocket/calculator 1.0.0 (tool)" in result.stdout and "exports  call" in result.stdout
    data = json.loads(cspm("inspect", str(PLUGINS / "calculator" / "plugin.yaml"), "--json").stdout)
    assert data["ok"] and data["kind"] == "tool" and data["module"]["exports"] == ["call"]


def test_the_declared_wasm_must_exist(tmp_path: Path) -> None:
    code, found = findings(folder(tmp_path, None))
    assert code == 1 and found[0]["level"] == "error" and "build/m.wasm does not exist" in found[0]["message"]


def test_a_module_without_call_is_an_error(tmp_path: Path, wat_dir: Path) -> None:
    code, found = findings(folder(tmp_path, wat_dir / "nocall.wasm"))
    assert code == 1 and "does not export a function `call`" in found[0]["message"]


def test_declared_config_keys_the_module_never_mentions(tmp_path: Path) -> None:
    extra = "config:\n  kind: {type: string}\n  greeting_style: {type: string, description: never read}\n"
    code, found = findings(folder(tmp_path, conformance_wasm("rust"), extra))
    assert code == 0
    warnings = [f["message"] for f in found if f["level"] == "warning"]
    assert warnings == ["config key `greeting_style` is declared, but the string appears nowhere in the module: "
                        "it is probably never read"]


@pytest.mark.parametrize("lang", ["assemblyscript", "go"])
def test_config_keys_are_found_in_every_language(tmp_path: Path, lang: str) -> None:
    code, found = findings(folder(tmp_path, conformance_wasm(lang), "config:\n  kind: {type: string}\n"))
    assert code == 0 and all(f["level"] == "ok" for f in found), found


def test_config_declared_but_never_read_and_unused_capabilities(tmp_path: Path) -> None:
    extra = "config: {unit: {type: string}}\ncapabilities: {kv: true, hosts: [example.com]}\n"
    code, found = findings(folder(tmp_path, plugin_wasm("calculator"), extra))
    messages = " | ".join(f["message"] for f in found if f["level"] == "warning")
    assert code == 0 and "never reads config" in messages and "imports neither kv_get nor kv_set" in messages
    assert "does not import http_fetch" in messages


def test_memory_the_capabilities_do_not_grant(tmp_path: Path) -> None:
    code, found = findings(folder(tmp_path, plugin_wasm("calculator"), "capabilities: {memory_pages: 4}\n"))
    assert code == 1 and any("needs 17 memory pages at start" in f["message"] for f in found)
    result = cspm("inspect", str(tmp_path / "p"))
    assert result.returncode == 1 and "error" in result.stdout and "Traceback" not in result.stderr
