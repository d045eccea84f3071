"""Lock, install and run registry references end to end, over a real folder registry."""

from __future__ import annotations

from pathlib import Path

import pytest
from packaging.version import Version

from cspm import planner
from cspm.formats import app as app_format
from cspm.formats import lock as lock_format
from cspm.formats import manifest as manifest_format
from cspm.formats.userconfig import Registry, UserConfig
from cspm.index.build import add_to_folder
from cspm.index.federation import Federation
from cspm.install import CapabilityChange, bind_locked, install, lock_app, stale_reasons
from cspm.runtime.engine import Runtime
from cspm.store import Store
from tests.conftest import conformance_wasm

APP = """\
entry: boss
tools:
  - {name: echo, plugin: "test/echo@SPEC", config: {kind: tool}}
agents:
  - {name: boss, plugin: "test/boss@^1", config: {kind: agent}, tools: [echo]}
"""


def publish(root: Path, name: str, version: str, kind: str, lang: str, capabilities: str = "{}") -> None:
    folder = root.parent / f"src-{name.replace('/', '-')}-{version}"
    folder.mkdir(parents=True, exist_ok=True)
    (folder / "plugin.yaml").write_text(f"name: {name}\nversion: {version}\nkind: {kind}\nabi: 1\nwasm: m.wasm\n"
                                        f"description: {name} {version}\ncapabilities: {capabilities}\n"
                                        "config: {kind: {type: string}}\n")
    add_to_folder(root, manifest_format.load(folder), conformance_wasm(lang).read_bytes())


@pytest.fixture
def registry(tmp_path: Path) -> Path:
    root = tmp_path / "registry"
    publish(root, "test/echo", "1.0.0", "tool", "c")
    publish(root, "test/echo", "1.1.0", "tool", "zig", "{hosts: [api.example.com]}")
    publish(root, "test/boss", "1.0.0", "agent", "rust")
    return root


def setup(tmp_path: Path, registry: Path, spec: str) -> tuple[app_format.AppConfig, Federation, Store]:
    path = tmp_path / "app.yaml"
    path.write_text(APP.replace("SPEC", spec))
    federation = Federation(UserConfig(tmp_path / "config.yaml", [Registry("local", registry.as_uri())]))
    return app_format.load(path), federation, Store(tmp_path / "store")


def test_lock_install_and_run(tmp_path: Path, registry: Path) -> None:
    app, federation, store = setup(tmp_path, registry, "~1.0")
    lock = lock_app(app, federation)
    assert [(p.name, str(p.version), p.used_by) for p in lock.plugins] == [
        ("test/boss", "1.0.0", ["boss"]), ("test/echo", "1.0.0", ["echo"])]
    lock_format.write(lock)
    assert install(lock, federation, store) == 2 and install(lock, federation, store) == 0
    assert stale_reasons(app, lock_format.load(lock.path)) == []
    bind_locked(app, lock_format.load(lock.path), store)
    assert app.components["echo"].description == "test/echo 1.0.0"
    with Runtime(planner.build(app)) as runtime:
        assert runtime.run("ahoy").output == "ahoy"


def test_stale_lock_and_capability_widening(tmp_path: Path, registry: Path) -> None:
    app, federation, _ = setup(tmp_path, registry, "~1.0")
    old = lock_app(app, federation)
    app, federation, _ = setup(tmp_path, registry, "^1")
    assert stale_reasons(app, old) == []  # 1.0.0 still matches ^1: nothing to do
    app, federation, _ = setup(tmp_path, registry, ">=1.1")
    assert stale_reasons(app, old) == [
        "test/echo is locked at 1.0.0, which does not match test/echo@>=1.1 (app component `echo`)"]
    with pytest.raises(CapabilityChange, match=r"test/echo 1.0.0 -> 1.1.0: new hosts api.example.com") as info:
        lock_app(app, federation, existing=old)
    assert "--allow-capabilities" in (info.value.hint or "")
    new = lock_app(app, federation, existing=old, allow_capabilities=True)
    assert new.by_name()["test/echo"].version == Version("1.1.0")


def test_corrupted_store_blob_is_refused_at_load(tmp_path: Path, registry: Path) -> None:
    app, federation, store = setup(tmp_path, registry, "~1.0")
    lock = lock_app(app, federation)
    install(lock, federation, store)
    blob = store.path(lock.by_name()["test/echo"].digest)
    blob.chmod(0o644)
    blob.write_bytes(blob.read_bytes()[:-1] + b"\0")
    bind_locked(app, lock, store)
    from cspm.errors import PluginError
    with pytest.raises(PluginError, match="is corrupted"):
        Runtime(planner.build(app))


def test_an_upgrade_signed_by_someone_else_stops(tmp_path: Path) -> None:
    from cspm.install import SignerChange

    root = tmp_path / "registry"
    for version, who in (("1.0.0", "alice@acme.example"), ("1.1.0", "mallory@evil.example")):
        folder = tmp_path / f"src-{version}"
        folder.mkdir()
        (folder / "plugin.yaml").write_text(f"name: test/echo\nversion: {version}\nkind: tool\nabi: 1\nwasm: m.wasm\n"
                                            "config: {kind: {type: string}}\n")
        add_to_folder(root, manifest_format.load(folder), conformance_wasm("c").read_bytes(),
                      signature={"kind": "sigstore", "issuer": "https://issuer.example", "identity": who})
    publish(root, "test/boss", "1.0.0", "agent", "rust")
    app, federation, _ = setup(tmp_path, root, "~1.0")
    old = lock_app(app, federation)
    assert old.by_name()["test/echo"].signer == {"issuer": "https://issuer.example", "identity": "alice@acme.example"}
    app, federation, _ = setup(tmp_path, root, ">=1.1")
    with pytest.raises(SignerChange, match="test/echo 1.0.0 -> 1.1.0: signed by alice@acme.example "
                                           r"\(https://issuer.example\), now by mallory@evil.example") as info:
        lock_app(app, federation, existing=old)
    assert "--allow-signer-change" in (info.value.hint or "")
    new = lock_app(app, federation, existing=old, allow_signer_change=True)
    assert new.by_name()["test/echo"].signer["identity"] == "mallory@evil.example"  # type: ignore[index]
