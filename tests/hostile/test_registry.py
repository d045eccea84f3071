"""Hostile clients of the registry server (a real `cspm-registry serve` on loopback): tokens for
another namespace or revoked, hostile names, oversized and slow uploads. Each is refused with its
status and message, and the data dir holds no new blob, bundle, upload or version."""

from __future__ import annotations

import contextlib
import json
import socket
import sqlite3
import struct
import time
from collections.abc import Iterator
from pathlib import Path

import pytest

from tests.registry_support import Server, manifest, publish_body, read_answer, registry_cli, stored_files

pytestmark = pytest.mark.timeout(120)
EMPTY = {"blobs/sha256": [], "bundles/sha256": [], "tmp": []}


@pytest.fixture(scope="module")
def server(tmp_path_factory: pytest.TempPathFactory) -> Iterator[Server]:
    """One server for the module; an upload must arrive within 1 s."""
    root = tmp_path_factory.mktemp("hostile-registry")
    started = Server(root / "data", root / "server.log", "--upload-timeout", "1", "--max-blob-mb", "1")
    yield started
    started.stop()


def nothing_published(server: Server) -> None:
    assert stored_files(server.data) == EMPTY
    with sqlite3.connect(server.data / "registry.db") as db:
        assert db.execute("SELECT COUNT(*) FROM versions").fetchone() == (0,)


HOSTILE_NAMES = [
    ("dotdot", "test/..", "package name 'test/..' is not allowed"),
    ("extra-slash", "test/a/b", "package name 'test/a/b' must be `namespace/name`"),
    ("nul", "test/echo\u0000", "package name 'test/echo\\x00' is not allowed"),
    ("cyrillic-a", "test/c\u0430lc", "package name 'test/c\u0430lc' is not allowed"),
    ("uppercase", "test/Echo", "package name 'test/Echo' is not allowed"),
    ("not-a-string", 42, "package name 42 is not allowed"),
]


@pytest.mark.parametrize("name, expect", [c[1:] for c in HOSTILE_NAMES], ids=[c[0] for c in HOSTILE_NAMES])
def test_hostile_package_names_are_422(server: Server, echo_wasm: bytes, name: object, expect: str) -> None:
    answer = server.publish(server.token("test"), {**manifest("test/echo", "1.0.0"), "name": name}, echo_wasm)
    assert (answer.status, answer.error()[0]) == (422, "invalid") and expect in answer.error()[1], answer.body
    nothing_published(server)


@pytest.mark.parametrize("path", ["/index/test/..%2F..%2Fregistry.db", "/index/te%00st/echo", "/index/test/%D0%B0",
                                  "/blobs/sha256/..%2F..%2Fregistry.db", "/bundles/sha256/x%00.dsse.json"],
                         ids=["index-dotdot", "index-nul", "index-cyrillic", "blob-dotdot", "bundle-nul"])
def test_hostile_read_paths_are_404(server: Server, path: str) -> None:
    answer = server.get(path)
    assert answer.status == 404 and answer.error()[0] == "not_found", answer.body


def test_a_token_for_another_namespace_is_403(server: Server, echo_wasm: bytes) -> None:
    other = server.token("other")
    answer = server.publish(other, manifest("test/echo", "1.0.0"), echo_wasm)
    assert (answer.status, answer.error()) == (403, ("forbidden", "this token may not publish in namespace 'test' "
                                                                  "(it may in: other)"))
    assert server.yank(other, "test/echo", "1.0.0", True).error()[1].startswith("this token may not yank")
    nothing_published(server)


def test_oversized_uploads_are_413_before_the_body(server: Server) -> None:
    token = server.token("test")
    head = json.dumps({"manifest": manifest("test/big", "1.0.0")}).encode()
    with socket.create_connection(("127.0.0.1", server.port), timeout=10) as sock:
        sock.sendall(f"PUT /api/v1/publish HTTP/1.1\r\nHost: x\r\nAuthorization: Bearer {token}\r\n"
                     f"Content-Length: {1 << 30}\r\n\r\n".encode())
        answer = read_answer(sock)
    assert answer.startswith(b"HTTP/1.1 413") and b"the upload is 1,073,741,824 bytes" in answer
    declared = server.request("PUT", "/api/v1/publish", struct.pack("<I", len(head)) + head
                              + struct.pack("<I", 2 << 20) + b"\0" * 1024, token=token)
    assert declared.status == 413 and "the module part (2) is 2,097,152 bytes" in declared.error()[1]
    nothing_published(server)


def test_a_slow_upload_times_out(server: Server, echo_wasm: bytes) -> None:
    """A client that trickles its body is cut off after --upload-timeout (1 s here), with a 408."""
    token = server.token("test")
    body = publish_body(manifest("test/slow", "1.0.0"), echo_wasm)
    started = time.monotonic()
    with socket.create_connection(("127.0.0.1", server.port), timeout=10) as sock:
        sock.sendall(f"PUT /api/v1/publish HTTP/1.1\r\nHost: x\r\nAuthorization: Bearer {token}\r\n"
                     f"Content-Length: {len(body)}\r\n\r\n".encode())
        sock.setblocking(False)
        answer = b""
        for offset in range(0, len(body), 16):  # 16 bytes every 50 ms: ~2 minutes for the whole body
            try:
                sock.sendall(body[offset:offset + 16])
            except OSError:
                break
            with contextlib.suppress(BlockingIOError):
                answer += sock.recv(65536)
            if b"\r\n\r\n" in answer or time.monotonic() - started > 10:
                break
            time.sleep(0.05)
        sock.setblocking(True)
        answer += read_answer(sock) if b"\r\n\r\n" not in answer else b""
    assert answer.startswith(b"HTTP/1.1 408"), answer[:200]
    assert b"did not arrive within 1 s" in answer and b"--upload-timeout" in answer
    assert time.monotonic() - started < 5
    nothing_published(server)


def test_token_list_shows_no_secret_and_revoke_takes_effect_at_once(server: Server, echo_wasm: bytes) -> None:
    token = server.token("rev")
    listed = json.loads(registry_cli("token", "list", "--data", str(server.data), "--json").stdout)
    mine = listed[-1]
    assert mine["namespaces"] == ["rev"] and mine["scope"] == "publish" and set(mine) == {
        "id", "namespaces", "scope", "created"}
    plain = registry_cli("token", "list", "--data", str(server.data))
    assert f"#{mine['id']}  publish" in plain.stdout
    for text in (plain.stdout + plain.stderr, json.dumps(listed)):
        assert token not in text and token[4:] not in text
    revoked = registry_cli("token", "revoke", "--data", str(server.data), f"#{mine['id']}")
    assert revoked.returncode == 0 and f"revoked token #{mine['id']}" in revoked.stderr
    answer = server.publish(token, manifest("rev/echo", "1.0.0"), echo_wasm)  # the running server: 401 at once
    assert (answer.status, answer.error()[0]) == (401, "unauthorized")
    again = registry_cli("token", "revoke", "--data", str(server.data), str(mine["id"]))
    assert again.returncode == 1 and f"there is no token #{mine['id']}" in again.stderr
    bad = registry_cli("token", "revoke", "--data", str(server.data), "csr_x")
    assert bad.returncode == 1 and "is not a token id" in bad.stderr
    assert all(row["id"] != mine["id"] for row in json.loads(
        registry_cli("token", "list", "--data", str(server.data), "--json").stdout))
    nothing_published(server)


def test_upload_timeout_must_be_positive(tmp_path: Path) -> None:
    result = registry_cli("serve", "--data", str(tmp_path / "d"), "--upload-timeout", "0")
    assert result.returncode == 1 and "--upload-timeout is more than 0" in result.stderr
