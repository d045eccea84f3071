"""The registry server (`cspm-registry`, registry-server/) as it runs: a real subprocess on loopback.

Real modules, real framing, real SQLite; crashes are real SIGKILLs. What cspm reads from the server
must be byte for byte what cspm itself writes (`index_line`, `cspm index build`), and an export served
by a plain static web server must be byte for byte what the live server serves. Signatures are real:
DSSE envelopes from `cspm keygen` keys, and Sigstore bundles from the local Sigstore stack
(tests/sigstore_stack.py), verified by the server with cspm's own `cspm.verify.signature`.
"""

from __future__ import annotations

import contextlib
import gzip
import hashlib
import http.client
import json
import re
import select
import socket
import sqlite3
import struct
import subprocess
import sys
import threading
import time
from pathlib import Path
from typing import Any

import pytest
import yaml

from cspm.formats import manifest as manifest_format
from cspm.formats.index_line import from_dict, to_line
from cspm.index import build, from_sources
from cspm.verify.signature import KEY_ISSUER, key_id, keygen, rule_for, sign_keyed, sign_sigstore
from tests.registry_support import (
    TOKEN_RE,
    Answer,
    Server,
    digest_of,
    frame,
    lines_of,
    manifest,
    publish_body,
    read_answer,
    registry_cli,
    stored_files,
)

pytestmark = pytest.mark.timeout(120)


def test_fresh_data_dir_serves_config_and_nothing_else(tmp_path: Path, start: Any) -> None:
    data = tmp_path / "fresh" / "registry"  # not even its parent exists
    server = start(data=data)
    answer = server.get("/config.json")
    assert answer.json() == {"name": "test", "dl": "blobs/sha256/{hex}", "api": "api/v1"}
    assert answer.headers["cache-control"] == "no-cache" and answer.headers["etag"].startswith('"')
    assert (data / "registry.db").is_file() and (data / "blobs" / "sha256").is_dir() and (data / "tmp").is_dir()
    assert server.get("/names").body == b""
    for path in ("/index/test/echo", "/index/Test/echo", "/index/test/../../registry.db", "/index/..%2F..%2Fx/y",
                 "/blobs/sha256/" + "0" * 64, "/blobs/sha256/..%2F..%2Fregistry.db", "/blobs/sha256/ABC",
                 "/bundles/sha256/..%2Fregistry.db", "/registry.db", "/tmp", "/api/v1/publish"):
        assert server.get(path).status in (404, 405), path


def test_token_create_prints_it_once_and_keeps_only_its_hash(tmp_path: Path) -> None:
    data = tmp_path / "data"
    result = registry_cli("token", "create", "--data", str(data), "--namespace", "acme", "--publish")
    assert result.returncode == 0, result.stderr
    token = result.stdout.strip()
    assert TOKEN_RE.match(token) and result.stdout.count("csr_") == 1 and token not in result.stderr
    rows = sqlite3.connect(data / "registry.db").execute("SELECT hash, namespaces, publish, admin FROM tokens")
    assert rows.fetchall() == [(hashlib.sha256(token.encode()).hexdigest(), '["acme"]', 1, 0)]
    raw = b"".join(p.read_bytes() for p in data.iterdir() if p.is_file())
    assert token.encode() not in raw and token[4:].encode() not in raw
    assert registry_cli("token", "create", "--data", str(data), "--namespace", "Bad_NS").returncode != 0


def test_publish_serves_cspms_own_line_and_an_immutable_blob(server: Server, modules: dict[str, bytes]) -> None:
    token = server.token("test")
    data = manifest("test/echo", "1.0.0", capabilities={"hosts": ["api.example.com"]}, config={
        "greeting": {"type": "string", "default": "hi"}})
    answer = server.publish(token, data, modules["c"])
    assert answer.status == 201, answer.body
    created = answer.json()
    digest = "sha256:" + hashlib.sha256(modules["c"]).hexdigest()
    assert (created["name"], created["version"], created["digest"]) == ("test/echo", "1.0.0", digest)

    served = server.get("/index/test/echo")
    [line] = lines_of(served)
    assert re.match(r"^\d{4}-\d\d-\d\dT\d\d:\d\d:\d\dZ$", line["published"])
    expected = build.index_line(manifest_format.from_dict(data, "plugin.yaml"), modules["c"],
                                published=line["published"])
    assert served.body == (to_line(expected) + "\n").encode()  # the very bytes cspm writes
    assert created["line"] == expected
    assert served.headers["cache-control"] == "no-cache" and "last-modified" in served.headers

    blob = server.get(f"/blobs/sha256/{digest[7:]}")
    assert blob.status == 200 and blob.body == modules["c"]
    assert blob.headers["cache-control"] == "public, max-age=31536000, immutable"
    assert blob.headers["etag"] == f'"{digest[7:]}"'
    assert server.get(f"/blobs/sha256/{digest[7:]}", If_None_Match=f'"{digest[7:]}"').status == 304
    assert json.loads(server.get("/names").body) == {"name": "test/echo", "kind": "tool",
                                                      "description": "test/echo 1.0.0", "latest": "1.0.0"}
    assert token not in server.log.read_text() and token[4:] not in server.log.read_text()


def test_etag_304_if_modified_since_and_gzip(server: Server, modules: dict[str, bytes]) -> None:
    token = server.token("test")
    assert server.publish(token, manifest("test/echo", "1.0.0"), modules["c"]).status == 201
    for path in ("/index/test/echo", "/names", "/config.json"):
        plain = server.get(path, Accept_Encoding="identity")
        etag = plain.headers["etag"]
        assert plain.status == 200 and plain.headers["vary"] == "Accept-Encoding"
        assert "content-encoding" not in plain.headers
        assert etag == f'"{hashlib.sha256(plain.body).hexdigest()}"'
        assert server.get(path, Accept_Encoding="identity", If_None_Match=etag).status == 304
        assert server.get(path, Accept_Encoding="identity", If_None_Match=f'"x", W/{etag}').status == 304
        assert server.get(path, Accept_Encoding="identity", If_None_Match='"other"').status == 200

        zipped = server.get(path, Accept_Encoding="br, gzip;q=0.8")
        assert zipped.headers["content-encoding"] == "gzip" and gzip.decompress(zipped.body) == plain.body
        assert zipped.headers["etag"] != etag and zipped.headers["vary"] == "Accept-Encoding"
        assert server.get(path, Accept_Encoding="gzip", If_None_Match=zipped.headers["etag"]).status == 304
        assert server.get(path, Accept_Encoding="gzip", If_None_Match=etag).status == 200
        assert "content-encoding" not in server.get(path, Accept_Encoding="gzip;q=0").headers

    index = server.get("/index/test/echo")
    modified = index.headers["last-modified"]
    assert server.get("/index/test/echo", If_Modified_Since=modified).status == 304
    assert server.get("/index/test/echo", If_Modified_Since="Thu, 01 Jan 2015 00:00:00 GMT").status == 200
    # If-None-Match decides when both are sent (as cspm does)
    assert server.get("/index/test/echo", If_Modified_Since=modified, If_None_Match='"stale"').status == 200
    time.sleep(1.1)  # Last-Modified has one-second resolution
    assert server.publish(token, manifest("test/echo", "1.1.0"), modules["zig"]).status == 201
    changed = server.get("/index/test/echo", If_Modified_Since=modified, If_None_Match=index.headers["etag"])
    assert changed.status == 200 and len(lines_of(changed)) == 2
    assert changed.headers["last-modified"] != modified


def test_a_version_is_published_once(server: Server, modules: dict[str, bytes]) -> None:
    token = server.token("test")
    assert server.publish(token, manifest("test/echo", "1.0.0"), modules["c"]).status == 201
    for version, module in (("1.0.0", modules["c"]), ("1.0.0", modules["zig"]), ("1.0", modules["zig"])):
        again = server.publish(token, manifest("test/echo", version), module)
        code, message = again.error()
        assert (again.status, code) == (409, "exists") and "bump" in message, again.body
    assert len(lines_of(server.get("/index/test/echo"))) == 1
    assert stored_files(server.data)["blobs/sha256"] == [hashlib.sha256(modules["c"]).hexdigest()]


def test_tokens_are_scoped_to_namespaces(server: Server, modules: dict[str, bytes]) -> None:
    other = server.token("other")
    answer = server.publish(other, manifest("test/echo", "1.0.0"), modules["c"])
    assert (answer.status, answer.error()[0]) == (403, "forbidden") and "'test'" in answer.error()[1]
    read_only = server.token("test", publish=False)
    answer = server.publish(read_only, manifest("test/echo", "1.0.0"), modules["c"])
    assert answer.status == 403 and "--publish" in answer.error()[1]
    assert server.publish(server.token(admin=True), manifest("test/echo", "1.0.0"), modules["c"]).status == 201
    assert server.yank(other, "test/echo", "1.0.0", True).status == 403


def test_unknown_tokens_are_401_then_rate_limited(server: Server, modules: dict[str, bytes]) -> None:
    good = server.token("test")
    body = publish_body(manifest("test/echo", "1.0.0"), modules["c"])
    attempts = [None, "csr_" + "A" * 43, "not-a-token", good[:-1] + ("a" if good[-1] != "a" else "b")]
    for attempt in range(10):
        answer = server.request("PUT", "/api/v1/publish", body, token=attempts[attempt % len(attempts)])
        assert (answer.status, answer.error()[0]) == (401, "unauthorized"), answer.body
        assert answer.headers["www-authenticate"] == "Bearer"
    limited = server.request("PUT", "/api/v1/publish", body, token=good)  # even a good token, from this client
    assert (limited.status, limited.error()[0]) == (429, "rate_limited")
    assert 1 <= int(limited.headers["retry-after"]) <= 60
    assert server.yank(good, "test/echo", "1.0.0", True).status == 429
    assert server.get("/config.json").status == 200  # reads need no token and are never limited


def test_oversized_uploads_are_refused_early(start: Any, tmp_path: Path) -> None:
    small = start("--max-blob-mb", "1", data=tmp_path / "small")
    token = small.token("test")
    head = json.dumps({"manifest": manifest("test/big", "1.0.0")}).encode()
    huge = 512 << 20  # announced, never sent: the answer must come before the body

    def raw(request: bytes) -> bytes:
        with socket.create_connection(("127.0.0.1", small.port), timeout=10) as sock:
            sock.sendall(request)
            sock.sendall(struct.pack("<I", len(head)) + head + struct.pack("<I", 2 << 20) + b"\0" * 65536)
            started = time.monotonic()
            answer = read_answer(sock)
            assert time.monotonic() - started < 5
            return answer

    auth = f"Authorization: Bearer {token}\r\n"
    by_length = raw(f"PUT /api/v1/publish HTTP/1.1\r\nHost: x\r\n{auth}Content-Length: {huge}\r\n\r\n".encode())
    assert by_length.startswith(b"HTTP/1.1 413") and b'"too_large"' in by_length
    # chunked: no length up front; the module part's own length gives it away
    prefix = struct.pack("<I", len(head)) + head + struct.pack("<I", 2 << 20)
    with socket.create_connection(("127.0.0.1", small.port), timeout=10) as sock:
        sock.sendall(f"PUT /api/v1/publish HTTP/1.1\r\nHost: x\r\n{auth}Transfer-Encoding: chunked\r\n\r\n".encode())
        sock.sendall(f"{len(prefix):x}\r\n".encode() + prefix + b"\r\n")
        answer = read_answer(sock)
    assert answer.startswith(b"HTTP/1.1 413") and b"module part (2)" in answer

    too_big = small.publish(token, manifest("test/big", "1.0.0"), b"\0asm" + b"\0" * (1 << 20))
    assert (too_big.status, too_big.error()[0]) == (413, "too_large")
    big_json = frame(json.dumps({"manifest": manifest("test/big", "1.0.0"), "pad": "x" * (2 << 20)}).encode(),
                     b"x", b"")
    assert small.request("PUT", "/api/v1/publish", big_json, token=token).status == 413
    assert small.request("PUT", "/api/v1/publish", frame(head, b"x", b"\0" * (2 << 20)), token=token).status == 413
    assert stored_files(small.data) == {"blobs/sha256": [], "bundles/sha256": [], "tmp": []}


def test_malformed_framing_is_400(server: Server, modules: dict[str, bytes]) -> None:
    token = server.token("test")
    good_json = json.dumps({"manifest": manifest("test/echo", "1.0.0")}).encode()
    whole = frame(good_json, modules["c"], b"")
    cases = {
        b"": "ends before the 4-byte length of the JSON part",
        b"\x05\0": "ends before the 4-byte length of the JSON part",
        whole[:400]: "ends inside the module part (2)",
        whole[:-4]: "ends before the 4-byte length of the signature bundle part (3)",
        whole + b"more": "goes on after its third part",
        frame(b"{not json", modules["c"], b""): "not JSON",
        frame(b"[1, 2]", modules["c"], b""): '{"manifest"',
        frame(b'{"manifest": "x"}', modules["c"], b""): '{"manifest"',
        frame(good_json, modules["c"], b"{}"): 'part 3 carries a signature bundle, but the JSON part (1) has no',
        publish_body(manifest("test/echo", "1.0.0"), modules["c"], b"", "sigstore"):
            "names a 'sigstore' signature, but the signature bundle part (3) is empty",
        frame(json.dumps({"manifest": manifest("test/echo", "1.0.0"), "signature": "sigstore"}).encode(),
              modules["c"], b"{}"): '"signature" must be {"kind"',
    }
    for body, expected in cases.items():
        answer = server.request("PUT", "/api/v1/publish", body, token=token)
        code, message = answer.error()
        assert (answer.status, code) == (400, "bad_request") and expected in message, (body[:40], answer.body)
    for body in (b"{", b"[]", b'{"name": "test/echo"}'):
        assert server.request("POST", "/api/v1/yank", body, token=token).status == 400
    assert stored_files(server.data) == {"blobs/sha256": [], "bundles/sha256": [], "tmp": []}


def test_what_is_not_a_plugin_is_422_naming_the_problem(server: Server, modules: dict[str, bytes]) -> None:
    token = server.token("test")
    cases = [
        (manifest("test/echo", "1.0.0"), modules["random"], b"", "not a usable wasm module"),
        (manifest("test/echo", "1.0.0"), modules["nocall"], b"", "does not export a function `call`"),
        (manifest("test/echo", "1.0.0"), modules["badimport"], b"", "launch_missiles"),
        (manifest("test/echo", "1.x"), modules["c"], b"", "version"),
        (manifest("test/Echo", "1.0.0"), modules["c"], b"", "package name 'test/Echo' is not allowed"),
        (manifest("test/echo", "1.0.0", kind="model"), modules["c"], b"", "'file' is a required property"),
        ({k: v for k, v in manifest("test/echo", "1.0.0", kind="model").items() if k != "wasm"} | {"file": "m.gguf"},
         modules["c"], b"", "is not a GGUF model file"),
        (manifest("test/echo", "1.0.0", surprise=1), modules["c"], b"", "surprise"),
        (manifest("test/echo", "1.0.0", publish=False), modules["c"], b"", "publish: false"),
        (manifest("test/echo", "1.0.0"), b"", b"", "empty"),
        (manifest("test/app", "1.0.0", kind="app"), b"{}", b"", "app package"),
    ]
    for data, module, bundle, expected in cases:
        answer = server.publish(token, data, module, bundle)
        code, message = answer.error()
        assert (answer.status, code) == (422, "invalid") and expected in message, (expected, answer.body)
    assert server.get("/index/test/echo").status == 404
    assert stored_files(server.data) == {"blobs/sha256": [], "bundles/sha256": [], "tmp": []}


def test_concurrent_publishes_of_one_version_exactly_one_wins(server: Server, modules: dict[str, bytes]) -> None:
    token = server.token("test")
    barrier = threading.Barrier(8)
    statuses: list[int] = []

    def publish(index: int) -> None:
        body = publish_body(manifest("test/race", "1.0.0"), modules["c" if index % 2 else "zig"])
        barrier.wait()
        statuses.append(server.request("PUT", "/api/v1/publish", body, token=token).status)

    threads = [threading.Thread(target=publish, args=(i,)) for i in range(8)]
    for thread in threads:
        thread.start()
    for thread in threads:
        thread.join(60)
    assert sorted(statuses) == [201] + [409] * 7
    [line] = lines_of(server.get("/index/test/race"))
    assert stored_files(server.data) == {"blobs/sha256": [line["digest"][7:]], "bundles/sha256": [], "tmp": []}


@pytest.mark.parametrize("signed", [False, True], ids=["unsigned", "signed"])
def test_a_killed_server_leaves_no_trace_and_the_version_can_be_published_again(
        tmp_path: Path, start: Any, modules: dict[str, bytes], signed: bool) -> None:
    data = tmp_path / "data"
    first = start(data=data, env={"CSPM_REGISTRY_TEST_PAUSE_AFTER_BLOB": "30"})
    token = first.token("test")
    hexdigest = hashlib.sha256(modules["c"]).hexdigest()
    envelope, kind, bundle_file = b"", None, None
    if signed:  # the blob and its bundle are both in place when the server dies
        public = keygen(tmp_path / "key.pem")
        first.trust("set", "--namespace", "test", "--key", public)
        envelope, _ = sign_keyed((tmp_path / "key.pem").read_bytes(), "test/echo", "1.0.0", digest_of(modules["c"]))
        kind, bundle_file = "dsse-ed25519", f"{hashlib.sha256(envelope).hexdigest()}.dsse.json"
    body = publish_body(manifest("test/echo", "1.0.0"), modules["c"], envelope, kind)

    # 1. killed while the upload is still arriving
    with socket.create_connection(("127.0.0.1", first.port), timeout=10) as sock:
        sock.sendall(f"PUT /api/v1/publish HTTP/1.1\r\nHost: x\r\nAuthorization: Bearer {token}\r\n"
                     f"Content-Length: {len(body)}\r\n\r\n".encode())
        for offset in range(0, len(body) // 2, 4096):
            sock.sendall(body[offset:offset + 4096])
            time.sleep(0.01)
        first.kill()

    # 2. killed after the blob is in place, before its row is committed
    second = start(data=data, env={"CSPM_REGISTRY_TEST_PAUSE_AFTER_BLOB": "30"})
    threading.Thread(target=lambda: _ignore_errors(second.request, "PUT", "/api/v1/publish", body, token=token),
                     daemon=True).start()
    deadline = time.monotonic() + 20
    while not (data / "blobs" / "sha256" / hexdigest).exists():
        assert time.monotonic() < deadline, "the publish never wrote its blob"
        time.sleep(0.02)
    time.sleep(0.2)
    second.kill()
    assert (data / "blobs" / "sha256" / hexdigest).exists()  # the orphan the restart must remove
    if bundle_file:
        assert (data / "bundles" / "sha256" / bundle_file).read_bytes() == envelope  # and its bundle
    assert sqlite3.connect(data / "registry.db").execute("SELECT COUNT(*) FROM versions").fetchone() == (0,)

    third = start(data=data)
    assert stored_files(data) == {"blobs/sha256": [], "bundles/sha256": [], "tmp": []}
    assert third.get("/index/test/echo").status == 404 and third.get(f"/blobs/sha256/{hexdigest}").status == 404
    if bundle_file:
        assert third.get(f"/bundles/sha256/{bundle_file}").status == 404
    assert third.publish(token, manifest("test/echo", "1.0.0"), modules["c"], envelope, kind).status == 201
    assert third.get(f"/blobs/sha256/{hexdigest}").body == modules["c"]
    [line] = lines_of(third.get("/index/test/echo"))
    if bundle_file:
        assert line["signature"]["bundle"] == f"bundles/sha256/{bundle_file}"
        assert third.get(f"/bundles/sha256/{bundle_file}").body == envelope
        assert stored_files(data) == {"blobs/sha256": [hexdigest], "bundles/sha256": [bundle_file], "tmp": []}


def _ignore_errors(function: Any, *args: Any, **kwargs: Any) -> None:
    with contextlib.suppress(OSError):  # the server is killed while this request waits
        function(*args, **kwargs)


def test_yank_and_unyank_rewrite_only_yanked(server: Server, modules: dict[str, bytes]) -> None:
    token = server.token("test")
    assert server.publish(token, manifest("test/echo", "1.0.0"), modules["c"]).status == 201
    assert server.publish(token, manifest("test/echo", "1.1.0"), modules["zig"]).status == 201
    original = server.get("/index/test/echo")
    etags = {original.headers["etag"]}
    for yanked in (True, "CVE-2026-0001: use 1.0.0", False):
        answer = server.yank(token, "test/echo", "1.1", yanked)  # PEP 440: 1.1 is 1.1.0
        assert answer.status == 200 and answer.json() == {"name": "test/echo", "version": "1.1.0", "yanked": yanked}
        now = server.get("/index/test/echo")
        before, after = lines_of(original), lines_of(now)
        assert after[0] == before[0] and after[1] == {**before[1], "yanked": yanked}
        etags.add(now.headers["etag"])
        latest = json.loads(server.get("/names").body)["latest"]
        assert latest == ("1.0.0" if yanked else "1.1.0")
    assert server.get("/index/test/echo").body == original.body and len(etags) == 3
    assert server.yank(token, "test/echo", "2.0.0", True).status == 404
    assert server.yank(token, "test/echo", "1.0.0", "").status == 422
    assert server.yank(token, "test/Echo", "1.0.0", True).status == 422


def test_export_is_what_cspm_index_build_writes_and_what_the_server_serves(
        tmp_path: Path, server: Server, modules: dict[str, bytes]) -> None:
    sources = tmp_path / "src"
    for name, version, lang in (("test/echo", "1.0.0", "c"), ("test/echo", "1.1.0", "zig"),
                                ("test/boss", "1.0.0", "c")):
        folder = sources / f"{name.split('/')[1]}-{version}"
        folder.mkdir(parents=True)
        (folder / "m.wasm").write_bytes(modules[lang])
        (folder / "plugin.yaml").write_text(yaml.safe_dump(manifest(name, version, kind="tool")))
    demo = sources / "demo"
    demo.mkdir()
    (demo / "plugin.yaml").write_text("name: test/demo\nversion: 1.0.0\nkind: app\nabi: 1\napp: app.yaml\n"
                                      "description: a demo app\n")
    (demo / "app.yaml").write_text("entry: boss\ntools:\n  - {name: echo, plugin: \"test/echo@~1.0\"}\n"
                                   "agents:\n  - {name: boss, plugin: \"test/boss@^1\", tools: [echo]}\n")
    built = tmp_path / "built"
    from_sources.build([sources], built, name="test")

    token = server.token("test")
    for manifest_file in sorted(sources.glob("*/plugin.yaml"), key=lambda p: p.parent.name == "demo"):
        data = yaml.safe_load(manifest_file.read_text())
        if data["kind"] == "app":  # the app package cspm packed, with its lock
            blob = next(blob.read_bytes() for blob in (built / "blobs" / "sha256").iterdir()
                        if blob.read_bytes().startswith(b'{"app.lock"'))
        else:
            blob = (manifest_file.parent / "m.wasm").read_bytes()
        assert server.publish(token, data, blob).status == 201
    assert server.yank(token, "test/echo", "1.1.0", "broken").status == 200

    out = tmp_path / "export"
    result = registry_cli("export", "--data", str(server.data), "--out", str(out))
    assert result.returncode == 0, result.stderr
    files = sorted(str(p.relative_to(out)) for p in out.rglob("*") if p.is_file())
    assert files == sorted(str(p.relative_to(built)) for p in built.rglob("*") if p.is_file())
    assert all(p.stat().st_mode & 0o777 == 0o644 for p in out.rglob("*") if p.is_file())
    assert json.loads((out / "config.json").read_text()) == {"name": "test", "dl": "blobs/sha256/{hex}", "api": None}
    assert (out / "config.json").read_bytes() == (built / "config.json").read_bytes()
    for package in ("echo", "boss", "demo"):  # what cspm writes, but for `published` and the yank
        exported = [json.loads(line) for line in (out / "index" / "test" / package).read_text().splitlines()]
        written = [json.loads(line) for line in (built / "index" / "test" / package).read_text().splitlines()]
        assert [{k: v for k, v in line.items() if k not in ("published", "yanked")} for line in exported] == \
            [{k: v for k, v in line.items() if k != "yanked"} for line in written]

    static = subprocess.Popen([sys.executable, "-u", "-m", "http.server", "0", "--bind", "127.0.0.1", "--directory",
                               str(out)], stdout=subprocess.PIPE, stderr=subprocess.DEVNULL, text=True)
    try:
        ready, _, _ = select.select([static.stdout], [], [], 20)
        port = int(re.search(r"port (\d+)", static.stdout.readline() if ready else "").group(1))  # type: ignore[union-attr]
        for path in files:
            if path == "config.json":
                continue
            connection = http.client.HTTPConnection("127.0.0.1", port, timeout=10)
            connection.request("GET", "/" + path)
            from_static = connection.getresponse().read()
            connection.close()
            live = server.get("/" + path, Accept_Encoding="identity")
            assert live.status == 200 and live.body == from_static, path
    finally:
        static.terminate()
        static.wait(10)
        if static.stdout:
            static.stdout.close()


# -- signatures: verified against the namespace's trusted publishers (`cspm-registry trust`)


def refused(answer: Answer, expected: str) -> None:
    """A 422 `signature` whose message says `expected`."""
    code, message = answer.error()
    assert (answer.status, code) == (422, "signature") and expected in message, answer.body


def signature_of(answer: Answer) -> dict[str, Any] | None:
    """The published line's signature, after checking the line is one cspm reads and the one served."""
    assert answer.status == 201, answer.body
    line = answer.json()["line"]
    from_dict(line, line["name"], "index line")
    return line["signature"]


@pytest.fixture
def keys(tmp_path: Path) -> dict[str, tuple[bytes, str]]:
    """Two ed25519 key pairs, as `cspm keygen` writes them: name -> (private PEM, public)."""
    pairs = {}
    for name in ("good", "other"):
        public = keygen(tmp_path / f"{name}.pem")
        pairs[name] = ((tmp_path / f"{name}.pem").read_bytes(), public)
    return pairs


def test_keyed_publishes_are_verified_against_the_namespaces_keys(
        server: Server, modules: dict[str, bytes], keys: dict[str, tuple[bytes, str]]) -> None:
    (good_pem, good), (other_pem, other) = keys["good"], keys["other"]
    server.trust("set", "--namespace", "priv", "--key", good)
    token = server.token("priv", "open")
    c, zig = modules["c"], modules["zig"]
    data = manifest("priv/echo", "1.0.0")

    refused(server.publish(token, data, c), f"priv/echo 1.0.0 is not signed, but the trust policy for priv/* "
                                            f"requires a signature by key {key_id(good)}")
    wrong_key, _ = sign_keyed(other_pem, "priv/echo", "1.0.0", digest_of(c))
    refused(server.publish(token, data, c, wrong_key, "dsse-ed25519"),
            f"signed by key {key_id(other)}, expected one of {key_id(good)}")
    other_name, _ = sign_keyed(good_pem, "priv/other", "1.0.0", digest_of(c))
    refused(server.publish(token, data, c, other_name, "dsse-ed25519"), "the signature is for priv/other, not "
                                                                        "priv/echo")
    other_blob, _ = sign_keyed(good_pem, "priv/echo", "1.0.0", digest_of(zig))
    refused(server.publish(token, data, c, other_blob, "dsse-ed25519"),
            f"the signature is for {digest_of(zig)}, not for this blob ({digest_of(c)})")
    envelope, _ = sign_keyed(good_pem, "priv/echo", "1.0.0", digest_of(c))
    refused(server.publish(token, data, c, envelope, "sigstore"), "not a Sigstore bundle")
    refused(server.publish(token, data, c, envelope, "pgp"), "unknown signature kind 'pgp'")
    refused(server.publish(token, data, c, b"{nonsense", "dsse-ed25519"), "not a DSSE envelope")
    assert server.get("/index/priv/echo").status == 404
    assert stored_files(server.data) == {"blobs/sha256": [], "bundles/sha256": [], "tmp": []}

    bundle_file = f"{hashlib.sha256(envelope).hexdigest()}.dsse.json"
    answer = server.publish(token, data, c, envelope, "dsse-ed25519")
    assert signature_of(answer) == {"kind": "dsse-ed25519", "bundle": f"bundles/sha256/{bundle_file}",
                                    "issuer": KEY_ISSUER, "identity": key_id(good)}
    [line] = lines_of(server.get("/index/priv/echo"))
    assert line == answer.json()["line"]
    served = server.get(f"/bundles/sha256/{bundle_file}")
    assert served.status == 200 and served.body == envelope
    assert served.headers["cache-control"] == "public, max-age=31536000, immutable"
    assert served.headers["content-type"] == "application/json"
    assert served.headers["etag"] == f'"{bundle_file.split(".")[0]}"'
    assert server.get(f"/bundles/sha256/{bundle_file}", If_None_Match=served.headers["etag"]).status == 304
    assert server.get(f"/bundles/sha256/{bundle_file.replace('.dsse.', '.sigstore.')}").status == 404
    assert stored_files(server.data) == {"blobs/sha256": [digest_of(c)[7:]], "bundles/sha256": [bundle_file],
                                         "tmp": []}
    # the same blob again, as a new version with its own envelope: both bundles stay, each line names its own
    again, _ = sign_keyed(good_pem, "priv/echo", "1.0.1", digest_of(c))
    signature = signature_of(server.publish(token, manifest("priv/echo", "1.0.1"), c, again, "dsse-ed25519"))
    assert signature is not None
    assert signature["bundle"] == f"bundles/sha256/{hashlib.sha256(again).hexdigest()}.dsse.json"
    assert server.get("/" + signature["bundle"]).body == again
    assert len(stored_files(server.data)["bundles/sha256"]) == 2

    # a namespace without trusted publishers takes unsigned publishes; a key it does not know, it cannot check
    assert signature_of(server.publish(token, manifest("open/echo", "1.0.0"), c)) is None
    open_envelope, _ = sign_keyed(good_pem, "open/echo", "1.1.0", digest_of(c))
    refused(server.publish(token, manifest("open/echo", "1.1.0"), c, open_envelope, "dsse-ed25519"),
            "this registry trusts no key for namespace 'open': its operator adds the publisher's public key with "
            "`cspm-registry trust set --namespace open --key ed25519:<hex>`")
    # --optional: unsigned is fine, but a signature must still be a trusted one
    server.trust("set", "--namespace", "open", "--key", good, "--optional")
    assert signature_of(server.publish(token, manifest("open/echo", "1.1.0"), c)) is None
    by_other, _ = sign_keyed(other_pem, "open/echo", "1.2.0", digest_of(c))
    refused(server.publish(token, manifest("open/echo", "1.2.0"), c, by_other, "dsse-ed25519"),
            f"signed by key {key_id(other)}, expected one of {key_id(good)}")
    by_good, _ = sign_keyed(good_pem, "open/echo", "1.2.0", digest_of(c))
    assert signature_of(server.publish(token, manifest("open/echo", "1.2.0"), c, by_good, "dsse-ed25519")) == {
        "kind": "dsse-ed25519", "bundle": f"bundles/sha256/{hashlib.sha256(by_good).hexdigest()}.dsse.json",
        "issuer": KEY_ISSUER, "identity": key_id(good)}


def test_trust_commands_publish_the_policy_in_config_json(server: Server) -> None:
    issuer, identity = "https://token.actions.githubusercontent.com", \
        "https://github.com/acme/*/.github/workflows/release.yml@refs/tags/*"
    key = "ed25519:" + "AB" * 32
    before = server.get("/config.json")
    server.trust("set", "--namespace", "acme", "--issuer", issuer, "--identity", identity)
    server.trust("set", "--namespace", "priv", "--key", key, "--optional")
    policy = {"acme/*": {"issuer": issuer, "identity": identity, "require": True},
              "priv/*": {"keys": [key.lower()], "require": False}}
    after = server.get("/config.json")  # the running server sees the change at once
    assert after.json() == {"name": "test", "dl": "blobs/sha256/{hex}", "api": "api/v1", "policy": policy}
    assert after.headers["etag"] != before.headers["etag"]
    assert server.get("/config.json", If_None_Match=before.headers["etag"]).status == 200
    assert json.loads(server.trust("list", "--json").stdout) == policy
    listed = server.trust("list").stdout
    assert f"acme/*: identity {identity} at issuer {issuer}; signature required" in listed
    assert f"priv/*: key {key.lower()} (id {key_id(key.lower())}); signature optional" in listed
    # what cspm makes of it: the same rules the server applies
    rule = rule_for("acme/calc", {}, after.json()["policy"])
    assert rule is not None and (rule.pattern, rule.issuer, rule.identity, rule.require) == \
        ("acme/*", issuer, identity, True)
    assert rule_for("priv/x", after.json()["policy"]).keys == (key.lower(),)  # type: ignore[union-attr]

    server.trust("set", "--namespace", "acme", "--issuer", issuer, ok=False)
    server.trust("set", "--namespace", "acme", "--key", "ed25519:1234", ok=False)
    server.trust("set", "--namespace", "acme", ok=False)
    server.trust("set", "--namespace", "Bad_NS", "--key", key, ok=False)
    server.trust("remove", "--namespace", "nobody", ok=False)
    server.trust("remove", "--namespace", "priv")
    assert server.get("/config.json").json()["policy"] == {"acme/*": policy["acme/*"]}
    server.trust("remove", "--namespace", "acme")
    assert server.get("/config.json").json() == {"name": "test", "dl": "blobs/sha256/{hex}", "api": "api/v1"}


@pytest.fixture
def sigstore_trust(sigstore_stack: Any, tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> Path:
    """The local Sigstore stack's trust config, for signing here and for the server (its environment)."""
    config = tmp_path / "sigstore-trust.json"
    config.write_text(sigstore_stack.trust_config_json)
    monkeypatch.setenv("CSPM_SIGSTORE_TRUST_CONFIG", str(config))
    return config


def test_sigstore_publishes_are_verified_against_the_namespaces_identity(
        start: Any, modules: dict[str, bytes], sigstore_stack: Any, sigstore_trust: Path) -> None:
    server = start(env={"CSPM_SIGSTORE_TRUST_CONFIG": str(sigstore_trust)})
    stack = sigstore_stack
    server.trust("set", "--namespace", "acme", "--issuer", stack.issuer, "--identity", "*@acme.example")
    token = server.token("acme", "open")
    c, zig = modules["c"], modules["zig"]
    data = manifest("acme/echo", "1.0.0")

    def signed(blob: bytes, email: str, issuer: str | None = None) -> bytes:
        return sign_sigstore(blob, stack.mint_token(email=email, issuer=issuer))

    refused(server.publish(token, data, c), f"acme/echo 1.0.0 is not signed, but the trust policy for acme/* "
                                            f"requires a signature by *@acme.example ({stack.issuer})")
    refused(server.publish(token, data, c, signed(c, "mallory@evil.example"), "sigstore"),
            f"acme/echo 1.0.0 is signed by mallory@evil.example ({stack.issuer}), but the trust policy for acme/* "
            f"expects *@acme.example ({stack.issuer})")
    refused(server.publish(token, data, c, signed(c, "ci@acme.example", stack.other_issuer), "sigstore"),
            f"is signed by ci@acme.example ({stack.other_issuer}), but the trust policy for acme/* expects "
            f"*@acme.example ({stack.issuer})")
    refused(server.publish(token, data, c, signed(zig, "ci@acme.example"), "sigstore"),
            f"the Sigstore bundle does not verify for this blob ({digest_of(c)})")
    refused(server.publish(token, data, c, b"{}", "sigstore"), "not a Sigstore bundle")
    assert stored_files(server.data) == {"blobs/sha256": [], "bundles/sha256": [], "tmp": []}

    bundle = signed(c, "ci@acme.example")
    bundle_path = f"bundles/sha256/{hashlib.sha256(bundle).hexdigest()}.sigstore.json"
    answer = server.publish(token, data, c, bundle, "sigstore")
    assert signature_of(answer) == {"kind": "sigstore", "bundle": bundle_path, "issuer": stack.issuer,
                                    "identity": "ci@acme.example"}
    assert lines_of(server.get("/index/acme/echo")) == [answer.json()["line"]]
    served = server.get("/" + bundle_path)
    assert served.status == 200 and served.body == bundle
    assert served.headers["cache-control"] == "public, max-age=31536000, immutable"

    # no trusted publishers for `open`: any valid signature is taken (and recorded, for the lock to pin)
    answer = server.publish(token, manifest("open/echo", "1.0.0"), c, signed(c, "someone@else.example"),
                            "sigstore")
    assert signature_of(answer) == {"kind": "sigstore", "bundle": answer.json()["line"]["signature"]["bundle"],
                                    "issuer": stack.issuer, "identity": "someone@else.example"}
    refused(server.publish(token, manifest("open/echo", "1.1.0"), c, signed(zig, "someone@else.example"),
                           "sigstore"), "does not verify for this blob")
    assert len(stored_files(server.data)["bundles/sha256"]) == 2


def test_export_carries_bundles_and_the_policy(tmp_path: Path, server: Server, modules: dict[str, bytes],
                                               keys: dict[str, tuple[bytes, str]]) -> None:
    private, public = keys["good"]
    server.trust("set", "--namespace", "priv", "--key", public)
    token = server.token("priv", "test")
    envelope, _ = sign_keyed(private, "priv/echo", "1.0.0", digest_of(modules["c"]))
    assert server.publish(token, manifest("priv/echo", "1.0.0"), modules["c"], envelope, "dsse-ed25519").status == 201
    assert server.publish(token, manifest("test/echo", "1.0.0"), modules["zig"]).status == 201

    out = tmp_path / "export"
    result = registry_cli("export", "--data", str(server.data), "--out", str(out))
    assert result.returncode == 0, result.stderr
    assert "1 signature bundle to" in result.stderr
    bundle = f"bundles/sha256/{hashlib.sha256(envelope).hexdigest()}.dsse.json"
    files = sorted(str(p.relative_to(out)) for p in out.rglob("*") if p.is_file())
    blobs = [f"blobs/sha256/{digest_of(modules[lang])[7:]}" for lang in ("c", "zig")]
    assert files == sorted(["config.json", "names", "index/priv/echo", "index/test/echo", bundle, *blobs])
    assert (out / bundle).read_bytes() == envelope and (out / bundle).stat().st_mode & 0o777 == 0o644
    config = json.loads((out / "config.json").read_text())
    assert config == {**server.get("/config.json").json(), "api": None}
    assert config["policy"] == {"priv/*": {"keys": [public], "require": True}}
    for path in files:
        if path != "config.json":
            assert server.get("/" + path, Accept_Encoding="identity").body == (out / path).read_bytes(), path
    [line] = [json.loads(text) for text in (out / "index" / "priv" / "echo").read_text().splitlines()]
    assert line["signature"]["bundle"] == bundle and from_dict(line, "priv/echo", "export").signature


def test_a_policy_changed_while_a_publish_was_checked_is_applied_before_it_commits(
        tmp_path: Path, modules: dict[str, bytes]) -> None:
    """The server checks a publish against the policy it read, then commits; `trust set` in between must win."""
    from cspm_registry.storage import Storage, Token

    storage = Storage(tmp_path / "data")
    line = build.index_line(manifest_format.from_dict(manifest("test/echo", "1.0.0"), "plugin.yaml"), modules["c"],
                            published="2026-01-01T00:00:00Z")
    token = Token(1, frozenset({"test"}), True, False)
    checked_against = storage.policy("test")  # {}: no trusted publishers yet
    storage.set_trust("test", issuer=None, identity=None, keys=["ed25519:" + "ab" * 32], require=True)
    seen: list[dict[str, Any]] = []

    def recheck(policy: dict[str, Any]) -> None:
        seen.append(policy)
        raise RuntimeError("unsigned, but now required")

    with pytest.raises(RuntimeError, match="now required"):
        storage.publish(line, modules["c"], token, policy=checked_against, recheck=recheck)
    assert seen == [storage.policy("test")] and not storage.exists("test/echo", "1.0.0")
    assert stored_files(tmp_path / "data") == {"blobs/sha256": [], "bundles/sha256": [], "tmp": []}
    storage.publish(line, modules["c"], token, policy=storage.policy("test"), recheck=recheck)  # unchanged: no recheck
    assert storage.exists("test/echo", "1.0.0") and len(seen) == 1
