"""The registry server as it runs, for tests: a real `cspm-registry` subprocess on loopback, real
framing, and helpers to publish and read answers. Used by registry-server/tests and the hostile and
fault suites under tests/."""

from __future__ import annotations

import hashlib
import http.client
import json
import os
import re
import select
import shutil
import signal
import socket
import struct
import subprocess
import sys
import time
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import pytest

from tests.conftest import conformance_wasm

TOKEN_RE = re.compile(r"^csr_[A-Za-z0-9_-]{43}$")
# the console script of this interpreter's install (.ci/setup: pip install -e registry-server)
_BESIDE = Path(sys.executable).parent / "cspm-registry"
REGISTRY = str(_BESIDE) if _BESIDE.is_file() else shutil.which("cspm-registry")


def registry_cli(*args: str) -> subprocess.CompletedProcess[str]:
    if REGISTRY is None:
        pytest.fail("cspm-registry is not installed: .ci/setup installs registry-server/ (pip install -e)")
    return subprocess.run([REGISTRY, *args], capture_output=True, text=True, timeout=60)


def frame(*parts: bytes) -> bytes:
    """A publish body: each part as a 4-byte little-endian length and its bytes."""
    return b"".join(struct.pack("<I", len(part)) + part for part in parts)


def manifest(name: str, version: str, kind: str = "tool", **extra: Any) -> dict[str, Any]:
    payload = {"app": "app.yaml"} if kind == "app" else {"wasm": "m.wasm"}
    return {"name": name, "version": version, "kind": kind, "abi": 1, **payload, "description": f"{name} {version}",
            **extra}


def publish_body(data: dict[str, Any], module: bytes, bundle: bytes = b"", kind: str | None = None) -> bytes:
    """Part 1 names the signature's kind exactly when part 3 carries a bundle (as cspm publish sends it)."""
    head: dict[str, Any] = {"manifest": data}
    if kind is not None:
        head["signature"] = {"kind": kind}
    return frame(json.dumps(head).encode(), module, bundle)


def digest_of(blob: bytes) -> str:
    return "sha256:" + hashlib.sha256(blob).hexdigest()


class Answer:
    def __init__(self, status: int, headers: dict[str, str], body: bytes) -> None:
        self.status, self.headers, self.body = status, headers, body

    def json(self) -> Any:
        return json.loads(self.body)

    def error(self) -> tuple[str, str]:
        error = self.json()["error"]
        return error["code"], error["message"]


class Server:
    """`cspm-registry serve` in a subprocess on 127.0.0.1, port chosen by the OS."""

    def __init__(self, data: Path, log: Path, *args: str, env: dict[str, str] | None = None) -> None:
        if REGISTRY is None:
            pytest.fail("cspm-registry is not installed: .ci/setup installs registry-server/ (pip install -e)")
        self.data = data
        self.log = log
        with self.log.open("ab") as log:
            self.proc = subprocess.Popen([REGISTRY, "serve", "--data", str(data), "--port", "0", "--name", "test",
                                          *args], stdout=subprocess.PIPE, stderr=log,
                                         env={**os.environ, **(env or {})})
        assert self.proc.stdout is not None
        ready, _, _ = select.select([self.proc.stdout], [], [], 20)
        line = self.proc.stdout.readline().decode() if ready else ""
        match = re.search(r"http://127\.0\.0\.1:(\d+)/", line)
        if not match:
            self.proc.kill()
            pytest.fail(f"the server did not start: {line!r}\n{self.log.read_text()}")
        self.port = int(match.group(1))
        self.url = f"http://127.0.0.1:{self.port}/"
        deadline = time.monotonic() + 20
        while True:
            try:
                if self.get("/config.json").status == 200:
                    break
            except OSError:
                pass
            if time.monotonic() > deadline:
                pytest.fail(f"the server does not answer:\n{self.log.read_text()}")
            time.sleep(0.05)

    def request(self, method: str, path: str, body: bytes | None = None, headers: dict[str, str] | None = None,
                token: str | None = None) -> Answer:
        connection = http.client.HTTPConnection("127.0.0.1", self.port, timeout=30)
        try:
            sent = dict(headers or {})
            if token:
                sent["Authorization"] = f"Bearer {token}"
            connection.request(method, path, body=body, headers=sent)
            response = connection.getresponse()
            return Answer(response.status, {k.lower(): v for k, v in response.getheaders()}, response.read())
        finally:
            connection.close()

    def get(self, path: str, **headers: str) -> Answer:
        return self.request("GET", path, headers={k.replace("_", "-"): v for k, v in headers.items()})

    def publish(self, token: str | None, data: dict[str, Any], module: bytes, bundle: bytes = b"",
                kind: str | None = None) -> Answer:
        return self.request("PUT", "/api/v1/publish", publish_body(data, module, bundle, kind), token=token)

    def yank(self, token: str | None, name: str, version: str, yanked: bool | str) -> Answer:
        body = json.dumps({"name": name, "version": version, "yanked": yanked}).encode()
        return self.request("POST", "/api/v1/yank", body, {"Content-Type": "application/json"}, token=token)

    def token(self, *namespaces: str, publish: bool = True, admin: bool = False) -> str:
        flags = [x for ns in namespaces for x in ("--namespace", ns)]
        flags += ["--publish"] if publish else []
        flags += ["--admin"] if admin else []
        result = registry_cli("token", "create", "--data", str(self.data), *flags)
        assert result.returncode == 0, result.stderr
        return result.stdout.strip()

    def trust(self, *args: str, ok: bool = True) -> subprocess.CompletedProcess[str]:
        """`cspm-registry trust ...` on this server's data dir (while it runs)."""
        result = registry_cli("trust", *args, "--data", str(self.data))
        assert (result.returncode == 0) == ok, result.stderr
        return result

    def kill(self) -> None:
        self.proc.send_signal(signal.SIGKILL)
        self.proc.wait(10)

    def stop(self) -> None:
        if self.proc.poll() is None:
            self.proc.terminate()
            try:
                self.proc.wait(10)
            except subprocess.TimeoutExpired:
                self.kill()
        if self.proc.stdout:
            self.proc.stdout.close()


@pytest.fixture
def servers(tmp_path: Path) -> Iterator[list[Server]]:
    started: list[Server] = []
    yield started
    for server in started:
        server.stop()


@pytest.fixture
def start(tmp_path: Path, servers: list[Server]) -> Any:
    def start_server(*args: str, data: Path | None = None, env: dict[str, str] | None = None) -> Server:
        server = Server(data or tmp_path / "data", tmp_path / f"server-{len(servers)}.log", *args, env=env)
        servers.append(server)
        return server
    return start_server


@pytest.fixture
def server(start: Any) -> Server:
    return start()


@pytest.fixture(scope="module")
def modules(tmp_path_factory: pytest.TempPathFactory) -> dict[str, bytes]:
    """Real plug-ins (C, Zig), and modules that are not plug-ins."""
    out = tmp_path_factory.mktemp("wat")
    found = {"c": conformance_wasm("c").read_bytes(), "zig": conformance_wasm("zig").read_bytes(),
             "random": os.urandom(4096)}
    for name in ("nocall", "badimport"):
        subprocess.run(["wat2wasm", str(Path(__file__).parent / "wat" / f"{name}.wat"), "-o", str(out / name)],
                       check=True)
        found[name] = (out / name).read_bytes()
    return found


def read_answer(sock: socket.socket) -> bytes:
    """One whole HTTP response from a raw socket: its headers, then Content-Length bytes of body."""
    received = b""
    while b"\r\n\r\n" not in received:
        chunk = sock.recv(65536)
        if not chunk:
            return received
        received += chunk
    head, body = received.split(b"\r\n\r\n", 1)
    length = re.search(rb"(?i)content-length: (\d+)", head)
    while length and len(body) < int(length.group(1)):
        chunk = sock.recv(65536)
        if not chunk:
            break
        body += chunk
    return head + b"\r\n\r\n" + body


def lines_of(answer: Answer) -> list[dict[str, Any]]:
    assert answer.status == 200, answer.body
    return [json.loads(line) for line in answer.body.decode().splitlines()]


def stored_files(data: Path) -> dict[str, list[str]]:
    return {folder: sorted(p.name for p in (data / folder).rglob("*"))
            for folder in ("blobs/sha256", "bundles/sha256", "tmp")}


# -- reads, tokens, publish
