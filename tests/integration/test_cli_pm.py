"""The package-manager commands as users run them: subprocesses over a real registry (folder or HTTP)."""

from __future__ import annotations

import functools
import http.server
import json
import os
import shutil
import subprocess
import sys
import threading
from collections.abc import Iterator
from pathlib import Path

import pytest

from tests.conftest import conformance_wasm
from tests.integration.test_cli import cspm

APP = """\
# an app with registry plug-ins
entry: boss
tools:
  - {name: echo, plugin: "test/echo@~1.0", config: {kind: tool}}
agents:
  - name: boss
    plugin: test/boss@^1
    config: {kind: agent}
    tools: [echo]
"""

DEMO = """\
entry: boss
tools:
  - {name: echo, description: says it back, plugin: "test/echo@~1.0", config: {kind: tool}}
agents:
  - {name: boss, description: asks echo, plugin: "test/boss@^1", config: {kind: agent}, tools: [echo]}
"""


@pytest.fixture(autouse=True)
def own_config_and_cache(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    """Registries added and blobs stored by one test must not be seen by the next."""
    monkeypatch.setenv("CSPM_CONFIG_DIR", str(tmp_path / "config"))
    monkeypatch.setenv("CSPM_CACHE_DIR", str(tmp_path / "cache"))


def source(root: Path, name: str, version: str, kind: str, lang: str, extra: str = "") -> Path:
    folder = root / f"{name.split('/')[1]}-{version}"
    folder.mkdir(parents=True)
    shutil.copy(conformance_wasm(lang), folder / "m.wasm")
    (folder / "plugin.yaml").write_text(f"name: {name}\nversion: {version}\nkind: {kind}\nabi: 1\nwasm: m.wasm\n"
                                        f"description: {name} {version}\nconfig: {{kind: {{type: string}}}}\n{extra}")
    return folder


@pytest.fixture
def sources(tmp_path: Path) -> Path:
    root = tmp_path / "src"
    source(root, "test/echo", "1.0.0", "tool", "c")
    source(root, "test/echo", "1.1.0", "tool", "zig", "capabilities: {hosts: [api.example.com]}\n")
    source(root, "test/boss", "1.0.0", "agent", "rust")
    source(root, "test/extra", "2.0.0", "tool", "c", "secrets: {token: {required: true}}\n")
    demo = root / "demo"
    demo.mkdir()
    (demo / "plugin.yaml").write_text("name: test/demo\nversion: 1.0.0\nkind: app\nabi: 1\napp: app.yaml\n"
                                      "description: an echo demo app\n")
    (demo / "app.yaml").write_text(DEMO)
    return root


@pytest.fixture
def registry(tmp_path: Path, sources: Path) -> Path:
    out = tmp_path / "registry"
    result = cspm("index", "build", str(sources), "--out", str(out), "--name", "local", "--json")
    assert result.returncode == 0, result.stderr
    assert cspm("registry", "add", "local", str(out), "--first").returncode == 0
    return out


@pytest.fixture
def app(tmp_path: Path, registry: Path) -> Path:
    path = tmp_path / "proj" / "app.yaml"
    path.parent.mkdir()
    path.write_text(APP)
    return path


def ok(*args: str, cwd: Path | None = None) -> dict:
    result = cspm(*args, "--json", **({"cwd": cwd} if cwd else {}))
    assert result.returncode == 0, result.stdout + result.stderr
    return json.loads(result.stdout)


def fails(*args: str, code: int | None = None) -> str:
    result = cspm(*args)
    assert result.returncode != 0, result.stdout
    if code is not None:
        assert result.returncode == code, result.stderr
    return result.stderr


def test_index_build_is_reproducible_and_writes_the_app_lock(tmp_path: Path, sources: Path, registry: Path) -> None:
    assert ok("index", "build", str(sources), "--out", str(registry), "--name", "local", "--check")["matches"]
    again = tmp_path / "again"
    ok("index", "build", str(sources), "--out", str(again), "--name", "local")
    assert ok("index", "build", str(sources), "--out", str(again), "--name", "local", "--check")["differ"] == []
    lock = (sources / "demo" / "app.lock").read_text()
    assert "test/echo" in lock and "version: 1.0.0" in lock
    (registry / "index" / "test" / "echo").write_text("")  # a registry that drifted from its sources
    result = cspm("index", "build", str(sources), "--out", str(registry), "--name", "local", "--check")
    assert result.returncode == 1 and "index/test/echo" in result.stderr


def test_registry_add_list_remove(tmp_path: Path, registry: Path) -> None:
    listed = ok("registry", "list")["registries"]
    assert [r["name"] for r in listed] == ["local", "chainsocket"]
    assert listed[0]["url"] == registry.as_uri()
    ok("registry", "add", "corp", "https://registry.corp.example", "--namespace", "corp")
    listed = ok("registry", "list")["registries"]
    assert listed[-1] == {"name": "corp", "url": "https://registry.corp.example", "namespaces": ["corp"]}
    ok("registry", "remove", "corp")
    assert "there is no registry called 'corp' (configured: local, chainsocket)" in fails("registry", "remove",
                                                                                       "corp")
    assert "not allowed" in fails("registry", "add", "Bad Name", "https://x.example")


def test_lock_install_run_and_a_warm_run_needs_no_registry(tmp_path: Path, app: Path, registry: Path) -> None:
    locked = ok("lock", str(app))
    assert locked["written"] and [(c["name"], c["new"]) for c in locked["changes"]] == [
        ("test/boss", "1.0.0"), ("test/echo", "1.0.0")]
    assert not ok("lock", str(app))["written"]  # up to date: nothing to do
    installed = ok("install", str(app), "--frozen")
    assert installed["downloaded"] == 2
    assert ok("install", str(app))["downloaded"] == 0
    shutil.rmtree(registry)  # warm: the lock and the store are all a run needs
    ran = ok("run", str(app), "-i", "ahoy")
    assert ran["output"] == "ahoy" and ran["finish_reason"] == "final_answer"


def test_run_locks_and_installs_first(app: Path) -> None:
    assert not app.with_suffix(".lock").exists()
    assert ok("run", str(app), "-i", "first")["output"] == "first"
    assert "test/echo" in app.with_suffix(".lock").read_text()


def test_frozen_refuses_a_stale_lock_and_an_upgrade_needs_allow_capabilities(app: Path) -> None:
    ok("lock", str(app))
    app.write_text(APP.replace("~1.0", ">=1.1"))
    stderr = fails("install", str(app), "--frozen", code=2)
    assert "is out of date: test/echo is locked at 1.0.0, which does not match test/echo@>=1.1" in stderr
    assert "cspm lock" in stderr
    stderr = fails("lock", str(app))
    assert "test/echo 1.0.0 -> 1.1.0: new hosts api.example.com" in stderr and "--allow-capabilities" in stderr
    assert "version: 1.0.0" in app.with_suffix(".lock").read_text()  # refused: the old lock stands
    changed = ok("lock", str(app), "--allow-capabilities")["changes"]
    assert changed == [{"name": "test/echo", "old": "1.0.0", "new": "1.1.0", "change": "updated"}]


def test_upgrade_package_moves_only_that_plugin(app: Path) -> None:
    app.write_text(APP.replace("~1.0", "^1"))
    ok("lock", str(app))
    lock = app.with_suffix(".lock")
    lock.write_text(lock.read_text().replace("1.1.0", "1.1.0"))
    assert "version: 1.1.0" in lock.read_text()  # newest match on first lock
    assert ok("lock", str(app), "-P", "test/echo", "--allow-capabilities")["changes"] == []


def test_add_writes_the_app_locks_and_installs_and_rolls_back_on_conflict(app: Path) -> None:
    before = app.read_text()
    stderr = fails("add", "test/echo", "--as", "echo2", "--app", str(app))
    assert "test/echo" in stderr and "echo2" in stderr and "echo" in stderr
    assert app.read_text() == before  # a failed add leaves the app as it was
    added = ok("add", "test/extra", "--app", str(app))
    assert added["added"] == {"requirement": "test/extra@^2.0.0", "kind": "tool", "component": "extra",
                              "secrets": ["env:EXTRA_TOKEN"], "grant": [], "into": None, "entry": False}
    text = app.read_text()
    assert text.startswith(before.rstrip("\n").split("agents:")[0])  # comment and layout kept
    assert "  - {name: extra, description: test/extra 2.0.0, plugin: test/extra@^2.0.0, secrets: {token: " \
           "'env:EXTRA_TOKEN'}}\n" in text
    assert "test/extra" in app.with_suffix(".lock").read_text()
    stderr = fails("add", "test/extra", "--app", str(app))
    assert "already has a tool called 'extra'" in stderr and "--as" in stderr
    assert "is an app, not a plug-in an app can use" in fails("add", "test/demo", "--app", str(app))


def test_remove_refuses_what_is_in_use_and_relocks(app: Path) -> None:
    ok("add", "test/extra", "--app", str(app))
    assert "'echo' is used by boss" in fails("remove", "echo", "--app", str(app))
    assert "'boss' is the app's entry" in fails("remove", "boss", "--app", str(app))
    removed = ok("remove", "test/extra", "--app", str(app))
    assert removed["removed"] == ["extra"] and "extra" not in app.read_text()
    assert "test/extra" not in app.with_suffix(".lock").read_text()
    assert "has no component 'nope'" in fails("remove", "nope", "--app", str(app))


def test_search_info_inspect(registry: Path) -> None:
    results = ok("search", "echo")["results"]
    assert [(r["name"], r["latest"], r["registry"]) for r in results] == [
        ("test/echo", "1.1.0", "local"), ("test/demo", "1.0.0", "local")]  # name matches first, then descriptions
    assert [r["name"] for r in ok("search", "demo")["results"] if r["registry"] == "local"] == ["test/demo"]
    info = ok("info", "test/echo")
    assert [v["version"] for v in info["versions"]] == ["1.0.0", "1.1.0"]
    assert info["selected"]["capabilities"]["hosts"] == ["api.example.com"]
    assert "call" in info["selected"]["exports"]
    assert ok("info", "test/echo@~1.0")["selected"]["version"] == "1.0.0"
    assert "test/nope was not found; registries asked: local, chainsocket" in fails("info", "test/nope")
    inspected = ok("inspect", str(conformance_wasm("c")))
    assert "call" in inspected["exports"] and inspected["digest"].startswith("sha256:")
    junk = registry.parent / "junk.wasm"
    junk.write_bytes(b"\0asm\x01\0\0\0\xff")
    assert "junk.wasm" in fails("inspect", str(junk))


def test_cache_commands(app: Path) -> None:
    ok("install", str(app))
    assert Path(ok("cache", "dir")["cache_dir"]) == Path(os.environ["CSPM_CACHE_DIR"])
    parts = {p["name"]: p for p in ok("cache", "ls", "--blobs")["parts"]}
    assert parts["blobs"]["files"] == 2
    assert ok("cache", "verify") == {"checked": 2, "corrupted": []}
    blob = next(p for p in (Path(os.environ["CSPM_CACHE_DIR"]) / "store" / "blobs").rglob("*") if p.is_file())
    blob.chmod(0o644)
    blob.write_bytes(blob.read_bytes() + b"!")
    result = cspm("cache", "verify", "--json")
    assert result.returncode == 1 and json.loads(result.stdout)["corrupted"] == ["sha256:" + blob.name]
    assert ok("install", str(app))["downloaded"] == 1  # the corrupted blob is fetched again
    ok("cache", "clean")
    assert {p["name"]: p["files"] for p in ok("cache", "ls")["parts"]}["blobs"] == 0


class _Quiet(http.server.SimpleHTTPRequestHandler):
    def log_message(self, *args: object) -> None:
        pass


@pytest.fixture
def http_registry(registry: Path) -> Iterator[tuple[str, http.server.ThreadingHTTPServer]]:
    server = http.server.ThreadingHTTPServer(("127.0.0.1", 0), functools.partial(_Quiet, directory=str(registry)))
    thread = threading.Thread(target=server.serve_forever, daemon=True)
    thread.start()
    url = f"http://127.0.0.1:{server.server_address[1]}"
    ok("registry", "add", "local", url)
    yield url, server
    server.shutdown()
    server.server_close()


def test_run_a_published_app_then_again_with_the_registry_down(http_registry: tuple[str, object]) -> None:
    _, server = http_registry
    ran = ok("run", "test/demo@1", "-i", "ahoy")
    assert ran["output"] == "ahoy"
    server.shutdown()  # type: ignore[attr-defined]
    server.server_close()  # type: ignore[attr-defined]
    assert ok("run", "test/demo", "-i", "again")["output"] == "again"  # warm: cached index, stored blobs
    assert "test/echo is a tool, not an app" in fails("run", "test/echo", "-i", "x")
    refreshed = cspm("run", "test/demo", "--refresh", "-i", "x")  # asks, falls back to the cache, says so
    assert refreshed.returncode == 0 and "registry local cannot be reached" in refreshed.stderr
    ok("cache", "clean", "index")
    stderr = fails("run", "test/demo", "-i", "x")
    assert "registry local (http://127.0.0.1:" in stderr and "cannot be reached" in stderr


def serve(folder: Path) -> tuple[str, http.server.ThreadingHTTPServer]:
    server = http.server.ThreadingHTTPServer(("127.0.0.1", 0), functools.partial(_Quiet, directory=str(folder)))
    threading.Thread(target=server.serve_forever, daemon=True).start()
    return f"http://127.0.0.1:{server.server_address[1]}", server


def test_two_http_registries_routing_shadowing_fallback_and_concurrent_installs(tmp_path: Path) -> None:
    from cspm.index import from_sources

    public_src, corp_src = tmp_path / "public-src", tmp_path / "corp-src"
    source(public_src, "test/echo", "1.0.0", "tool", "c")
    source(public_src, "test/boss", "1.0.0", "agent", "rust")
    source(public_src, "corp/echo", "9.0.0", "tool", "zig")  # a shadowing attempt: higher version, first registry
    source(corp_src, "corp/echo", "1.0.0", "tool", "c")
    from_sources.build([public_src], tmp_path / "public", name="public")
    from_sources.build([corp_src], tmp_path / "corp", name="corp")
    public_url, public = serve(tmp_path / "public")
    corp_url, corp = serve(tmp_path / "corp")
    try:
        ok("registry", "add", "public", public_url, "--first")
        ok("registry", "add", "corp", corp_url, "--namespace", "corp")
        app = tmp_path / "app.yaml"
        app.write_text(APP.replace("test/echo@~1.0", "corp/echo@>=1"))
        locked = {p["name"]: p for p in ok("lock", str(app))["plugins"]}
        assert (locked["corp/echo"]["version"], locked["corp/echo"]["registry"]) == ("1.0.0", "corp")
        assert locked["test/boss"]["registry"] == "public"
        assert "corp/other was not found; registries asked: corp (namespace 'corp' is served only by corp)" in \
            fails("info", "corp/other")
        # two installs at once into one store: both succeed, each blob lands once, nothing half-written
        procs = [subprocess.Popen([sys.executable, "-m", "cspm.cli.main", "install", str(app), "--json"],
                                  stdout=subprocess.PIPE, stderr=subprocess.PIPE, text=True) for _ in range(2)]
        results = [p.communicate(timeout=120) for p in procs]
        assert [p.returncode for p in procs] == [0, 0], results
        assert sum(json.loads(out)["downloaded"] for out, _ in results) in (2, 3, 4)
        store = Path(os.environ["CSPM_CACHE_DIR"]) / "store"
        assert len([p for p in (store / "blobs").rglob("*") if p.is_file()]) == 2
        assert list((store / "tmp").iterdir()) == []
        corp.shutdown()
        corp.server_close()
        relocked = cspm("lock", str(app), "--upgrade", "--json")  # corp is down: its cached index answers
        assert relocked.returncode == 0, relocked.stderr
        assert "registry corp cannot be reached" in relocked.stderr and "using its cached index" in relocked.stderr
        stderr = fails("info", "corp/other")  # down: the cached "not there" answers
        assert "using its cached index" in stderr and "corp/other was not found; registries asked: corp" in stderr
    finally:
        public.shutdown()
        public.server_close()
