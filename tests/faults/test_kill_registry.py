"""SIGKILL of the registry server while `cspm publish` waits on it, seen from cspm's side.

registry-server/tests/test_server.py already kills the server mid-upload and between the blob's rename and
the row's commit, and checks the data dir after a restart. Here the client is the real `cspm publish`,
the killed publish is of a second version (the first must survive untouched), and "a rerun
succeeds" is the whole loop: publish again, then lock and install from the restarted server.
"""

from __future__ import annotations

import hashlib
import json
import os
import socket
import subprocess
import time
from pathlib import Path
from typing import Any

from tests.faults.conftest import assert_consistent, assert_installed, cspm_cmd, ok, run
from tests.integration.test_cli_pm import source
from tests.registry_support import lines_of, modules, servers, start, stored_files  # noqa: F401

APP = """\
entry: echo
tools:
  - {name: echo, plugin: "test/echo@^1", config: {kind: tool}}
"""


def free_port() -> int:
    with socket.socket() as sock:
        sock.bind(("127.0.0.1", 0))
        return sock.getsockname()[1]


def test_registry_killed_mid_publish_then_publish_again_lock_and_install(
        tmp_path: Path, start: Any) -> None:  # noqa: F811 (a fixture)
    data, port = tmp_path / "data", str(free_port())
    src = tmp_path / "src"
    v1 = source(src, "test/echo", "1.0.0", "tool", "c")
    v2 = source(src, "test/echo", "1.1.0", "tool", "zig")
    v2_hex = hashlib.sha256((v2 / "m.wasm").read_bytes()).hexdigest()

    first = start("--port", port, data=data)
    os.environ["CSPM_TOKEN"] = first.token("test")
    try:
        ok("registry", "add", "srv", first.url.rstrip("/"), "--namespace", "test")
        assert ok("publish", str(v1), "--no-sign")["version"] == "1.0.0"
        first.stop()
        # 1.1.0 is killed after its blob is in place, before its row is committed
        paused = start("--port", port, data=data, env={"CSPM_REGISTRY_TEST_PAUSE_AFTER_BLOB": "30"})
        proc = subprocess.Popen(cspm_cmd("publish", str(v2), "--no-sign"), stdout=subprocess.PIPE,
                                stderr=subprocess.PIPE, text=True)
        deadline = time.monotonic() + 20
        while not (data / "blobs" / "sha256" / v2_hex).exists():
            assert time.monotonic() < deadline and proc.poll() is None, "the publish never wrote its blob"
            time.sleep(0.02)
        paused.kill()
        _, stderr = proc.communicate(timeout=30)
        assert proc.returncode == 1 and "Traceback" not in stderr, stderr
        assert "error: registry srv cannot be reached" in stderr, stderr

        second = start("--port", port, data=data)
        [line] = lines_of(second.get("/index/test/echo"))  # 1.0.0 alone: no line without its blob
        assert line["version"] == "1.0.0"
        assert stored_files(data)["blobs/sha256"] == [line["digest"][7:]]  # the orphan is gone
        assert stored_files(data)["tmp"] == []
        assert second.get(f"/blobs/sha256/{v2_hex}").status == 404

        again = ok("publish", str(v2), "--no-sign")  # the rerun: the killed version was never published
        assert again["version"] == "1.1.0" and again["digest"] == f"sha256:{v2_hex}"
        assert [x["version"] for x in lines_of(second.get("/index/test/echo"))] == ["1.0.0", "1.1.0"]
        names = [json.loads(x) for x in second.get("/names").body.decode().splitlines()]
        assert names == [{"name": "test/echo", "kind": "tool", "description": "test/echo 1.1.0", "latest": "1.1.0"}]
        assert "test/echo 1.1.0 is already published" in run("publish", str(v2), "--no-sign").stderr  # once

        app = tmp_path / "proj" / "app.yaml"
        app.parent.mkdir()
        app.write_text(APP)
        installed = ok("install", str(app))
        assert [(p["name"], p["version"]) for p in installed["plugins"]] == [("test/echo", "1.1.0")]
        assert_installed(app)
        assert_consistent(app)
        assert ok("run", str(app), "-i", "ahoy")["output"] == "ahoy"
    finally:
        os.environ.pop("CSPM_TOKEN", None)
