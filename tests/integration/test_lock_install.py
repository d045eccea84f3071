"""Lock, install and run registry references end to end, over a real folder registry."""

from __future__ import annotations

import os
import shutil
import threading
from http.server import SimpleHTTPRequestHandler, ThreadingHTTPServer
from pathlib import Path
from typing import Any

import pytest
from packaging.version import Version

from cspm import planner, provenance
from cspm.formats import app as app_format
from cspm.formats import lock as lock_format
from cspm.formats import manifest as manifest_format
from cspm.formats.userconfig import Registry, UserConfig
from cspm.index.build import add_to_folder
from cspm.index.federation import Federation
from cspm.install import CapabilityChange, bind_locked, install, lock_app, stale_reasons
from cspm.project import Project
from cspm.runtime.engine import Runtime
from cspm.store import Store, digest_of
from cspm.verify.signature import SignatureError
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


def test_a_lock_carries_what_install_needs(tmp_path: Path, registry: Path) -> None:
    """A fresh lock installs with the registry's index files gone: only blobs (and config.json) are read."""
    app, federation, store = setup(tmp_path, registry, "~1.0")
    lock = lock_app(app, federation)
    lock_format.write(lock)
    echo = lock_format.load(lock.path).by_name()["test/echo"]  # through the schema
    assert echo.located and echo.blob == f"blobs/sha256/{echo.digest[7:]}" and echo.signature is None
    assert echo.interface is not None and "call" in echo.interface["exports"] and echo.interface["imports"]
    shutil.rmtree(registry / "index")
    (registry / "names").unlink(missing_ok=True)
    _, fresh, _ = setup(tmp_path, registry, "~1.0")
    assert install(lock_format.load(lock.path), fresh, store) == 2
    bind_locked(app, lock_format.load(lock.path), store)
    with Runtime(planner.build(app)) as runtime:
        assert runtime.run("ahoy").output == "ahoy"


def test_an_older_lock_without_locations_still_installs_from_the_index(tmp_path: Path, registry: Path) -> None:
    app, federation, store = setup(tmp_path, registry, "~1.0")
    lock = lock_app(app, federation)
    text = lock_format.dump(lock)
    old = "\n".join(line for line in text.splitlines()
                    if not line.startswith(("  blob:", "  interface:", "    exports:", "    imports:", "    - ")))
    assert "blob:" not in old and "interface:" not in old
    lock.path.write_text(old + "\n")
    loaded = lock_format.load(lock.path)
    assert not any(p.located for p in loaded.plugins)
    asked: list[str] = []
    versions = federation.versions
    federation.versions = lambda name: asked.append(name) or versions(name)  # type: ignore[method-assign]
    assert install(loaded, federation, store) == 2
    assert sorted(set(asked)) == ["test/boss", "test/echo"]  # the older lock is completed from the index


class _FolderServer:
    """A folder registry over loopback HTTP, recording every path asked for; `/index/` can be refused."""

    def __init__(self, root: Path) -> None:
        outer = self
        self.paths: list[str] = []
        self.refuse_index = False

        class Handler(SimpleHTTPRequestHandler):
            def __init__(self, *args: Any, **kwargs: Any) -> None:
                super().__init__(*args, directory=str(root), **kwargs)

            def do_GET(self) -> None:
                outer.paths.append(self.path)
                if outer.refuse_index and self.path.startswith(("/index/", "/names")):
                    self.send_error(500, "index refused by the test")
                    return
                super().do_GET()

            def log_message(self, *args: object) -> None:
                pass

        self.server = ThreadingHTTPServer(("127.0.0.1", 0), Handler)
        self.server.daemon_threads = True
        self.url = f"http://127.0.0.1:{self.server.server_address[1]}"
        threading.Thread(target=self.server.serve_forever, args=(0.05,), daemon=True).start()

    def close(self) -> None:
        self.server.shutdown()
        self.server.server_close()


def test_a_fresh_lock_installs_over_http_with_the_index_cache_gone_and_the_index_refused(
        tmp_path: Path, registry: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setenv("CSPM_CACHE_DIR", str(tmp_path / "cache"))
    server = _FolderServer(registry)
    try:
        path = tmp_path / "app.yaml"
        path.write_text(APP.replace("SPEC", "~1.0"))
        config = UserConfig(tmp_path / "config.yaml", [Registry("web", server.url)])
        with Project(path, config=config, store=Store(tmp_path / "store-a")) as project:
            assert project.lock().written
        shutil.rmtree(tmp_path / "cache" / "index")
        server.refuse_index, server.paths[:] = True, []
        with Project(path, config=config, store=Store(tmp_path / "store-b")) as project:
            _, installed = project.install(frozen=True)
        assert installed.downloaded == 2
        assert not [p for p in server.paths if p.startswith(("/index/", "/names"))], server.paths
        assert sorted(p for p in server.paths if p.startswith("/blobs/")) == sorted(
            f"/blobs/sha256/{p.digest[7:]}" for p in lock_format.load(path.with_suffix(".lock")).plugins)
    finally:
        server.close()


def test_a_blob_with_a_bad_signature_is_never_in_the_store(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    """The signature is checked inside the download check: the refused blob is never renamed into the
    store, not even for a moment (every rename the store makes is watched)."""
    root = tmp_path / "registry"
    module = conformance_wasm("c").read_bytes()
    hexdigest = digest_of(module)[7:]
    bundle = f"bundles/sha256/{hexdigest}.dsse.json"
    folder = tmp_path / "src-echo"
    folder.mkdir()
    (folder / "plugin.yaml").write_text("name: test/echo\nversion: 1.0.0\nkind: tool\nabi: 1\nwasm: m.wasm\n"
                                        "config: {kind: {type: string}}\n")
    add_to_folder(root, manifest_format.load(folder), module,
                  signature={"kind": "dsse-ed25519", "issuer": "key:ed25519", "identity": "ed25519:abc",
                             "bundle": bundle})
    (root / bundle).parent.mkdir(parents=True)
    (root / bundle).write_text('{"payloadType": "forged"}')
    publish(root, "test/boss", "1.0.0", "agent", "rust")
    path = tmp_path / "app.yaml"
    path.write_text(APP.replace("SPEC", "~1.0"))
    store = Store(tmp_path / "store")
    renamed: list[str] = []
    seen_at_check: list[tuple[bool, list[str]]] = []
    real_replace, real_verify = os.replace, provenance.verify

    def watched_replace(source: Any, target: Any) -> None:
        renamed.append(Path(target).name)
        real_replace(source, target)

    def watched_verify(*args: Any, **kwargs: Any) -> Any:
        seen_at_check.append((store.has(kwargs["digest"]), [p.name for p in store.blobs.rglob("*") if p.is_file()]))
        return real_verify(*args, **kwargs)

    monkeypatch.setattr("cspm.store.os.replace", watched_replace)
    monkeypatch.setattr(provenance, "verify", watched_verify)
    config = UserConfig(tmp_path / "config.yaml", [Registry("local", root.as_uri())])
    with Project(path, config=config, store=store) as project, pytest.raises(SignatureError, match="DSSE"):
        project.install()
    assert not store.has(digest_of(module)) and hexdigest not in renamed
    assert seen_at_check, "the signature was never checked"
    for stored, listing in seen_at_check:  # while the signature was checked, the blob was only a temp file
        assert not stored and hexdigest not in listing
    assert not path.with_suffix(".lock").exists()  # nothing pins a blob that was refused
