"""The registry server on PostgreSQL + S3 (SeaweedFS), with replicas: real servers on loopback.

One throwaway PostgreSQL cluster and one SeaweedFS for the module; three (and a fourth, killed)
`cspm-registry serve --db … --blobs s3://… --static DIR` subprocesses share them. What is checked is
what docs/registry.md promises of replicas: exactly one of concurrent publishes of a version wins; a
replica SIGKILLed between blob and row leaves nothing visible, and only an orphan the sweeper removes
once it is older than the grace; PostgreSQL restarted and S3 stopped are 503s that commit nothing,
and the next request after they are back succeeds; the write-through static tree is, file for file,
what the API serves, and a cspm client reading it installs a complete version.
"""

from __future__ import annotations

import concurrent.futures
import hashlib
import http.client
import json
import os
import re
import select
import signal
import subprocess
import threading
import time
import urllib.error
import urllib.request
from collections.abc import Iterator
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer
from pathlib import Path
from typing import Any

import pytest
from cspm_registry.blobs_s3 import S3Blobs
from cspm_registry.metadata import Exists, Token
from cspm_registry.metadata_postgres import PostgresMetadata
from cspm_registry.static import FolderStatic, S3Static
from cspm_registry.storage import Storage

from cspm.formats import manifest as manifest_format
from cspm.index import build
from cspm.protocol import layout
from tests.conftest import conformance_wasm
from tests.postgres_support import Cluster
from tests.registry_support import REGISTRY, Answer, digest_of, manifest, publish_body, registry_cli
from tests.s3_support import BUCKET, SeaweedFS, seaweedfs  # noqa: F401  (a fixture)

pytest.importorskip("psycopg", reason="the cloud extra: pip install -e 'registry-server[cloud]'")
pytest.importorskip("boto3", reason="the cloud extra: pip install -e 'registry-server[cloud]'")

PREFIX = "reg"
TOKEN = Token(1, frozenset({"test"}), True, False)


@pytest.fixture(scope="module")
def cluster() -> Iterator[Cluster]:
    """A cluster of this module's own: a test stops and starts it."""
    found = Cluster()
    yield found
    found.remove()


@pytest.fixture
def db(cluster: Cluster) -> str:
    return cluster.new_database()


def module(lang: str) -> bytes:
    return conformance_wasm(lang).read_bytes()


class Replica:
    """`cspm-registry serve --db … --blobs …` in a subprocess on 127.0.0.1 (port chosen by the OS)."""

    def __init__(self, log: Path, *args: str, env: dict[str, str]) -> None:
        assert REGISTRY is not None, "cspm-registry is not installed"
        self.log = log
        with log.open("ab") as out:
            self.proc = subprocess.Popen([REGISTRY, "serve", "--port", "0", "--name", "test", *args],
                                         stdout=subprocess.PIPE, stderr=out, env={**os.environ, **env})
        assert self.proc.stdout is not None
        ready, _, _ = select.select([self.proc.stdout], [], [], 30)
        line = self.proc.stdout.readline().decode() if ready else ""
        match = re.search(r"http://127\.0\.0\.1:(\d+)/", line)
        if not match:
            self.proc.kill()
            pytest.fail(f"the replica did not start: {line!r}\n{log.read_text()}")
        self.port = int(match.group(1))
        self.url = f"http://127.0.0.1:{self.port}"

    def request(self, method: str, path: str, body: bytes | None = None, token: str | None = None) -> Answer:
        connection = http.client.HTTPConnection("127.0.0.1", self.port, timeout=60)
        try:
            connection.request(method, path, body=body, headers={"Authorization": f"Bearer {token}"} if token else {})
            response = connection.getresponse()
            return Answer(response.status, {k.lower(): v for k, v in response.getheaders()}, response.read())
        finally:
            connection.close()

    def publish(self, token: str, version: str, blob: bytes, name: str = "test/echo") -> Answer:
        return self.request("PUT", "/api/v1/publish", publish_body(manifest(name, version), blob), token)

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
        assert self.proc.stdout is not None
        self.proc.stdout.close()


def versions(answer: Answer) -> list[str]:
    assert answer.status == 200, answer.body
    return [json.loads(line)["version"] for line in answer.body.decode().splitlines()]


def cli(*args: str, env: dict[str, str]) -> subprocess.CompletedProcess[str]:
    assert REGISTRY is not None
    return subprocess.run([REGISTRY, *args], capture_output=True, text=True, timeout=60, env={**os.environ, **env})


# -- the stores themselves, in this process


def test_postgres_and_s3_keep_the_storage_invariants(db: str, seaweedfs: SeaweedFS,  # noqa: F811
                                                     monkeypatch: pytest.MonkeyPatch) -> None:
    for key, value in seaweedfs.env().items():
        monkeypatch.setenv(key, value)
    prefix = "inproc"
    url = f"s3://{BUCKET}/{prefix}"
    PostgresMetadata(db)  # the schema, once; then twice more at once, as replicas starting together
    with concurrent.futures.ThreadPoolExecutor(4) as pool:
        list(pool.map(lambda _: PostgresMetadata(db).close(), range(4)))
    barrier = threading.Barrier(3)

    class Gate(S3Blobs):
        def stage(self, data: bytes, key: str | None = None) -> Any:
            staged = super().stage(data, key)
            barrier.wait(timeout=30)
            return staged

    def line(version: str, blob: bytes) -> dict[str, Any]:
        data = manifest("test/echo", version)
        return build.index_line(manifest_format.from_dict(data, "plugin.yaml"), blob, published="2026-01-01T00:00:00Z")

    blobs = [module("c"), module("zig"), module("assemblyscript")]
    results: list[str] = []

    def publish(blob: bytes) -> None:  # each its own stores, as three replicas would have
        storage = Storage(None, meta=PostgresMetadata(db), blob_store=Gate(url))
        try:
            storage.publish(line("1.0.0", blob), blob, TOKEN)
            results.append(digest_of(blob))
        except Exists:
            results.append("exists")

    threads = [threading.Thread(target=publish, args=(blob,)) for blob in blobs]
    for thread in threads:
        thread.start()
    for thread in threads:
        thread.join(60)
    winners = [r for r in results if r != "exists"]
    assert len(results) == 3 and len(winners) == 1, results
    storage = Storage(None, meta=PostgresMetadata(db), blob_store=S3Blobs(url))
    index = storage.index_file("test/echo")
    assert index is not None and json.loads(index.body)["digest"] == winners[0]
    # the losers' staged blobs are orphans: kept while younger than the grace, swept after it
    stored = seaweedfs.keys(f"{prefix}/blobs/")
    assert len(stored) == 3
    assert storage.sweep(grace=3600) == []
    assert storage.sweep(grace=0) == sorted(f"blobs/sha256/{digest_of(b)[7:]}" for b in blobs
                                            if digest_of(b) != winners[0])
    assert seaweedfs.keys(f"{prefix}/blobs/") == [f"{prefix}/blobs/sha256/{winners[0][7:]}"]
    # a put inside the transaction brings back a staged blob a sweep took meanwhile
    orphan = module("rust")
    key = layout.blob_path(digest_of(orphan))
    staged = storage.blob_store.stage(orphan, key)
    assert storage.sweep(grace=0) == [key]
    storage.publish(line("1.1.0", orphan), orphan, TOKEN)
    assert storage.blob_store.size(key) == len(orphan)
    assert storage.blob_store.put(staged, key) is False  # present: nothing brought, nothing to undo
    assert storage.sweep(grace=0) == []


@pytest.mark.parametrize("kind", ["folder", "s3"])
def test_the_static_tree_keeps_the_newest_generation(kind: str, tmp_path: Path, seaweedfs: SeaweedFS,  # noqa: F811
                                                     monkeypatch: pytest.MonkeyPatch) -> None:
    for key, value in seaweedfs.env().items():
        monkeypatch.setenv(key, value)
    target = FolderStatic(tmp_path / "static") if kind == "folder" else S3Static(f"s3://{BUCKET}/static-{kind}")
    assert target.write("names", b"g5\n", 5) is True
    assert target.write("names", b"g3\n", 3) is False  # older: never over a newer one
    assert target.write("names", b"g5\n", 5) is False
    # writers racing with generations 6..25: the file ends as 25's, whatever the order they finish in
    with concurrent.futures.ThreadPoolExecutor(8) as pool:
        list(pool.map(lambda g: target.write("names", f"g{g}\n".encode(), g), reversed(range(6, 26))))
    if kind == "folder":
        assert (tmp_path / "static" / "names").read_bytes() == b"g25\n"
    else:
        body = seaweedfs.client().get_object(Bucket=BUCKET, Key=f"static-{kind}/names")
        assert body["Body"].read() == b"g25\n" and body["Metadata"]["cspm-generation"] == "25"
    with pytest.raises(ValueError):
        target.write("../escape", b"x", 99)


def test_a_static_tree_in_the_blobs_bucket_with_a_public_base(db: str, tmp_path: Path, seaweedfs: SeaweedFS,  # noqa: F811
                                                               monkeypatch: pytest.MonkeyPatch) -> None:
    """`--static` the same s3:// as `--blobs`: the bucket is the whole registry (index files beside blobs);
    `--public-base` puts blob downloads under it; without one the blob route gives a presigned URL."""
    for key, value in seaweedfs.env().items():
        monkeypatch.setenv(key, value)
    url = f"s3://{BUCKET}/whole"
    base = "https://cdn.example.org/whole"
    storage = Storage(None, meta=PostgresMetadata(db), blob_store=S3Blobs(url), static=S3Static(url), name="test",
                      public_base=base, same_tree=True)
    blob = module("c")
    line = build.index_line(manifest_format.from_dict(manifest("test/echo", "1.0.0"), "plugin.yaml"), blob,
                            published="2026-01-01T00:00:00Z")
    storage.publish(line, blob, TOKEN)
    client = seaweedfs.client()

    def get(path: str) -> tuple[bytes, dict[str, str]]:
        found = client.get_object(Bucket=BUCKET, Key=f"whole/{path}")
        return found["Body"].read(), found["Metadata"]

    config, meta = get("config.json")
    assert config == storage.config_file("test") and json.loads(config)["dl"] == f"{base}/blobs/sha256/{{hex}}"
    index = storage.index_file("test/echo")
    assert index is not None and get("index/test/echo")[0] == index.body
    assert get("names")[0] == storage.names_file().body
    assert meta["cspm-generation"] == get("names")[1]["cspm-generation"] == str(storage.generation())
    assert get(f"blobs/sha256/{digest_of(blob)[7:]}")[0] == blob  # the blob beside them: one tree
    assert storage.blob_path(digest_of(blob)[7:]) == f"{base}/blobs/sha256/{digest_of(blob)[7:]}"
    presigned = Storage(None, meta=PostgresMetadata(db), blob_store=S3Blobs(url)).blob_path(digest_of(blob)[7:])
    assert isinstance(presigned, str) and "X-Amz-Signature=" in presigned
    with urllib.request.urlopen(presigned, timeout=10) as answer:
        assert answer.read() == blob
    exported = registry_cli("export", "--db", db, "--blobs", url, "--out", str(tmp_path / "out"))
    assert exported.returncode == 0, exported.stderr
    assert (tmp_path / "out" / "blobs" / "sha256" / digest_of(blob)[7:]).read_bytes() == blob


def test_the_static_tree_gets_new_bundles_and_is_repaired_by_a_full_write(db: str, tmp_path: Path,
                                                                         seaweedfs: SeaweedFS,  # noqa: F811
                                                                         monkeypatch: pytest.MonkeyPatch) -> None:
    for key, value in seaweedfs.env().items():
        monkeypatch.setenv(key, value)
    url = f"s3://{BUCKET}/bundled"
    folder = tmp_path / "static"

    def storage() -> Storage:
        return Storage(None, meta=PostgresMetadata(db), blob_store=S3Blobs(url), static=FolderStatic(folder),
                       name="test", static_full_first=False)

    blob, bundle = module("c"), b'{"payloadType": "x"}'
    line = build.index_line(manifest_format.from_dict(manifest("test/echo", "1.0.0"), "plugin.yaml"), blob,
                            published="2026-01-01T00:00:00Z")
    line["signature"] = {"kind": "dsse-ed25519", "bundle": layout.bundle_path(bundle, "dsse-ed25519"),
                         "issuer": "ed25519", "identity": "ed25519:" + "cd" * 32}
    first = storage()
    first.publish(line, blob, TOKEN, bundle=bundle)
    assert (folder / line["signature"]["bundle"]).read_bytes() == bundle  # the tree serves it, not the bucket
    assert sorted(p.name for p in folder.iterdir() if not p.name.startswith(".")) == ["bundles", "index", "names"]
    # a replica that died before its static write: the next replica's first (full) write repairs it
    for path in ("names", "index/test/echo", line["signature"]["bundle"]):
        (folder / path).unlink()
    (folder / ".cspm-static.json").unlink()
    Storage(None, meta=PostgresMetadata(db), blob_store=S3Blobs(url), static=FolderStatic(folder),
            name="test").write_through()
    assert (folder / line["signature"]["bundle"]).read_bytes() == bundle
    index = first.index_file("test/echo")
    assert index is not None and (folder / "index/test/echo").read_bytes() == index.body
    assert (folder / "config.json").read_bytes() == first.config_file("test")


def test_command_line_errors_are_words(tmp_path: Path) -> None:
    cases = [
        (["serve", "--db", "mysql://x/y", "--blobs", "s3://cspm/x"], "expected a postgresql://"),
        (["serve", "--db", "postgresql://u@/x", "--blobs", "/tmp/x"], "expected s3://BUCKET/PREFIX"),
        (["serve", "--data", str(tmp_path / "d"), "--blobs", "s3://cspm/x"], "--blobs goes with --db"),
        (["serve"], "give --data DIR, or --db"),
        (["serve", "--db", "postgresql://u@/x?host=/nonexistent", "--blobs", "s3://cspm/x"],
         "the registry database (/nonexistent"),
        (["token", "list", "--data", str(tmp_path / "d"), "--db", "postgresql://u@/x"], "give --data DIR, or --db"),
    ]
    for args, said in cases:
        result = registry_cli(*args)
        assert result.returncode == 1 and said in result.stderr and "Traceback" not in result.stderr, \
            (args, result.stderr)


# -- replicas


class Reader:
    """A reader of the static tree all along: every line an index file shows must have its blob, whole
    (fetched through a replica's presigned redirect); an outage (503, a refused connection) is no fault."""

    def __init__(self, static: Path, replicas: list[Replica]) -> None:
        self.static, self.replicas = static, replicas
        self.faults: list[str] = []
        self.checked: set[str] = set()
        self.done = threading.Event()
        self.thread = threading.Thread(target=self.run, daemon=True)
        self.thread.start()

    def run(self) -> None:
        while not self.done.wait(0.1):
            self.check()
        self.check()  # once more after the last change

    def check(self) -> None:
        try:
            text = (self.static / "index/test/echo").read_text()
        except FileNotFoundError:
            return
        for raw in text.splitlines():
            try:
                line = json.loads(raw)
            except ValueError:
                self.faults.append(f"a torn index file: {text!r}")
                continue
            if line["digest"] in self.checked:
                continue
            url = f"{self.replicas[0].url}/blobs/sha256/{line['digest'][7:]}"
            try:
                with urllib.request.urlopen(url, timeout=10) as answer:
                    body = answer.read()
            except urllib.error.HTTPError as exc:
                if exc.code != 503:
                    self.faults.append(f"{line['version']} is listed, its blob is {exc.code} at {exc.url}")
                continue
            except OSError:
                continue  # S3 or the replica unreachable: an outage, not a half-published version
            if "sha256:" + hashlib.sha256(body).hexdigest() != line["digest"]:
                self.faults.append(f"{line['version']}: the blob is not whole")
            self.checked.add(line["digest"])

    def stop(self) -> list[str]:
        self.done.set()
        self.thread.join(30)
        return self.faults


class StaticSite:
    """The static tree as nginx would serve it (docs/registry.md's sample): files from the folder, and
    /blobs/ and /bundles/ sent on to a replica (which redirects to a presigned URL of the bucket)."""

    def __init__(self, root: Path, upstream: str) -> None:
        site = self

        class Handler(BaseHTTPRequestHandler):
            def do_GET(self) -> None:
                path = self.path.split("?", 1)[0].lstrip("/")
                if path.startswith(("blobs/", "bundles/")):
                    self.send_response(302)
                    self.send_header("Location", f"{site.upstream}/{path}")
                    self.send_header("Content-Length", "0")
                    self.end_headers()
                    return
                file = (root / path).resolve()
                if root.resolve() not in file.parents or not file.is_file() or file.name.startswith("."):
                    self.send_error(404)
                    return
                body = file.read_bytes()
                self.send_response(200)
                self.send_header("Content-Length", str(len(body)))
                self.end_headers()
                self.wfile.write(body)

            def log_message(self, *args: object) -> None:
                pass

        self.upstream = upstream
        self.server = ThreadingHTTPServer(("127.0.0.1", 0), Handler)
        self.url = f"http://127.0.0.1:{self.server.server_address[1]}"
        threading.Thread(target=self.server.serve_forever, daemon=True).start()

    def close(self) -> None:
        self.server.shutdown()
        self.server.server_close()


def test_three_replicas_on_postgres_and_s3(tmp_path: Path, db: str, cluster: Cluster,
                                           seaweedfs: SeaweedFS) -> None:  # noqa: F811
    env = seaweedfs.env()
    static = tmp_path / "static"
    blobs_url = f"s3://{BUCKET}/{PREFIX}"
    args = ["--db", db, "--blobs", blobs_url, "--static", str(static), "--grace", "3600"]
    replicas: list[Replica] = []

    def start(extra_env: dict[str, str] | None = None) -> Replica:
        replica = Replica(tmp_path / f"replica-{len(replicas)}.log", *args, env={**env, **(extra_env or {})})
        replicas.append(replica)
        return replica

    try:
        with concurrent.futures.ThreadPoolExecutor(3) as pool:  # three replicas start at once on an empty database
            three = list(pool.map(lambda _: start(), range(3)))
        reader = Reader(static, three)
        made = cli("token", "create", "--db", db, "--namespace", "test", "--publish", env=env)
        assert made.returncode == 0, made.stderr
        token = made.stdout.strip()

        # concurrent publishes of one version from all three: exactly one wins, the others are 409 `exists`
        blobs = [module("c"), module("zig"), module("assemblyscript")]
        with concurrent.futures.ThreadPoolExecutor(3) as pool:
            answers = list(pool.map(lambda replica, blob: replica.publish(token, "1.0.0", blob), three, blobs))
        assert sorted(a.status for a in answers) == [201, 409, 409], [a.body for a in answers]
        assert {a.error()[0] for a in answers if a.status == 409} == {"exists"}
        winner = next(a for a in answers if a.status == 201).json()["digest"]
        for replica in three:
            assert versions(replica.request("GET", "/index/test/echo")) == ["1.0.0"]

        # a replica SIGKILLed between its blob and its row: nothing visible, an orphan blob the sweeper
        # keeps while it is younger than the grace and removes after
        paused = start({"CSPM_REGISTRY_TEST_PAUSE_AFTER_BLOB": "30"})
        orphan = module("rust")
        orphan_key = f"{PREFIX}/blobs/sha256/{hashlib.sha256(orphan).hexdigest()}"
        killed = concurrent.futures.ThreadPoolExecutor(1).submit(paused.publish, token, "1.1.0", orphan)
        deadline = time.monotonic() + 20
        while "test hook: paused after the blob" not in paused.log.read_text():
            assert time.monotonic() < deadline, paused.log.read_text()
            time.sleep(0.05)
        assert orphan_key in seaweedfs.keys(f"{PREFIX}/blobs/")
        paused.kill()
        with pytest.raises(OSError):
            killed.result(30)
        assert versions(three[0].request("GET", "/index/test/echo")) == ["1.0.0"]
        assert three[1].request("GET", f"/blobs/sha256/{orphan_key.rsplit('/', 1)[1]}").status == 404
        swept = cli("sweep", "--db", db, "--blobs", blobs_url, "--grace", "3600", env=env)
        assert swept.returncode == 0 and swept.stdout == "", swept.stderr
        assert orphan_key in seaweedfs.keys(f"{PREFIX}/blobs/")
        time.sleep(1.1)
        swept = cli("sweep", "--db", db, "--blobs", blobs_url, "--grace", "1", env=env)
        assert swept.returncode == 0, swept.stderr
        assert orphan_key.split("/", 1)[1] in swept.stdout.split()
        assert orphan_key not in seaweedfs.keys(f"{PREFIX}/blobs/")
        assert f"{PREFIX}/blobs/sha256/{winner[7:]}" in seaweedfs.keys(f"{PREFIX}/blobs/")

        # PostgreSQL restarted: 503 while it is down (nothing committed), then the next request reconnects
        cluster.stop()
        try:
            down = three[0].publish(token, "1.2.0", module("c"))
            assert down.status == 503 and down.error()[0] == "unavailable", down.body
            assert "the registry database" in down.error()[1] and down.headers.get("retry-after")
            assert three[1].request("GET", "/names").status == 503
        finally:
            cluster.start()
        assert three[0].publish(token, "1.2.0", module("c")).status == 201
        assert versions(three[1].request("GET", "/index/test/echo")) == ["1.0.0", "1.2.0"]

        # S3 stopped: 503 and no row; back: the same publish succeeds
        seaweedfs.stop()
        try:
            down = three[2].publish(token, "1.3.0", module("zig"))
            assert down.status == 503 and "the blob store" in down.error()[1], down.body
        finally:
            seaweedfs.start()
        assert versions(three[0].request("GET", "/index/test/echo")) == ["1.0.0", "1.2.0"]
        assert three[2].publish(token, "1.3.0", module("zig")).status == 201

        # a yank and a trust change reach the static tree too
        yanked = three[1].request("POST", "/api/v1/yank", json.dumps(
            {"name": "test/echo", "version": "1.2.0", "yanked": "broken"}).encode(), token)
        assert yanked.status == 200, yanked.body
        key = "ed25519:" + "ab" * 32
        trusted = cli("trust", "set", "--db", db, "--namespace", "other", "--key", key, env=env)
        assert trusted.returncode == 0, trusted.stderr

        # the static tree is what the API serves, file for file
        for path in ("config.json", "names", "index/test/echo"):
            served = three[0].request("GET", f"/{path}")
            assert served.status == 200 and (static / path).read_bytes() == served.body, path
        assert json.loads((static / "config.json").read_bytes())["policy"]["other/*"]["keys"] == [key]
        assert sorted(p.name for p in static.iterdir() if not p.name.startswith(".")) == \
            ["config.json", "index", "names"]

        assert reader.stop() == []
        listed = (static / "index/test/echo").read_text().splitlines()
        assert reader.checked == {json.loads(line)["digest"] for line in listed}  # each listed version seen whole

        # a client reading the static tree (blobs through a replica's presigned redirect) installs 1.3.0
        site = StaticSite(static, three[1].url)
        try:
            app = tmp_path / "proj" / "app.yaml"
            app.parent.mkdir()
            app.write_text('entry: echo\ntools:\n  - {name: echo, plugin: "test/echo@^1", config: {kind: tool}}\n')
            added = subprocess.run(["cspm", "registry", "add", "cdn", site.url, "--first"], capture_output=True,
                                   text=True, timeout=60)
            assert added.returncode == 0, added.stderr
            installed = subprocess.run(["cspm", "install", str(app), "--json"], capture_output=True, text=True,
                                       timeout=120)
            assert installed.returncode == 0, installed.stdout + installed.stderr
            plugins = json.loads(installed.stdout)["plugins"]
            assert [(p["name"], p["version"]) for p in plugins] == [("test/echo", "1.3.0")]
        finally:
            site.close()
    finally:
        for replica in replicas:
            replica.stop()
