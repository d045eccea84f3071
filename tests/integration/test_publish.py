"""Publish, install, yank and export end to end: the `cspm` CLI against a real `cspm-registry` server."""

from __future__ import annotations

import json
import os
import re
import shutil
import socket
import subprocess
import sys
import time
from collections.abc import Iterator
from pathlib import Path

import httpx
import pytest

from tests.integration.test_cli import cspm
from tests.integration.test_cli_pm import source

pytest.importorskip("cspm_registry", reason="the registry server distribution is not installed")

APP = """\
entry: boss
tools:
  - {name: echo, plugin: "test/echo@>=1", config: {kind: tool}}
agents:
  - {name: boss, plugin: "test/boss@^1", config: {kind: agent}, tools: [echo]}
"""


def free_port() -> int:
    with socket.socket() as sock:
        sock.bind(("127.0.0.1", 0))
        return sock.getsockname()[1]


def registry_cli(*args: str) -> subprocess.CompletedProcess[str]:
    return subprocess.run([sys.executable, "-m", "cspm_registry", *args], capture_output=True, text=True,
                          timeout=60)


def new_token(data: Path, *namespaces: str) -> str:
    args = [a for ns in namespaces for a in ("--namespace", ns)]
    result = registry_cli("token", "create", "--data", str(data), *args, "--publish")
    assert result.returncode == 0, result.stderr
    found = re.findall(r"csr_[A-Za-z0-9_-]{20,}", result.stdout)
    assert len(found) == 1, result.stdout
    return found[0]


class Server:
    def __init__(self, data: Path) -> None:
        self.data, self.port = data, free_port()
        self.url = f"http://127.0.0.1:{self.port}"
        self.proc: subprocess.Popen[bytes] | None = None

    def start(self) -> None:
        self.proc = subprocess.Popen([sys.executable, "-m", "cspm_registry", "serve", "--data", str(self.data),
                                      "--host", "127.0.0.1", "--port", str(self.port), "--name", "remote"],
                                     stdout=subprocess.DEVNULL, stderr=subprocess.PIPE)
        deadline = time.monotonic() + 20
        while time.monotonic() < deadline:
            try:
                if httpx.get(f"{self.url}/config.json", timeout=1).status_code == 200:
                    return
            except httpx.TransportError:
                time.sleep(0.05)
        raise RuntimeError("the registry server did not start")

    def stop(self) -> None:
        if self.proc is not None and self.proc.poll() is None:
            self.proc.terminate()
            self.proc.wait(timeout=10)


@pytest.fixture
def server(tmp_path: Path) -> Iterator[Server]:
    running = Server(tmp_path / "data")
    running.start()
    yield running
    running.stop()


@pytest.fixture(autouse=True)
def own_dirs(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setenv("CSPM_CONFIG_DIR", str(tmp_path / "config"))
    monkeypatch.setenv("CSPM_CACHE_DIR", str(tmp_path / "cache"))
    monkeypatch.delenv("CSPM_TOKEN", raising=False)


def ok(*args: str) -> dict:
    result = cspm(*args, "--json")
    assert result.returncode == 0, result.stdout + result.stderr
    return json.loads(result.stdout)


def refused(*args: str) -> str:
    result = cspm(*args)
    assert result.returncode != 0, result.stdout
    return result.stderr


def test_publish_install_yank_republish_and_scope(tmp_path: Path, server: Server,
                                                  monkeypatch: pytest.MonkeyPatch) -> None:
    src = tmp_path / "src"
    echo1 = source(src, "test/echo", "1.0.0", "tool", "c")
    echo2 = source(src, "test/echo", "1.1.0", "tool", "zig")
    boss = source(src, "test/boss", "1.0.0", "agent", "rust")
    other = source(src, "corp/thing", "1.0.0", "tool", "c")
    ok("registry", "add", "remote", server.url, "--namespace", "test", "--namespace", "corp")
    assert "no token for registry remote" in refused("publish", str(echo1), "--no-sign")
    ok("login", "remote", "--token", new_token(server.data, "test"))
    for folder in (echo1, echo2, boss):
        published = ok("publish", str(folder), "--no-sign")
        assert published["registry"] == "remote" and published["published"]
    stderr = refused("publish", str(echo1), "--no-sign")
    assert "already" in stderr and "bump `version`" in stderr
    stderr = refused("publish", str(other), "--no-sign")
    assert "refused" in stderr and "token of this namespace" in stderr

    info = ok("info", "test/echo")
    assert [v["version"] for v in info["versions"]] == ["1.0.0", "1.1.0"]
    assert [r["name"] for r in ok("search", "echo")["results"]] == ["test/echo"]
    ok("yank", "test/echo@1.1.0", "--reason", "broken")
    info = ok("info", "test/echo")
    assert [v["yanked"] for v in info["versions"]] == [False, "broken"] and info["selected"]["version"] == "1.0.0"

    # a second user, with only the registry's URL (no token), installs and runs it; yanked 1.1.0 is skipped
    monkeypatch.setenv("CSPM_CONFIG_DIR", str(tmp_path / "second-config"))
    monkeypatch.setenv("CSPM_CACHE_DIR", str(tmp_path / "second-cache"))
    ok("registry", "add", "remote", server.url)
    app = tmp_path / "user" / "app.yaml"
    app.parent.mkdir()
    app.write_text(APP)
    locked = {p["name"]: p["version"] for p in ok("lock", str(app))["plugins"]}
    assert locked == {"test/boss": "1.0.0", "test/echo": "1.0.0"}
    assert ok("run", str(app), "-i", "hello")["output"] == "hello"
    assert "no token for registry remote" in refused("yank", "test/echo@1.1.0", "--undo", "-r", "remote")
    publisher = {"CSPM_CONFIG_DIR": str(tmp_path / "config")}
    assert cspm("yank", "test/echo@1.1.0", "--undo", env=publisher).returncode == 0
    assert ok("lock", str(app), "-U")["changes"] == [
        {"name": "test/echo", "old": "1.0.0", "new": "1.1.0", "change": "updated"}]
    assert cspm("yank", "test/echo@1.1.0", env=publisher).returncode == 0  # yanked after locking: still installs
    shutil.rmtree(Path(os.environ["CSPM_CACHE_DIR"]))
    assert ok("install", str(app), "--frozen")["downloaded"] == 2


def test_export_is_served_statically_and_installs_unchanged(tmp_path: Path, server: Server) -> None:
    src = tmp_path / "src"
    ok("registry", "add", "remote", server.url, "--namespace", "test")
    ok("login", "remote", "--token", new_token(server.data, "test"))
    for folder in (source(src, "test/echo", "1.0.0", "tool", "c"), source(src, "test/boss", "1.0.0", "agent", "rust")):
        ok("publish", str(folder), "--no-sign")
    out = tmp_path / "static"
    result = registry_cli("export", "--data", str(server.data), "--out", str(out))
    assert result.returncode == 0, result.stderr
    assert json.loads((out / "config.json").read_text())["api"] is None
    live = httpx.get(f"{server.url}/index/test/echo").content
    assert (out / "index" / "test" / "echo").read_bytes() == live
    port = free_port()
    static = subprocess.Popen([sys.executable, "-m", "http.server", str(port), "--bind", "127.0.0.1",
                               "--directory", str(out)], stdout=subprocess.DEVNULL, stderr=subprocess.DEVNULL)
    try:
        for _ in range(100):
            try:
                httpx.get(f"http://127.0.0.1:{port}/config.json", timeout=1)
                break
            except httpx.TransportError:
                time.sleep(0.05)
        server.stop()  # only the static copy is left
        ok("registry", "add", "remote", f"http://127.0.0.1:{port}", "--namespace", "test")
        app = tmp_path / "app.yaml"
        app.write_text(APP)
        assert ok("run", str(app), "-i", "static")["output"] == "static"
        assert "has no write API" in refused("publish", str(src / "echo-1.0.0"), "--no-sign")
    finally:
        static.terminate()
        static.wait(timeout=10)


def test_model_and_data_packages_publish_install_and_run(tmp_path: Path, server: Server) -> None:
    """`cspm publish` packed only modules, though the server takes model and data packages: now a model
    (GGUF) and a data file publish, are checked like an install checks them, and an app installs them."""
    root = Path(__file__).resolve().parents[2]
    model = tmp_path / "src" / "model"
    shutil.copytree(root / "models" / "selfask-tiny", model)
    (model / "plugin.yaml").write_text((model / "plugin.yaml").read_text().replace("chainsocket/", "test/"))
    data = tmp_path / "src" / "data"
    shutil.copytree(root / "models" / "selfask-people", data)
    (data / "plugin.yaml").write_text((data / "plugin.yaml").read_text().replace("chainsocket/", "test/"))
    ok("registry", "add", "remote", server.url, "--namespace", "test")
    ok("login", "remote", "--token", new_token(server.data, "test"))
    for folder, kind in ((model, "model"), (data, "data")):
        published = ok("publish", str(folder), "--no-sign")
        assert published["published"], published
        info = ok("info", f"test/{folder.name.replace('model', 'selfask-tiny').replace('data', 'selfask-people')}")
        assert info["selected"]["kind"] == kind
    # not a GGUF file: refused before anything is sent
    bad = tmp_path / "src" / "bad"
    shutil.copytree(model, bad)
    (bad / "selfask-tiny.gguf").write_bytes(b"not a model at all")
    (bad / "plugin.yaml").write_text((bad / "plugin.yaml").read_text().replace("version: 1.0.0", "version: 2.0.0"))
    assert "is not a GGUF model file" in refused("publish", str(bad), "--no-sign")
    # the demo app, its model and data from this registry, installs and answers
    app = tmp_path / "app" / "app.yaml"
    app.parent.mkdir()
    app.write_text((root / "examples" / "self-ask-demo" / "app.yaml").read_text()
                   .replace("chainsocket/selfask-tiny", "test/selfask-tiny")
                   .replace("chainsocket/selfask-people", "test/selfask-people"))
    ran = ok("run", str(app), "-i", "Who was born first, Kogail Bagrol or Stolvle Thema?")
    assert ran["output"] == "Kogail Bagrol"
