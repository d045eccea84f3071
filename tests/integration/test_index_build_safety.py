"""`cspm index build` never deletes what it did not write (issue 17): a folder that is not a registry is
refused, sources inside --out are refused, an existing registry is added to, a changed version is
refused unless --replace, which says what disappears."""

from __future__ import annotations

import json
from pathlib import Path

from tests.conftest import conformance_wasm
from tests.hostile.conftest import Snapshot, tree
from tests.integration.test_cli import cspm


def plugin(root: Path, name: str, version: str = "1.0.0", lang: str = "c") -> Path:
    folder = root / name.replace("/", "-")
    folder.mkdir(parents=True, exist_ok=True)
    (folder / "m.wasm").write_bytes(conformance_wasm(lang).read_bytes())
    (folder / "plugin.yaml").write_text(f"name: {name}\nversion: {version}\nkind: tool\nabi: 1\nwasm: m.wasm\n"
                                        f"description: a tool\n")
    return folder


def versions(registry: Path, name: str) -> list[str]:
    ns, short = name.split("/")
    return [json.loads(line)["version"] for line in (registry / "index" / ns / short).read_text().splitlines()]


def test_a_folder_that_is_not_a_registry_is_refused_and_left_alone(tmp_path: Path) -> None:
    src = plugin(tmp_path / "src", "acme/a")
    out = tmp_path / "out"
    out.mkdir()
    (out / "notes.txt").write_text("mine")
    snap = Snapshot(out)
    result = cspm("index", "build", str(src), "--out", str(out))
    assert result.returncode != 0 and "is not empty and is not a cspm registry (it holds notes.txt)" in result.stderr
    assert "Traceback" not in result.stderr
    snap.assert_unchanged()


def test_sources_inside_out_are_refused(tmp_path: Path) -> None:
    out = tmp_path / "registry"
    src = plugin(out / "src", "acme/a")
    before = tree(src)
    result = cspm("index", "build", str(src), "--out", str(out))
    assert result.returncode != 0 and "overlap" in result.stderr, result.stderr
    assert tree(src) == before


def test_a_second_plugin_is_added_beside_the_first(tmp_path: Path) -> None:
    out = tmp_path / "registry"
    first, second = plugin(tmp_path / "one", "acme/a"), plugin(tmp_path / "two", "acme/b", lang="zig")
    assert cspm("index", "build", str(first), "--out", str(out)).returncode == 0
    assert cspm("index", "build", str(second), "--out", str(out)).returncode == 0
    assert versions(out, "acme/a") == ["1.0.0"] and versions(out, "acme/b") == ["1.0.0"]
    names = [json.loads(line)["name"] for line in (out / "names").read_text().splitlines()]
    assert names == ["acme/a", "acme/b"]
    again = tree(out)
    assert cspm("index", "build", str(second), "--out", str(out)).returncode == 0  # the same bytes: no change
    assert tree(out) == again
    # an app locked to the first still installs from the registry
    (tmp_path / "config").mkdir()
    (tmp_path / "config" / "config.yaml").write_text(f"registries:\n- name: local\n  url: {out.as_uri()}\n")
    app = tmp_path / "app" / "app.yaml"
    app.parent.mkdir()
    app.write_text('entry: t\ntools:\n  - {name: t, description: d, plugin: "acme/a@1"}\n')
    env = {"CSPM_CONFIG_DIR": str(tmp_path / "config"), "CSPM_CACHE_DIR": str(tmp_path / "cache")}
    assert cspm("run", str(app), "-i", "hello", env=env).stdout.strip() == "hello"


def test_other_bytes_for_a_version_are_refused_unless_replace_which_says_what_goes(tmp_path: Path) -> None:
    out = tmp_path / "registry"
    assert cspm("index", "build", str(plugin(tmp_path / "one", "acme/a")), "--out", str(out)).returncode == 0
    assert cspm("index", "build", str(plugin(tmp_path / "two", "acme/b")), "--out", str(out)).returncode == 0
    changed = plugin(tmp_path / "three", "acme/a", lang="zig")  # same version, other bytes
    snap = Snapshot(out)
    refused = cspm("index", "build", str(changed), "--out", str(out))
    assert refused.returncode != 0 and "the registry already has other bytes for: acme/a 1.0.0" in refused.stderr
    assert "--replace" in refused.stderr
    snap.assert_unchanged()
    replaced = cspm("index", "build", str(changed), "--out", str(out), "--replace")
    assert replaced.returncode == 0, replaced.stderr
    assert "replacing: acme/b 1.0.0 is dropped (not in the sources)" in replaced.stderr
    assert "replacing: acme/a 1.0.0 changes from sha256:" in replaced.stderr
    assert not (out / "index" / "acme" / "b").exists() and versions(out, "acme/a") == ["1.0.0"]


def test_replace_refuses_a_folder_holding_files_cspm_did_not_write(tmp_path: Path) -> None:
    out = tmp_path / "registry"
    assert cspm("index", "build", str(plugin(tmp_path / "one", "acme/a")), "--out", str(out)).returncode == 0
    (out / "README.md").write_text("about this registry")
    snap = Snapshot(out)
    result = cspm("index", "build", str(plugin(tmp_path / "two", "acme/b")), "--out", str(out), "--replace")
    assert result.returncode != 0 and "--replace would delete files of" in result.stderr
    assert "(README.md)" in result.stderr
    snap.assert_unchanged()
    added = cspm("index", "build", str(plugin(tmp_path / "two", "acme/b")), "--out", str(out))  # adding keeps it
    assert added.returncode == 0 and (out / "README.md").read_text() == "about this registry"
    assert versions(out, "acme/a") == ["1.0.0"] and versions(out, "acme/b") == ["1.0.0"]
