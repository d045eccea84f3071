"""Shared fixtures: real plug-ins built from source, WAT fixtures, loopback servers, isolated dirs."""

from __future__ import annotations

import json
import os
import shutil
import subprocess
import tempfile
import threading
from collections.abc import Callable, Iterator
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer
from pathlib import Path
from typing import ClassVar

import pytest

from tests.scripted import ScriptedServer

ROOT = Path(__file__).resolve().parent.parent
PLUGINS = ROOT / "plugins"
WAT = Path(__file__).resolve().parent / "wat"
LANGUAGES = ["rust", "c", "zig", "assemblyscript", "go"]

# One compile cache and data dir for the whole session, set before cspm is imported anywhere.
_SESSION_DIR = Path(tempfile.mkdtemp(prefix="cspm-tests-"))
os.environ.setdefault("CSPM_CACHE_DIR", str(_SESSION_DIR / "cache"))
os.environ.setdefault("CSPM_DATA_DIR", str(_SESSION_DIR / "data"))
os.environ.setdefault("CSPM_CONFIG_DIR", str(_SESSION_DIR / "config"))


@pytest.fixture(autouse=True)
def isolated_data(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> Path:
    """Each test gets its own kv database."""
    data = tmp_path / "cspm-data"
    monkeypatch.setenv("CSPM_DATA_DIR", str(data))
    return data


def plugin_wasm(name: str) -> Path:
    """The built .wasm of plugins/<name>, building it from source when it is missing."""
    folder = PLUGINS / name
    built = sorted((folder / "build").glob("*.wasm")) if (folder / "build").is_dir() else []
    if not built:
        result = subprocess.run(["bash", str(folder / "build.sh")], capture_output=True, text=True)
        if result.returncode != 0:
            pytest.fail(f"building {name} failed:\n{result.stdout}\n{result.stderr}")
        built = sorted((folder / "build").glob("*.wasm"))
    assert built, f"{name}/build.sh produced no .wasm"
    return built[0]


def conformance_wasm(lang: str) -> Path:
    return plugin_wasm(f"conformance-{lang}")


@pytest.fixture(scope="session")
def wat_dir() -> Path:
    """Every tests/wat/*.wat compiled with wabt's wat2wasm."""
    out = _SESSION_DIR / "wat"
    out.mkdir(exist_ok=True)
    tool = shutil.which("wat2wasm")
    if tool is None:
        pytest.fail("wat2wasm (Debian package wabt) is required: .ci/setup installs it")
    for source in WAT.glob("*.wat"):
        subprocess.run([tool, str(source), "-o", str(out / f"{source.stem}.wasm")], check=True)
    return out


class Recorder(BaseHTTPRequestHandler):
    """Answers every request with JSON describing it; `/status/N` answers status N."""

    seen: ClassVar[list[dict]] = []

    def _answer(self) -> None:
        length = int(self.headers.get("Content-Length") or 0)
        body = self.rfile.read(length).decode() if length else ""
        record = {"method": self.command, "path": self.path, "headers": dict(self.headers), "body": body}
        type(self).seen.append(record)
        status = int(self.path.split("/status/", 1)[1]) if self.path.startswith("/status/") else 200
        payload = json.dumps(record).encode()
        self.send_response(status)
        self.send_header("Content-Type", "application/json")
        self.send_header("Content-Length", str(len(payload)))
        self.end_headers()
        self.wfile.write(payload)

    do_GET = do_POST = do_PUT = do_DELETE = _answer

    def log_message(self, *args: object) -> None:
        pass


@pytest.fixture
def echo_server() -> Iterator[tuple[str, list[dict]]]:
    """A loopback HTTP server that echoes each request back as JSON; yields (base_url, seen)."""
    handler = type("Handler", (Recorder,), {"seen": []})
    server = ThreadingHTTPServer(("127.0.0.1", 0), handler)
    thread = threading.Thread(target=server.serve_forever, daemon=True)
    thread.start()
    try:
        yield f"http://127.0.0.1:{server.server_address[1]}", handler.seen
    finally:
        server.shutdown()
        server.server_close()


def write_app(folder: Path, text: str, name: str = "app.yaml") -> Path:
    path = folder / name
    path.write_text(text, encoding="utf-8")
    return path


def echo_chat_app(folder: Path) -> Path:
    """`echo-chat`: the conversational agent (kv memory) on the Rust conformance llm, which answers
    `echo: <last message>` and counts the conversation's messages as its prompt tokens."""
    plugin_wasm("conversational")
    return write_app(folder, f"""name: echo-chat
entry: agent
llms:
  - name: llm
    plugin_name: {conformance_wasm("rust")}
    config: {{kind: llm}}
agents:
  - name: agent
    plugin_name: {PLUGINS / "conversational"}
    prompt: You repeat what you are told.
    grant: {{kv: true}}
    llms: [llm]
""")


@pytest.fixture
def scripted() -> Iterator[Callable[[], ScriptedServer]]:
    """A factory of scripted loopback servers (tests/scripted.py), all closed at teardown."""
    servers: list[ScriptedServer] = []

    def make() -> ScriptedServer:
        servers.append(ScriptedServer())
        return servers[-1]

    yield make
    for server in servers:
        server.close()
from tests.sigstore_stack import sigstore_stack  # noqa: F401,E402
