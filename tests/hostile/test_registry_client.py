"""Hostile registries against the client: a registry that names another host for its write API or
redirects a write there (the token must never go), a folder registry whose `dl`, index files or
blobs lead out of the folder or are FIFOs, names and digests with a trailing newline, JSON nested
past any sane depth or with absurd numbers, and gzip bodies that do not decode.

Each case runs the real CLI against folder registries or loopback HTTP servers (a second server is
the "other host", and records whether a token reached it), asserts the exact refusal and exit code,
and that nothing was written.
"""

from __future__ import annotations

import json
import os
import re
import shutil
import subprocess
import sys
import threading
from collections.abc import Callable, Iterator
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer
from pathlib import Path

import pytest

from tests.conftest import ROOT
from tests.hostile.conftest import Snapshot, refused

pytestmark = pytest.mark.timeout(180)
TOKEN = "csr_" + "t" * 43
DEEP = "[" * 100_000 + "]" * 100_000  # far past Python's recursion limit
HUGE = "1" * 5000  # past int()'s 4,300-digit limit


class Host:
    """A loopback HTTP server answering from `routes` and recording every request it gets."""

    def __init__(self) -> None:
        self.routes: dict[tuple[str, str], tuple[int, dict[str, str], bytes]] = {}
        self.seen: list[tuple[str, str, dict[str, str]]] = []
        outer = self

        class Handler(BaseHTTPRequestHandler):
            protocol_version = "HTTP/1.1"

            def _answer(self) -> None:
                length = int(self.headers.get("Content-Length") or 0)
                if length:
                    self.rfile.read(length)
                outer.seen.append((self.command, self.path, {k.lower(): v for k, v in self.headers.items()}))
                status, headers, body = outer.routes.get((self.command, self.path), (404, {}, b"{}"))
                self.send_response(status)
                for key, value in {"Content-Type": "application/json", **headers}.items():
                    self.send_header(key, value)
                self.send_header("Content-Length", str(len(body)))
                self.end_headers()
                self.wfile.write(body)

            do_GET = do_PUT = do_POST = _answer

            def log_message(self, *args: object) -> None:
                pass

        self.server = ThreadingHTTPServer(("127.0.0.1", 0), Handler)
        self.server.daemon_threads = True
        self.port = self.server.server_address[1]
        self.url = f"http://127.0.0.1:{self.port}"
        threading.Thread(target=self.server.serve_forever, daemon=True).start()

    def route(self, method: str, path: str, body: bytes | str | dict = b"", status: int = 200,
              headers: dict[str, str] | None = None) -> None:
        data = json.dumps(body).encode() if isinstance(body, dict) else body
        self.routes[(method, path)] = (status, headers or {}, data.encode() if isinstance(data, str) else data)

    def tokens_seen(self) -> list[str]:
        return [headers["authorization"] for _, _, headers in self.seen if "authorization" in headers]

    def close(self) -> None:
        self.server.shutdown()
        self.server.server_close()


@pytest.fixture
def hosts() -> Iterator[Callable[[], Host]]:
    made: list[Host] = []

    def make() -> Host:
        made.append(Host())
        return made[-1]

    yield make
    for host in made:
        host.close()


@pytest.fixture(autouse=True)
def no_ambient_token(monkeypatch: pytest.MonkeyPatch) -> None:
    for name in [n for n in os.environ if n.startswith("CSPM_TOKEN")]:
        monkeypatch.delenv(name)


def use_registries(tmp_path: Path, *entries: str) -> None:
    """The test's config.yaml with these `registries` entries (YAML flow mappings)."""
    config = tmp_path / "config"
    config.mkdir(exist_ok=True)
    (config / "config.yaml").write_text("registries:\n" + "".join(f"- {e}\n" for e in entries))


def plugin_folder(tmp_path: Path, wasm: bytes, name: str = "test/echo") -> Path:
    folder = tmp_path / "plugin"
    folder.mkdir(exist_ok=True)
    (folder / "m.wasm").write_bytes(wasm)
    (folder / "plugin.yaml").write_text(f"name: {json.dumps(name)}\nversion: 1.0.0\nkind: tool\nabi: 1\n"
                                        f"wasm: m.wasm\n")
    return folder


def run(*args: str, env: dict[str, str] | None = None, timeout: float = 30) -> subprocess.CompletedProcess[str]:
    """`cspm ARGS` with a short timeout: the old client hung on a FIFO, and a hang must fail fast."""
    result = subprocess.run([sys.executable, "-m", "cspm.cli.main", *args], capture_output=True, text=True,
                            cwd=ROOT, env={**os.environ, **(env or {})}, timeout=timeout)
    assert "Traceback" not in result.stderr and "internal error" not in result.stderr, result.stderr
    return result


def blob_of(registry: Path) -> Path:
    [blob] = (registry / "blobs" / "sha256").iterdir()
    return blob


# -- 1. a registry's token goes only to the origin the user configured

def write_api_registry(host: Host, api: object) -> None:
    host.route("GET", "/config.json", {"name": "corp", "dl": "blobs/sha256/{hex}", "api": api})


@pytest.mark.parametrize("api, shown, origin", [
    ("{other}/api/v1", "{other}/api/v1/", "{other}"),
    ("//127.0.0.1:{other_port}/api/v1", "{other}/api/v1/", "{other}"),
    ("https://127.0.0.1:{port}/api", "https://127.0.0.1:{port}/api/", "https://127.0.0.1:{port}"),
], ids=["other-host", "scheme-relative", "other-scheme"])
def test_yank_and_publish_never_send_the_token_to_an_api_on_another_origin(
        tmp_path: Path, hosts: Callable[[], Host], echo_wasm: bytes, api: str, shown: str, origin: str) -> None:
    registry, other = hosts(), hosts()
    names = {"other": other.url, "other_port": other.port, "port": registry.port}
    write_api_registry(registry, api.format(**names))
    use_registries(tmp_path, f"{{name: corp, url: '{registry.url}', namespaces: [test]}}")
    for args in (("yank", "test/echo@1.0.0"), ("publish", str(plugin_folder(tmp_path, echo_wasm)), "--no-sign")):
        result = run(*args, env={"CSPM_TOKEN_CORP": TOKEN})
        assert result.returncode == 1, result.stderr
        stderr = " ".join(result.stderr.split())
        assert (f"registry corp: its config.json names the write API {shown.format(**names)}, on another origin "
                f"({origin.format(**names)}) than the registry's URL ({registry.url}); cspm sends the token of "
                f"corp only to {registry.url}") in stderr, stderr
        assert f"(`cspm registry add NAME {origin.format(**names)}`, `cspm login NAME`)" in stderr, stderr
    assert other.seen == []  # not even a connection without the token
    assert registry.tokens_seen() == []  # only config.json was read, without a token


def test_a_redirect_to_another_origin_does_not_carry_the_token(tmp_path: Path, hosts: Callable[[], Host]) -> None:
    registry, other = hosts(), hosts()
    write_api_registry(registry, "api/v1")
    registry.route("POST", "/api/v1/yank", status=307, headers={"Location": f"{other.url}/api/v1/yank"})
    other.route("POST", "/api/v1/yank", {"name": "test/echo", "version": "1.0.0", "yanked": True})
    use_registries(tmp_path, f"{{name: corp, url: '{registry.url}', namespaces: [test]}}")
    result = run("yank", "test/echo@1.0.0", env={"CSPM_TOKEN_CORP": TOKEN})
    assert result.returncode == 1, result.stderr
    assert f"its write API redirected POST to {other.url}/api/v1/yank, on another origin" in \
        " ".join(result.stderr.split()), result.stderr
    assert registry.tokens_seen() == [f"Bearer {TOKEN}"]  # the first request, on the registry's own origin
    assert other.seen == []


def test_only_307_and_308_redirects_on_the_same_origin_are_followed(tmp_path: Path,
                                                                   hosts: Callable[[], Host]) -> None:
    registry = hosts()
    write_api_registry(registry, "api/v1")
    registry.route("POST", "/api/v1/yank", status=308, headers={"Location": "/api/v2/yank"})
    registry.route("POST", "/api/v2/yank", {"name": "test/echo", "version": "1.0.0", "yanked": True})
    use_registries(tmp_path, f"{{name: corp, url: '{registry.url}', namespaces: [test]}}")
    result = run("yank", "test/echo@1.0.0", "--json", env={"CSPM_TOKEN_CORP": TOKEN})
    assert result.returncode == 0, result.stderr
    assert json.loads(result.stdout) == {"registry": "corp", "name": "test/echo", "version": "1.0.0", "yanked": True}
    assert registry.tokens_seen() == [f"Bearer {TOKEN}"] * 2
    # a 302 would turn the write into a GET: refused, not followed
    registry.route("POST", "/api/v1/yank", status=302, headers={"Location": "/api/v2/yank"})
    result = run("yank", "test/echo@1.0.0", env={"CSPM_TOKEN_CORP": TOKEN})
    assert result.returncode == 1
    assert "answered HTTP 302 (a redirect to" in result.stderr and "only for a 307 or 308 redirect" in \
        " ".join(result.stderr.split()), result.stderr
    assert len(registry.tokens_seen()) == 3


def test_a_token_with_a_line_break_is_never_sent(tmp_path: Path, hosts: Callable[[], Host]) -> None:
    registry = hosts()
    write_api_registry(registry, "api/v1")
    use_registries(tmp_path, f"{{name: corp, url: '{registry.url}', namespaces: [test]}}")
    result = run("yank", "test/echo@1.0.0", env={"CSPM_TOKEN": "csr_abcdefgh\r\nX-Injected: 1"})
    assert result.returncode == 1
    assert "the token of registry corp in $CSPM_TOKEN does not look like a registry token" in result.stderr
    assert "X-Injected" not in result.stderr and registry.tokens_seen() == []


# -- 7. a folder registry is read inside its folder, from regular files only

def install_frozen(project: Path, app_lock: str, timeout: float = 30) -> subprocess.CompletedProcess[str]:
    (project / "app.lock").write_text(app_lock)
    return run("install", str(project / "app.yaml"), "--frozen", timeout=timeout)


def test_percent_encoded_dotdot_in_dl_does_not_leave_the_folder(
        folder_registry: Callable[[], Path], project: Path, own_dirs: Path, app_lock: str, tmp_path: Path) -> None:
    registry = folder_registry()
    blob = blob_of(registry)
    outside = tmp_path / "outside"
    outside.mkdir()
    (outside / blob.name).write_bytes(b"\0" * blob.stat().st_size)  # what `%2e%2e/outside/{hex}` would read
    (registry / "config.json").write_text(json.dumps({"name": "local", "dl": "%2e%2e/outside/{hex}"}))
    result = install_frozen(project, app_lock)
    assert result.returncode == 0, result.stderr  # `..` once decoded: the default `dl`, inside the folder
    assert (own_dirs / "store" / "blobs" / "sha256" / blob.name[:2] / blob.name).read_bytes() == blob.read_bytes()


def test_a_blob_symlinked_out_of_the_folder_is_refused(folder_registry: Callable[[], Path], project: Path,
                                                       own_dirs: Path, app_lock: str, tmp_path: Path) -> None:
    registry = folder_registry()
    blob = blob_of(registry)
    outside = tmp_path / "elsewhere.wasm"
    outside.write_bytes(blob.read_bytes())  # even the right bytes: a registry reads nothing outside its folder
    blob.unlink()
    blob.symlink_to(outside)
    (project / "app.lock").write_text(app_lock)
    snap = Snapshot(project, own_dirs / "store")
    stderr = refused("install", str(project / "app.yaml"), "--frozen", code=1,
                     expect=f"registry local: blobs/sha256/{blob.name} leads out of the registry folder (to {outside})")
    assert "a folder registry is read only inside its folder" in stderr
    snap.assert_unchanged()


def test_a_blob_symlinked_inside_the_folder_is_read(folder_registry: Callable[[], Path], project: Path,
                                                    own_dirs: Path, app_lock: str) -> None:
    registry = folder_registry()
    blob = blob_of(registry)
    moved = registry / "pool" / "echo.wasm"
    moved.parent.mkdir()
    blob.rename(moved)
    blob.symlink_to(moved)
    assert install_frozen(project, app_lock).returncode == 0


@pytest.mark.parametrize("where", ["blob", "config.json"])
def test_a_fifo_in_a_folder_registry_is_refused_not_waited_on(
        folder_registry: Callable[[], Path], project: Path, own_dirs: Path, app_lock: str, where: str) -> None:
    registry = folder_registry()
    path = blob_of(registry) if where == "blob" else registry / "config.json"
    path.unlink()
    os.mkfifo(path)
    (project / "app.lock").write_text(app_lock)
    snap = Snapshot(project, own_dirs / "store")
    result = run("install", str(project / "app.yaml"), "--frozen")
    assert result.returncode == 1
    expect = (f"test/echo 1.0.0: registry local's blob {path} is a FIFO, not a regular file" if where == "blob"
              else "registry local: config.json is a FIFO, not a regular file")
    assert expect in result.stderr, result.stderr
    snap.assert_unchanged()


@pytest.mark.parametrize("link", ["file", "folder"])
def test_an_index_file_leading_out_of_the_folder_is_refused(folder_registry: Callable[[], Path], project: Path,
                                                            own_dirs: Path, tmp_path: Path, link: str) -> None:
    registry = folder_registry()
    outside = tmp_path / "outside"
    shutil.copytree(registry / "index" / "test", outside)  # a good index file, but not the registry's
    if link == "file":
        (registry / "index" / "test" / "echo").unlink()
        (registry / "index" / "test" / "echo").symlink_to(outside / "echo")
    else:
        shutil.rmtree(registry / "index" / "test")
        (registry / "index" / "test").symlink_to(outside, target_is_directory=True)
    snap = Snapshot(project, own_dirs / "store")
    refused("lock", str(project / "app.yaml"), code=1,
            expect=f"registry local: index/test/echo leads out of the registry folder (to {outside / 'echo'})")
    snap.assert_unchanged()


def test_a_fifo_index_file_is_refused_not_waited_on(folder_registry: Callable[[], Path], project: Path,
                                                    own_dirs: Path) -> None:
    registry = folder_registry()
    (registry / "index" / "test" / "echo").unlink()
    os.mkfifo(registry / "index" / "test" / "echo")
    snap = Snapshot(project, own_dirs / "store")
    result = run("lock", str(project / "app.yaml"))
    assert result.returncode == 1
    assert "registry local: index/test/echo is a FIFO, not a regular file" in result.stderr, result.stderr
    snap.assert_unchanged()


# -- 9. names, versions and digests match whole: no trailing newline

def test_a_name_with_a_trailing_newline_is_not_published(tmp_path: Path, echo_wasm: bytes) -> None:
    folder = plugin_folder(tmp_path, echo_wasm, "test/echo\n")
    refused("publish", str(folder), "--dry-run", code=2,
            expect="name: a name is `namespace/name`: lowercase letters, digits and '-', at most 64 each")


def test_a_digest_with_a_trailing_newline_is_a_bad_index_line(folder_registry: Callable[[], Path], project: Path,
                                                              own_dirs: Path) -> None:
    registry = folder_registry()
    index = registry / "index" / "test" / "echo"
    line = json.loads(index.read_text())
    index.write_text(json.dumps({**line, "digest": line["digest"] + "\n"}) + "\n")
    snap = Snapshot(project, own_dirs / "store", registry)
    stderr = refused("lock", str(project / "app.yaml"), code=1,
                     expect="index/test/echo:1: digest: " + repr(line["digest"] + "\n"))
    assert "registry local has test/echo, but none of its index lines is valid" in stderr
    snap.assert_unchanged()  # no app.lock


@pytest.mark.parametrize("old, new, expect", [
    ("  version: 1.0.0\n", '  version: "1.0.0\\n"\n', "plugins[0].version: '1.0.0\\n' is not a version"),
    ("- name: test/echo\n", '- name: "test/echo\\n"\n', "plugins[0].name: 'test/echo\\n' does not match"),
    ("  registry: local\n", '  registry: "local\\n"\n', "plugins[0].registry: 'local\\n' does not match"),
], ids=["version", "name", "registry"])
def test_a_lock_field_with_a_trailing_newline_is_refused(folder_registry: Callable[[], Path], project: Path,
                                                         own_dirs: Path, app_lock: str, old: str, new: str,
                                                         expect: str) -> None:
    folder_registry()
    assert old in app_lock
    (project / "app.lock").write_text(app_lock.replace(old, new))
    snap = Snapshot(project, own_dirs / "store")
    refused("install", str(project / "app.yaml"), "--frozen", code=2, expect=expect)
    snap.assert_unchanged()


def test_a_registry_name_with_a_trailing_newline_is_refused(tmp_path: Path, project: Path) -> None:
    use_registries(tmp_path, "{name: \"local\\n\", url: /nowhere}")
    refused("lock", str(project / "app.yaml"), code=2, expect="registries[0].name: 'local\\n' does not match")


def test_every_schema_pattern_ends_at_the_end_of_the_string() -> None:
    """jsonschema reads patterns with Python's `re`, whose `$` also matches before a final newline:
    each anchor is written `$(?!\\n)`, which means the end in Python and in ECMAScript alike."""
    bare = []
    for path in (ROOT / "cspm" / "schemas").rglob("*.json"):
        for pattern in re.findall(r'"pattern":\s*"((?:[^"\\]|\\.)*)"', path.read_text()):
            text = json.loads(f'"{pattern}"')
            if re.search(r"(?<!\\)\$(?!\(\?!\\n\))", text):
                bare.append(f"{path.name}: {text}")
    assert bare == []


# -- robustness: hostile JSON from a registry is refused with the registry named

@pytest.mark.parametrize("payload, expect", [
    (f'{{"name": "test/echo", "x": {DEEP}}}', "index/test/echo:1: nested more than 64 levels deep"),
    (f'{{"name": "test/echo", "size": {HUGE}}}', "index/test/echo:1: a number has more than 100 digits"),
], ids=["deep", "huge-number"])
def test_hostile_json_in_an_index_line(folder_registry: Callable[[], Path], project: Path, own_dirs: Path,
                                       payload: str, expect: str) -> None:
    registry = folder_registry()
    (registry / "index" / "test" / "echo").write_text(payload + "\n")
    snap = Snapshot(project, own_dirs / "store", registry)
    stderr = refused("lock", str(project / "app.yaml"), code=1, expect=expect)
    assert "registry local has test/echo, but none of its index lines is valid" in stderr
    snap.assert_unchanged()


@pytest.mark.parametrize("payload, expect", [
    (f'{{"dl": {DEEP}}}', "registry local: config.json is refused: nested more than 64 levels deep"),
    (f'{{"dl": "blobs/sha256/{{hex}}", "n": {HUGE}}}',
     "registry local: config.json is refused: a number has more than 100 digits"),
    ('{"policy": {"test/*": ["not", "a", "rule"]}}', "registry local: config.json has a `policy` that is not"),
], ids=["deep", "huge-number", "policy-shape"])
def test_hostile_json_in_config_json(folder_registry: Callable[[], Path], project: Path, own_dirs: Path,
                                     app_lock: str, payload: str, expect: str) -> None:
    registry = folder_registry()
    (registry / "config.json").write_text(payload)
    (project / "app.lock").write_text(app_lock)
    snap = Snapshot(project, own_dirs / "store", registry)
    refused("install", str(project / "app.yaml"), "--frozen", code=1, expect=expect)
    snap.assert_unchanged()


@pytest.mark.parametrize("status, body, expect", [
    (200, DEEP, "registry corp answered HTTP 200 with something that is not a JSON object (nested more than 64"),
    (200, f'{{"name": "test/echo", "version": {HUGE}}}', "(a number has more than 100 digits)"),
    (200, "[]", "registry corp answered HTTP 200 with something that is not a JSON object (not a JSON object)"),
    (403, f'{{"error": {DEEP}}}', "registry corp refused: HTTP 403"),
    (403, '{"error": {"code": {"a": 1}, "message": ["x"]}}', "registry corp refused: HTTP 403"),
], ids=["deep", "huge-number", "not-an-object", "deep-error", "error-of-other-types"])
def test_hostile_json_in_an_api_answer(tmp_path: Path, hosts: Callable[[], Host], status: int, body: str,
                                       expect: str) -> None:
    registry = hosts()
    write_api_registry(registry, "api/v1")
    registry.route("POST", "/api/v1/yank", body, status=status)
    use_registries(tmp_path, f"{{name: corp, url: '{registry.url}', namespaces: [test]}}")
    result = run("yank", "test/echo@1.0.0", env={"CSPM_TOKEN_CORP": TOKEN})
    assert result.returncode == 1 and expect in " ".join(result.stderr.split()), result.stderr


# -- a gzip body that does not decode

def http_registry(host: Host, built_registry: Path) -> str:
    """Serve the built registry's files from `host`; returns the index line's blob path."""
    host.route("GET", "/config.json", (built_registry / "config.json").read_bytes())
    host.route("GET", "/index/test/echo", (built_registry / "index" / "test" / "echo").read_bytes())
    blob = blob_of(built_registry)
    host.route("GET", f"/blobs/sha256/{blob.name}", blob.read_bytes())
    return f"/blobs/sha256/{blob.name}"


GZIP = {"Content-Encoding": "gzip"}
NOT_GZIP = b"\x1f\x8b\x08\x00garbage that is not deflate data at all"


def test_a_corrupt_gzip_index_file_is_refused(tmp_path: Path, hosts: Callable[[], Host], project: Path,
                                              own_dirs: Path, built_registry: Path) -> None:
    host = hosts()
    http_registry(host, built_registry)
    host.route("GET", "/index/test/echo", NOT_GZIP, headers=GZIP)
    use_registries(tmp_path, f"{{name: web, url: '{host.url}'}}")
    snap = Snapshot(project, own_dirs)
    stderr = refused("lock", str(project / "app.yaml"), code=1,
                     expect=f"registry web ({host.url}) sent an answer for index/test/echo that cannot be used")
    assert "tell the registry's operator" in stderr
    snap.assert_unchanged()  # no lock, and nothing cached


def test_a_corrupt_gzip_blob_is_refused_once_and_not_stored(tmp_path: Path, hosts: Callable[[], Host],
                                                            project: Path, own_dirs: Path, built_registry: Path,
                                                            ) -> None:
    host = hosts()
    blob_path = http_registry(host, built_registry)
    use_registries(tmp_path, f"{{name: web, url: '{host.url}'}}")
    assert run("lock", str(project / "app.yaml")).returncode == 0
    host.route("GET", blob_path, NOT_GZIP, headers=GZIP)
    snap = Snapshot(project, own_dirs / "store")
    stderr = refused("install", str(project / "app.yaml"), "--frozen", code=1,
                     expect=f"cannot download test/echo 1.0.0 from registry web: the answer for {host.url}{blob_path} "
                            f"cannot be used")
    assert "tell the registry's operator" in stderr
    assert [path for method, path, _ in host.seen if path == blob_path] == [blob_path]  # not retried
    snap.assert_unchanged()
