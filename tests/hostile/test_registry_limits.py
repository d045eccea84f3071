"""The registry server's limits against hostile clients (a real `cspm-registry serve` on loopback).

- the request head: over 64 KiB is 431 (or a closed connection) with the server's memory unmoved; a
  head (or a body answered before it was read) that trickles past `--header-timeout` is cut off;
- what cspm clients refuse to read is refused at publish (400 `client_limit`): an index line over
  cspm's line limit, an index file or `names` file over cspm's file limits, a yank reason that would
  push a line over, a trust policy that would push config.json over;
- JSON past bounded_json's limits (depth, digits) or with a lone surrogate is 400, never a 500;
- a name, version or path with a trailing newline is refused (422, 404), and nothing is written.

Each refusal leaves the data dir as it was: no blob, bundle, upload or version row is added.
"""

from __future__ import annotations

import contextlib
import json
import os
import socket
import sqlite3
import time
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import pytest
from cspm_registry.limits import MAX_INDEX_BYTES
from cspm_registry.storage import version_key

from cspm.formats.index_line import MAX_LINE_BYTES, parse_file, to_line
from cspm.index.query import MAX_NAMES_FILE, parse_names
from cspm.index.source import MAX_CONFIG_FILE, MAX_INDEX_FILE
from tests.registry_support import (
    Answer,
    Server,
    frame,
    manifest,
    publish_body,
    read_answer,
    registry_cli,
    stored_files,
)

pytestmark = pytest.mark.timeout(180)
HEADER_TIMEOUT = 1.0  # the servers here run with --header-timeout 1
WITHIN = 3 * HEADER_TIMEOUT  # a cut-off connection is closed within this (the timeout plus a generous margin)


@pytest.fixture(scope="module")
def server(tmp_path_factory: pytest.TempPathFactory) -> Iterator[Server]:
    root = tmp_path_factory.mktemp("registry-limits")
    started = Server(root / "data", root / "server.log", "--header-timeout", str(HEADER_TIMEOUT))
    yield started
    started.stop()


@pytest.fixture
def fresh(tmp_path: Path) -> Iterator[Server]:
    """A server of its own, for a test that fills its data dir up to a limit."""
    started = Server(tmp_path / "data", tmp_path / "server.log", "--header-timeout", str(HEADER_TIMEOUT))
    yield started
    started.stop()


def versions(server: Server) -> list[tuple[str, str, str]]:
    with contextlib.closing(sqlite3.connect(server.data / "registry.db")) as db:
        return db.execute("SELECT name, version, line FROM versions ORDER BY id").fetchall()


@contextlib.contextmanager
def nothing_written(server: Server) -> Iterator[None]:
    """The block may be refused, and must leave files and version rows as they were."""
    files, rows = stored_files(server.data), versions(server)
    yield
    assert stored_files(server.data) == files
    assert versions(server) == rows


def rss_kib(server: Server) -> int:
    status = Path(f"/proc/{server.proc.pid}/status").read_text()
    return int(next(line for line in status.splitlines() if line.startswith("VmRSS:")).split()[1])


def answer_or_close(sock: socket.socket, timeout: float) -> tuple[bytes, float]:
    """What the server sends until it closes (b"" when it just closes or resets), and when it closed."""
    sock.settimeout(timeout)
    received = b""
    try:
        while chunk := sock.recv(65536):
            received += chunk
    except ConnectionResetError:
        pass  # closed with our bytes unread: as good as a close
    return received, time.monotonic()


def refused(answer: Answer, status: int, code: str, *needles: str) -> str:
    assert answer.status == status, answer.body[:300]
    found, message = answer.error()
    assert found == code and all(n in message for n in needles), message
    return message


# -- 1. the request head's size


def _flood(kind: str) -> Iterator[bytes]:
    """16 MiB of request head that never ends."""
    if kind == "long-url":
        yield b"GET /" + b"a" * (16 << 20)
        return
    yield b"GET /names HTTP/1.1\r\nHost: x\r\n"
    if kind == "one-long-header":
        yield b"X-Pad: "
        for _ in range(256):
            yield b"a" * 65536
        return
    for block in range(256):
        yield b"".join(b"X-Pad-%d-%d: %s\r\n" % (block, i, b"a" * 1000) for i in range(64))


@pytest.mark.parametrize("kind", ["many-headers", "one-long-header", "long-url"])
def test_a_request_head_over_64_kib_is_431_and_not_buffered(server: Server, kind: str) -> None:
    """The server answers 431 (or closes) and does not keep what it was sent: its memory stays put."""
    before = rss_kib(server)
    with socket.create_connection(("127.0.0.1", server.port), timeout=10) as sock:
        for chunk in _flood(kind):
            try:
                sock.sendall(chunk)
            except OSError:  # closed on us: what we had sent already was refused
                break
        answer, _ = answer_or_close(sock, 10)  # a server that waits for the rest times out here
    assert answer == b"" or answer.startswith(b"HTTP/1.1 431 "), answer[:200]
    if answer:
        assert b"connection: close" in answer.lower() and b"65,536 bytes" in answer
    assert rss_kib(server) - before < 8 * 1024, "the server kept what it was sent"
    assert server.get("/config.json").status == 200


def test_a_request_head_under_64_kib_is_served(server: Server) -> None:
    """60 KiB of headers (more than any client sends) are still fine."""
    pad = {f"X-Pad-{i}": "a" * 1000 for i in range(60)}
    assert server.request("GET", "/config.json", headers=pad).status == 200


# -- 2. the request head's time


def test_a_trickled_head_is_cut_off_after_the_header_timeout(server: Server) -> None:
    """A byte every 100 ms never finishes the headers: 408 and closed, within 3x --header-timeout."""
    with socket.create_connection(("127.0.0.1", server.port), timeout=10) as sock:
        started = time.monotonic()
        sock.sendall(b"GET /names HTTP/1.1\r\nHost: x\r\n")
        sock.setblocking(False)
        answer, closed = b"", None
        while closed is None and time.monotonic() - started < 2 * WITHIN:  # an old server never closes
            try:
                sock.sendall(b"X")
            except OSError:
                closed = time.monotonic()
                break
            with contextlib.suppress(BlockingIOError):
                chunk = sock.recv(65536)
                answer += chunk
                if not chunk:
                    closed = time.monotonic()
            time.sleep(0.1)
        if closed is None and answer:
            sock.setblocking(True)
            rest, closed = answer_or_close(sock, WITHIN)
            answer += rest
    assert closed is not None, "a trickled head kept its connection open"
    assert closed - started < WITHIN, closed - started
    assert answer.startswith(b"HTTP/1.1 408 ") and b"did not arrive within 1 s" in answer, answer[:200]


def test_a_silent_connection_is_closed_after_the_header_timeout(server: Server) -> None:
    with socket.create_connection(("127.0.0.1", server.port), timeout=10) as sock:
        started = time.monotonic()
        answer, closed = answer_or_close(sock, 2 * WITHIN)
    assert answer == b"" and closed - started < WITHIN


def test_a_body_answered_before_it_was_read_must_end_within_the_header_timeout(server: Server) -> None:
    """A 413 is sent at once for a Content-Length over the limit; uvicorn then drops the body as it comes
    without re-arming any timer, so a client trickling it would keep the connection for ever."""
    token = server.token("drain")
    with socket.create_connection(("127.0.0.1", server.port), timeout=10) as sock:
        sock.sendall(f"PUT /api/v1/publish HTTP/1.1\r\nHost: x\r\nAuthorization: Bearer {token}\r\n"
                     f"Content-Length: {1 << 30}\r\n\r\n".encode())
        sock.settimeout(10)
        answer = sock.recv(65536)
        assert answer.startswith(b"HTTP/1.1 413 "), answer[:200]
        answered, closed = time.monotonic(), None
        sock.setblocking(False)
        while closed is None and time.monotonic() - answered < 2 * WITHIN:
            try:
                sock.sendall(b"\0" * 16)
                if sock.recv(65536) == b"":
                    closed = time.monotonic()
            except BlockingIOError:
                pass
            except OSError:
                closed = time.monotonic()
            time.sleep(0.1)
    assert closed is not None and closed - answered < WITHIN, "a trickled unread body kept its connection open"


def test_a_slow_but_timely_head_and_keep_alive_are_served(server: Server) -> None:
    """The timeout counts from a request's first byte to the end of its headers: pauses within it, and a
    second request on the same connection later, are fine."""
    with socket.create_connection(("127.0.0.1", server.port), timeout=10) as sock:
        for pause in (0.3, 0.6):
            for part in (b"GET /config.json HTTP/1.1\r\n", b"Host: x\r\n", b"\r\n"):
                sock.sendall(part)
                time.sleep(0.2)
            answer = read_answer(sock)
            assert answer.startswith(b"HTTP/1.1 200 "), answer[:200]
            time.sleep(pause)  # idle between requests: uvicorn's keep-alive (5 s) applies, not ours


def test_header_timeout_is_checked(tmp_path: Path) -> None:
    for value in ("0", "-1", "nan"):
        result = registry_cli("serve", "--data", str(tmp_path / "d"), "--header-timeout", value)
        assert result.returncode == 1 and "--header-timeout is more than 0" in result.stderr


# -- 3. what cspm clients would refuse is refused at publish


def _schema(size: int) -> dict[str, Any]:
    return {"type": "object", "description": "x" * size}


def test_an_index_line_over_cspms_limit_is_refused(server: Server, echo_wasm: bytes) -> None:
    """A 400 KB input_schema made a line no client reads: the version could never be installed."""
    token = server.token("huge")
    with nothing_written(server):
        answer = server.publish(token, manifest("huge/tool", "1.0.0", input_schema=_schema(400_000)), echo_wasm)
        refused(answer, 400, "client_limit", "huge/tool 1.0.0: its index line would be 4",
                f"cspm reads lines of at most {MAX_LINE_BYTES:,} bytes")
    assert server.get("/index/huge/tool").status == 404


def test_a_yank_reason_that_would_push_a_line_over_the_limit_is_refused(server: Server, echo_wasm: bytes) -> None:
    token = server.token("yankl")
    small = server.publish(token, manifest("yankl/tool", "0.0.1", input_schema=_schema(0)), echo_wasm)
    base = len(to_line(small.json()["line"]).encode())  # 1.0.0 has as many characters as 0.0.1
    data = manifest("yankl/tool", "1.0.0", input_schema=_schema(MAX_LINE_BYTES - 500 - base))
    published = server.publish(token, data, echo_wasm)
    assert published.status == 201 and len(to_line(published.json()["line"]).encode()) == MAX_LINE_BYTES - 500
    before = server.get("/index/yankl/tool").body
    with nothing_written(server):
        refused(server.yank(token, "yankl/tool", "1.0.0", "r" * 1024), 400, "client_limit",
                f"cspm reads lines of at most {MAX_LINE_BYTES:,} bytes")
    assert server.get("/index/yankl/tool").body == before
    assert server.yank(token, "yankl/tool", "1.0.0", "r" * 100).status == 200


def _seed(server: Server, lines: list[dict[str, Any]]) -> None:
    """Rows as if published (the slow way would be thousands of uploads); the generation bump makes the
    running server render its files again."""
    with contextlib.closing(sqlite3.connect(server.data / "registry.db", timeout=30)) as db, db:
        db.executemany("INSERT INTO versions (name, version, version_key, digest, line, published, modified) "
                       "VALUES (?, ?, ?, ?, ?, ?, ?)",
                       [(line["name"], line["version"], version_key(line["version"]), line["digest"], to_line(line),
                         line["published"], time.time()) for line in lines])
        db.execute("UPDATE meta SET value = CAST(value AS INTEGER) + 1 WHERE key = 'generation'")


def test_a_publish_that_would_push_an_index_file_over_cspms_limit_is_refused(fresh: Server, echo_wasm: bytes
                                                                             ) -> None:
    """cspm reads an index file up to 16 MiB: the version past that would hide every version of the package."""
    token = fresh.token("big")
    pad = _schema(250_000)
    first = fresh.publish(token, manifest("big/tool", "1.0.0", input_schema=pad), echo_wasm)
    assert first.status == 201
    line = first.json()["line"]
    size = len(to_line(line).encode()) + 1
    room = 3000  # left at the end: a small version fits, a big one does not
    count = (MAX_INDEX_BYTES - room - 2000) // size  # copies of the first line, the first included
    _seed(fresh, [{**line, "version": f"1.1.{i}"} for i in range(1, count)])
    filler = {**line, "version": "1.2.0", "input_schema": _schema(0)}
    filled = MAX_INDEX_BYTES - room - len(fresh.get("/index/big/tool").body) - len(to_line(filler).encode()) - 1
    _seed(fresh, [{**filler, "input_schema": _schema(filled)}])
    assert len(fresh.get("/index/big/tool").body) == MAX_INDEX_BYTES - room

    with nothing_written(fresh):
        refused(fresh.publish(token, manifest("big/tool", "2.0.0", input_schema=pad), echo_wasm), 400,
                "client_limit", "big/tool 2.0.0: index/big/tool would be", f"at most {MAX_INDEX_BYTES:,} bytes")
    assert fresh.publish(token, manifest("big/tool", "2.0.1"), echo_wasm).status == 201  # ~700 bytes: fits
    body = fresh.get("/index/big/tool").body
    assert len(body) <= MAX_INDEX_FILE
    entries, problems = parse_file(body, "big/tool", "test")  # as cspm reads it: every version, no problem
    assert problems == [] and len(entries) == count + 2 and str(entries[-1].version) == "2.0.1"


def test_a_publish_that_would_push_names_over_cspms_limit_is_refused(fresh: Server, echo_wasm: bytes) -> None:
    """`names` (what `cspm search` reads, up to 16 MiB) has a row per package: it has a limit too."""
    token = fresh.token("many")
    description = "\u00e9" * 4096  # 8 KiB in a row
    first = fresh.publish(token, manifest("many/p0000", "1.0.0", description=description), echo_wasm)
    assert first.status == 201
    line = first.json()["line"]
    row = len(fresh.get("/names").body)
    room = 2000
    count = (MAX_NAMES_FILE - room - 200) // row
    filler = {**line, "name": "many/filler", "description": ""}
    _seed(fresh, [*({**line, "name": f"many/p{i:04d}"} for i in range(1, count)), filler])
    left = MAX_NAMES_FILE - room - len(fresh.get("/names").body)  # bytes, filled with 4-byte characters
    with contextlib.closing(sqlite3.connect(fresh.data / "registry.db", timeout=30)) as db, db:
        db.execute("UPDATE versions SET line = ? WHERE name = 'many/filler'",
                   (to_line({**filler, "description": "\U0001f600" * (left // 4) + "x" * (left % 4)}),))
        db.execute("UPDATE meta SET value = CAST(value AS INTEGER) + 1 WHERE key = 'generation'")
    assert len(fresh.get("/names").body) == MAX_NAMES_FILE - room

    with nothing_written(fresh):
        refused(fresh.publish(token, manifest("many/zzzz", "1.0.0", description=description), echo_wasm), 400,
                "client_limit", "the registry's `names` file would be", f"up to {MAX_NAMES_FILE:,} bytes")
    assert fresh.publish(token, manifest("many/small", "1.0.0", description="s"), echo_wasm).status == 201
    body = fresh.get("/names").body
    assert len(body) <= MAX_NAMES_FILE
    hits = {hit.name for hit in parse_names(body, "test")}  # as `cspm search` reads it
    assert len(hits) == count + 2 and "many/small" in hits and "many/zzzz" not in hits


def test_a_trust_policy_that_would_push_config_json_over_cspms_limit_is_refused(server: Server) -> None:
    before = server.get("/config.json").body
    keys = [f"ed25519:{os.urandom(32).hex()}" for _ in range(3600)]  # ~70 bytes each in config.json
    result = registry_cli("trust", "set", "--data", str(server.data), "--namespace", "keys",
                          *[x for key in keys for x in ("--key", key)])
    assert result.returncode == 1, result.stderr[:500]
    assert "config.json would be" in result.stderr and f"up to {MAX_CONFIG_FILE:,} bytes" in result.stderr
    assert "Traceback" not in result.stderr
    assert server.get("/config.json").body == before
    server.trust("set", "--namespace", "keys", "--key", keys[0])  # a policy that fits is fine
    assert server.get("/config.json").json()["policy"]["keys/*"]["keys"] == [keys[0]]
    server.trust("remove", "--namespace", "keys")


# -- 4. JSON past bounded_json's limits: 400, never 500


DEEP = "[" * 30_000 + "]" * 30_000  # under the yank body's 64 KiB, far past the interpreter's recursion limit


def test_deep_or_huge_json_in_a_publish_head_is_400(server: Server, echo_wasm: bytes) -> None:
    token = server.token("deep")
    good = json.dumps(manifest("deep/tool", "1.0.0"))
    heads = {
        '{"manifest": ' + good + ', "x": ' + DEEP + "}": "is not JSON this registry reads: nested more than 64 levels",
        '{"manifest": ' + good[:-1] + ', "abi": ' + "1" * 5000 + "}}": "is not JSON this registry reads: a number "
                                                                      "has more than 100 digits",
        '{"manifest": ' + good + ', "x": NaN}': "is not JSON this registry reads: NaN is not JSON",
        '{"manifest": ' + good[:-1] + ', "description": "\\ud800"}}': "holds a string that is not Unicode text",
    }
    with nothing_written(server):
        for head, expected in heads.items():
            answer = server.request("PUT", "/api/v1/publish", frame(head.encode(), echo_wasm, b""), token=token)
            refused(answer, 400, "bad_request", f"the JSON part (1) {expected}")


def test_deep_json_in_a_signature_or_an_app_package_is_refused_not_500(server: Server, echo_wasm: bytes) -> None:
    token = server.token("deepb")
    with nothing_written(server):
        for kind, shown in (("dsse-ed25519", "DSSE envelope"), ("sigstore", "Sigstore bundle")):
            answer = server.publish(token, manifest("deepb/tool", "1.0.0"), echo_wasm, DEEP.encode(), kind)
            refused(answer, 422, "signature", f"the signature is not a {shown} (nested more than 64 levels deep)")
        answer = server.publish(token, manifest("deepb/app", "1.0.0", kind="app"), DEEP.encode())
        refused(answer, 422, "invalid", "the app package is not JSON cspm reads (nested more than 64 levels deep)")


def test_deep_or_huge_json_in_a_yank_body_is_400(server: Server, echo_wasm: bytes) -> None:
    token = server.token("deepy")
    assert server.publish(token, manifest("deepy/tool", "1.0.0"), echo_wasm).status == 201
    bodies = {
        DEEP: "nested more than 64 levels deep",
        '{"name": "deepy/tool", "version": "1.0.0", "yanked": true, "n": ' + "9" * 5000 + "}": "more than 100 digits",
        '{"name": "deepy/tool", "version": "1.0.0", "yanked": "\\ud800"}': "not Unicode text",
    }
    with nothing_written(server):
        for body, expected in bodies.items():
            refused(server.request("POST", "/api/v1/yank", body.encode(), token=token), 400, "bad_request", expected)


# -- 5. a trailing newline is not part of any name, version or path


def test_a_trailing_newline_in_a_name_or_version_is_refused(server: Server, echo_wasm: bytes) -> None:
    token = server.token("nl")
    assert server.publish(token, manifest("nl/tool2", "1.0.0"), echo_wasm).status == 201
    with nothing_written(server):
        refused(server.publish(token, manifest("nl/tool2\n", "1.0.1"), echo_wasm), 422, "invalid",
                "package name 'nl/tool2\\n' is not allowed")
        refused(server.publish(token, manifest("nl/tool3", "1.0.1\n"), echo_wasm), 422, "invalid",
                "'1.0.1\\n' is not a PEP 440 version")
        refused(server.yank(token, "nl/tool2\n", "1.0.0", True), 422, "invalid",
                "package name 'nl/tool2\\n' is not allowed")
        refused(server.yank(token, "nl/tool2", "1.0.0\n", True), 422, "invalid", "'1.0.0\\n' is not a PEP 440")
    assert json.loads(server.get("/index/nl/tool2").body)["yanked"] is False


def test_a_trailing_newline_in_a_path_is_404(server: Server, echo_wasm: bytes) -> None:
    """Starlette's route patterns end in `$`: `/names%0A` was `/names`, and a publish to
    `/api/v1/publish%0A` was a publish."""
    token = server.token("nlp")
    published = server.publish(token, manifest("nlp/tool2", "1.0.0"), echo_wasm)
    assert published.status == 201
    hexdigest = published.json()["digest"].split(":", 1)[1]
    for path in ("/index/nlp/tool2%0A", "/index/nlp%0A/tool2", "/names%0A", "/config.json%0A",
                 f"/blobs/sha256/{hexdigest}%0A", "/index/nlp/tool2%20", "/names%00"):
        answer = server.get(path)
        assert (answer.status, answer.error()[0]) == (404, "not_found"), (path, answer.body[:200])
    with nothing_written(server):
        answer = server.request("PUT", "/api/v1/publish%0A", publish_body(manifest("nlp/tool4", "1.0.0"), echo_wasm),
                                token=token)
        assert answer.status == 404, answer.body[:200]
        assert server.request("POST", "/api/v1/yank%0A", json.dumps(
            {"name": "nlp/tool2", "version": "1.0.0", "yanked": True}).encode(), token=token).status == 404
    assert server.get("/index/nlp/tool2").status == 200 and server.get("/names").status == 200
