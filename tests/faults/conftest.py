"""Fault scenarios: a registry served by a loopback server that misbehaves on cue, and a store to check.

`FaultyServer` serves a folder registry (what `cspm index build` writes) like any static host, except
for the requests a test scripts: answer 500, hang without answering, or send the headers and the
first N bytes of a blob and then stall (so a SIGKILL lands mid-download). Each scenario then checks
that the store and the lock are consistent (`assert_consistent`) and that a rerun succeeds.
"""

from __future__ import annotations

import json
import os
import re
import subprocess
import sys
import threading
import time
from collections.abc import Callable, Iterator
from dataclasses import dataclass, field
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer
from pathlib import Path

import pytest

from tests.integration.test_cli_pm import APP, source

BLOB_RE = r"^/blobs/sha256/[0-9a-f]{64}$"


@dataclass
class Rule:
    pattern: re.Pattern[str]
    action: str  # "status" | "hang" | "stall"
    times: int
    status: int = 500
    after: int = 0  # stall: bytes of the body sent before stalling
    hits: int = 0


@dataclass
class Hit:
    path: str
    action: str  # "served", "status 500", "hang", "stall"


@dataclass
class FaultyServer:
    root: Path
    rules: list[Rule] = field(default_factory=list)
    hits: list[Hit] = field(default_factory=list)
    stalled: threading.Event = field(default_factory=threading.Event)  # a stall point was reached
    release: threading.Event = field(default_factory=threading.Event)  # lets hanging handlers go
    rate: int = 0  # bytes per second for served bodies (0: as fast as possible)

    def fail(self, pattern: str, times: int, status: int = 500) -> FaultyServer:
        self.rules.append(Rule(re.compile(pattern), "status", times, status=status))
        return self

    def hang(self, pattern: str, times: int) -> FaultyServer:
        self.rules.append(Rule(re.compile(pattern), "hang", times))
        return self

    def stall(self, pattern: str, after: int, times: int = 1) -> FaultyServer:
        self.rules.append(Rule(re.compile(pattern), "stall", times, after=after))
        return self

    def _rule(self, path: str) -> Rule | None:
        with _LOCK:
            for rule in self.rules:
                if rule.hits < rule.times and rule.pattern.search(path):
                    rule.hits += 1
                    return rule
        return None

    def actions(self, pattern: str = "") -> list[str]:
        return [h.action for h in self.hits if re.search(pattern, h.path)]


_LOCK = threading.Lock()
Faulty = Callable[[Path], tuple[str, FaultyServer]]


def _handler(state: FaultyServer) -> type[BaseHTTPRequestHandler]:
    class Handler(BaseHTTPRequestHandler):
        protocol_version = "HTTP/1.1"

        def do_GET(self) -> None:
            path = self.path.split("?", 1)[0]
            rule = state._rule(path)
            action = "served" if rule is None else (f"status {rule.status}" if rule.action == "status"
                                                    else rule.action)
            state.hits.append(Hit(path, action))
            if rule is not None and rule.action == "hang":
                state.release.wait(60)
                self.close_connection = True
                return
            if rule is not None and rule.action == "status":
                body = json.dumps({"error": "scripted failure"}).encode()
                self.send_response(rule.status)
                self.send_header("Content-Length", str(len(body)))
                self.end_headers()
                self.wfile.write(body)
                return
            file = (state.root / path.lstrip("/")).resolve()
            if not file.is_file() or state.root.resolve() not in file.parents:
                self.send_response(404)
                self.send_header("Content-Length", "0")
                self.end_headers()
                return
            data = file.read_bytes()
            self.send_response(200)
            self.send_header("Content-Length", str(len(data)))
            self.end_headers()
            if rule is not None and rule.action == "stall":
                self.wfile.write(data[:rule.after])
                self.wfile.flush()
                state.stalled.set()
                state.release.wait(60)
                self.close_connection = True
                return
            step = max(1, state.rate // 20) if state.rate else len(data) or 1
            for offset in range(0, len(data), step):
                self.wfile.write(data[offset:offset + step])
                if state.rate:
                    self.wfile.flush()
                    time.sleep(0.05)

        def log_message(self, *args: object) -> None:
            pass

    return Handler


class _Server(ThreadingHTTPServer):
    daemon_threads = True

    def handle_error(self, request: object, client_address: object) -> None:
        pass  # clients that were killed or timed out hang up on purpose here


@pytest.fixture
def faulty() -> Iterator[Faulty]:
    """`faulty(folder)` -> (url, FaultyServer); every server is released and closed at teardown."""
    started: list[tuple[_Server, FaultyServer]] = []

    def make(root: Path) -> tuple[str, FaultyServer]:
        state = FaultyServer(root)
        server = _Server(("127.0.0.1", 0), _handler(state))
        threading.Thread(target=server.serve_forever, args=(0.05,), daemon=True).start()
        started.append((server, state))
        return f"http://127.0.0.1:{server.server_address[1]}", state

    yield make
    for server, state in started:
        state.release.set()
        server.shutdown()
        server.server_close()


@pytest.fixture(autouse=True)
def own_dirs(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setenv("CSPM_CONFIG_DIR", str(tmp_path / "config"))
    monkeypatch.setenv("CSPM_CACHE_DIR", str(tmp_path / "cache"))
    monkeypatch.setenv("CSPM_HTTP_TIMEOUT", "2")  # a hung registry costs seconds, not minutes


@pytest.fixture
def registry_dir(tmp_path: Path) -> Path:
    """A folder registry with test/echo (C, 44 KB) and test/boss (Rust, 327 KB)."""
    from cspm.index import from_sources

    src = tmp_path / "src"
    source(src, "test/echo", "1.0.0", "tool", "c")
    source(src, "test/boss", "1.0.0", "agent", "rust")
    out = tmp_path / "registry"
    from_sources.build([src], out, name="local")
    return out


@pytest.fixture
def app_file(tmp_path: Path) -> Path:
    path = tmp_path / "proj" / "app.yaml"
    path.parent.mkdir()
    path.write_text(APP)
    return path


def cspm_cmd(*args: str) -> list[str]:
    return [sys.executable, "-m", "cspm.cli.main", *args]


def run(*args: str, env: dict[str, str] | None = None, timeout: float = 60) -> subprocess.CompletedProcess[str]:
    result = subprocess.run(cspm_cmd(*args), capture_output=True, text=True, timeout=timeout,
                            env={**os.environ, **(env or {})})
    assert "Traceback" not in result.stderr, result.stderr
    assert result.returncode != 70, result.stderr  # "internal error": a bug, never an answer to a fault
    return result


def ok(*args: str, env: dict[str, str] | None = None) -> dict:
    result = run(*args, "--json", env=env)
    assert result.returncode == 0, result.stdout + result.stderr
    return json.loads(result.stdout)


def add_registry(url: str) -> None:
    ok("registry", "add", "local", url, "--first")


def store_dir(cache: Path | None = None) -> Path:
    return (cache or Path(os.environ["CSPM_CACHE_DIR"])) / "store"


def assert_consistent(app: Path | None = None, cache: Path | None = None, *, tmp_empty: bool = True) -> None:
    """Every blob under its final name has the content its name says, the lock (if any) loads, and no
    write is left in flight; `cspm cache verify` agrees."""
    import hashlib

    from cspm.formats import lock as lock_format

    store = store_dir(cache)
    for blob in (store / "blobs").rglob("*"):
        if blob.is_file():
            assert hashlib.sha256(blob.read_bytes()).hexdigest() == blob.name, f"{blob} is partial or corrupt"
            assert blob.stat().st_mode & 0o222 == 0, f"{blob} is writable"
    if tmp_empty and (store / "tmp").is_dir():
        assert list((store / "tmp").iterdir()) == [], "a write in progress was left behind"
    if app is not None:
        lock = app.with_suffix(".lock")
        if lock.exists():
            lock_format.load(lock)  # raises FormatError on a torn lock
        assert [p.name for p in app.parent.iterdir() if p.name.startswith(".")] == [], "a temp lock was left"
    env = {"CSPM_CACHE_DIR": str(cache)} if cache else None
    verified = run("cache", "verify", "--json", env=env)
    assert verified.returncode == 0 and json.loads(verified.stdout)["corrupted"] == [], verified.stdout


def installed_digests(app: Path) -> set[str]:
    from cspm.formats import lock as lock_format

    return {p.digest for p in lock_format.load(app.with_suffix(".lock")).plugins}


def assert_installed(app: Path, cache: Path | None = None) -> None:
    store = store_dir(cache)
    for digest in installed_digests(app):
        hexdigest = digest[7:]
        assert (store / "blobs" / "sha256" / hexdigest[:2] / hexdigest).is_file(), f"{digest} is not installed"
