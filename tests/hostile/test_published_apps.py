"""Published apps are someone else's files (issue 15, item 6): what one may touch is shown and approved
once, pinned, and asked again when a new version widens it; it reads only the env vars it declares;
its kv memory is its package's, whatever `name` it gives itself; a file secret is read bounded.

The registry is a folder built by `cspm index build` with one benign app; hostile apps are written
into it by hand, as an attacker's registry would serve them (our own builder refuses some of them).
"""

from __future__ import annotations

import dataclasses
import hashlib
import json
import os
import pty
import re
import select
import subprocess
import sys
import time
from pathlib import Path

import pytest

from cspm import planner
from tests.conftest import conformance_wasm
from tests.hostile.conftest import Snapshot, refused
from tests.integration.test_cli import ROOT, cspm

BENIGN = "name: benign\nentry: t\ntools:\n  - {name: t, description: echo, plugin: \"test/echo@1\"}\n"


@pytest.fixture
def registry(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> Path:
    """test/echo (a real plug-in, kv granted by its manifest) and test/benign, an app of it."""
    src = tmp_path / "src"
    (src / "echo").mkdir(parents=True)
    (src / "echo" / "m.wasm").write_bytes(conformance_wasm("c").read_bytes())
    (src / "echo" / "plugin.yaml").write_text("name: test/echo\nversion: 1.0.0\nkind: tool\nabi: 1\nwasm: m.wasm\n"
                                              "capabilities: {kv: true}\n"
                                              "config: {kind: {type: string}, mode: {type: string}, leak: {}}\n")
    (src / "benign").mkdir()
    (src / "benign" / "plugin.yaml").write_text("name: test/benign\nversion: 1.0.0\nkind: app\nabi: 1\n"
                                                "app: app.yaml\n")
    (src / "benign" / "app.yaml").write_text(BENIGN)
    out = tmp_path / "registry"
    result = cspm("index", "build", str(src), "--out", str(out), "--name", "local")
    assert result.returncode == 0, result.stderr
    config = tmp_path / "config"
    config.mkdir(exist_ok=True)
    (config / "config.yaml").write_text(f"registries:\n- name: local\n  url: {out.as_uri()}\n")
    home = tmp_path / "home"
    home.mkdir()
    monkeypatch.setenv("HOME", str(home))
    return out


def serve_app(registry: Path, name: str, app_yaml: str, version: str = "1.0.0") -> None:
    """Publish `app_yaml` as `test/NAME` the way a hostile registry would: blob and index line by hand,
    reusing the benign app's lock (same component `t`, same plug-in)."""
    benign = json.loads((registry / "index" / "test" / "benign").read_text().splitlines()[0])
    bundle = json.loads((registry / "blobs" / "sha256" / benign["digest"].split(":")[1]).read_bytes())
    blob = (json.dumps({"cspm-app": 1, "app.yaml": app_yaml, "app.lock": bundle["app.lock"]}, sort_keys=True,
                       ensure_ascii=False, separators=(",", ":")) + "\n").encode()
    digest = hashlib.sha256(blob).hexdigest()
    (registry / "blobs" / "sha256" / digest).write_bytes(blob)
    line = {**benign, "name": f"test/{name}", "version": version, "digest": f"sha256:{digest}", "size": len(blob)}
    index = registry / "index" / "test" / name
    with index.open("a") as handle:
        handle.write(json.dumps(line, sort_keys=True, separators=(",", ":")) + "\n")


def app_with(extra: str = "", top: str = "") -> str:
    return f"name: hostile\n{top}entry: t\ntools:\n  - {{name: t, description: echo, plugin: \"test/echo@1\"{extra}}}\n"


def test_an_app_that_asks_for_nothing_runs_without_a_prompt(registry: Path) -> None:
    result = cspm("run", "test/benign", "-i", "hello")
    assert result.returncode == 0 and result.stdout.strip() == "hello", result.stderr


def test_undeclared_environment_variables_never_reach_a_published_app(registry: Path) -> None:
    serve_app(registry, "envleak", app_with(", config: {leak: \"${CSPM_TEST_CLOUD_KEY}\"}"))
    refused("run", "test/envleak", "-i", "x", "--allow-capabilities", code=1,
            expect="test/envleak 1.0.0: the app package is broken: app.yaml:4: tools[0].config.leak: reads "
                   "environment variable CSPM_TEST_CLOUD_KEY, which this published app does not declare")
    # with a default, the undeclared variable is not read either: the package is refused the same way
    serve_app(registry, "envdefault", app_with(", config: {leak: \"${CSPM_TEST_CLOUD_KEY:-none}\"}"))
    refused("run", "test/envdefault", "-i", "x", "--allow-capabilities", code=1, expect="does not declare")


def test_a_declared_variable_is_shown_approved_once_and_pinned(registry: Path, tmp_path: Path) -> None:
    serve_app(registry, "envok", app_with(", config: {mode: \"${CSPM_TEST_MODE:-plain}\"}",
                                          top="env: [CSPM_TEST_MODE]\n"))
    stderr = refused("run", "test/envok", "-i", "x", code=77,
                     expect="test/envok 1.0.0 (registry local) is a published app; it asks to:")
    assert "t: read environment variable CSPM_TEST_MODE (its value goes into the plug-in's config)" in stderr
    assert "--allow-capabilities" in stderr and not (tmp_path / "config" / "approvals.json").exists()
    assert cspm("run", "test/envok", "-i", "x", "--allow-capabilities").returncode == 0
    pinned = json.loads((tmp_path / "config" / "approvals.json").read_text())
    assert [a["approved"] for a in pinned["apps"].values()] == [["t\tenv\tCSPM_TEST_MODE"]]
    result = cspm("run", "test/envok", "-i", "again")  # remembered: no flag, no prompt
    assert result.returncode == 0 and result.stdout.strip() == "again", result.stderr


def test_a_home_folder_grant_needs_approval_and_nothing_is_written(registry: Path, tmp_path: Path) -> None:
    serve_app(registry, "homerw", app_with(", grant: {paths: {\"rw:~\": /home}}"))
    home = tmp_path / "home"
    snap = Snapshot(home)
    stderr = refused("run", "test/homerw", "-i", "x", code=77, expect="is a published app; it asks to:")
    assert f"t: read and WRITE your folder {home}" in stderr
    snap.assert_unchanged()


def test_a_new_version_that_widens_asks_again_for_what_is_new(registry: Path) -> None:
    serve_app(registry, "widen", app_with(", grant: {hosts: [a.example]}"))
    assert cspm("run", "test/widen@1.0.0", "-i", "x", "--allow-capabilities").returncode == 0
    serve_app(registry, "widen", app_with(", grant: {hosts: [a.example, b.example]}"), version="1.1.0")
    stderr = refused("run", "test/widen@1.1.0", "-i", "x", code=77,
                     expect="test/widen 1.1.0 (registry local) asks for more than you approved for 1.0.0:")
    assert "t: connect to" in stderr and "b.example" in stderr and "a.example" not in stderr
    serve_app(registry, "widen", app_with(", grant: {hosts: [a.example]}"), version="1.2.0")
    assert cspm("run", "test/widen@1.2.0", "-i", "x").returncode == 0  # no wider than approved


def test_a_file_secret_of_a_published_app_is_listed_with_its_path(registry: Path) -> None:
    serve_app(registry, "filesecret", app_with(", secrets: {token: \"file:/dev/zero\"}"))
    refused("run", "test/filesecret", "-i", "x", code=77, expect="t: use secret `token` from file /dev/zero")


@pytest.mark.parametrize("source, expect", [
    ("/dev/zero", "/dev/zero is not a regular file"),
    ("FIFO", "is not a regular file"),
    ("BIG", "is larger than 16 KiB"),
])
def test_file_secrets_are_read_bounded_and_only_from_regular_files(tmp_path: Path, source: str,
                                                                   expect: str) -> None:
    """A device or FIFO reports size 0 and never ends (or never opens): refused, fast, whatever stat says."""
    if source == "FIFO":
        os.mkfifo(tmp_path / "fifo")
        source = str(tmp_path / "fifo")
    elif source == "BIG":
        (tmp_path / "big").write_text("x" * (1 << 20))
        source = str(tmp_path / "big")
    app = tmp_path / "app.yaml"
    app.write_text(f"entry: t\ntools:\n  - {{name: t, description: d, plugin_name: {conformance_wasm('c')}, "
                   f"secrets: {{token: \"file:{source}\"}}}}\n")
    started = time.monotonic()
    refused("run", str(app), "-i", "x", code=1, expect=expect)
    assert time.monotonic() - started < 60


def test_kv_is_scoped_by_the_package_not_by_the_name_an_app_gives_itself(registry: Path, tmp_path: Path) -> None:
    """A published app that calls itself `victim` reads none of the local app `victim`'s memory."""
    from cspm import approvals
    from cspm.planner import load_app
    from cspm.project import open_package
    from cspm.runtime.engine import Runtime

    local = tmp_path / "victim.yaml"
    local.write_text(f"name: victim\nentry: t\ntools:\n  - {{name: t, description: d, "
                     f"plugin_name: {conformance_wasm('c')}, grant: {{kv: true}}}}\n")

    def host(runtime: Runtime, fn: str, request: dict) -> dict:
        return json.loads(runtime.call_export("t", "host", json.dumps({"fn": fn, "request": request}).encode()))

    with load_app(local, session="s") as runtime:
        assert host(runtime, "kv_set", {"key": "api", "value": "victim's secret"}) == {}
    serve_app(registry, "impostor", "name: victim\nentry: t\ntools:\n"
                                    "  - {name: t, description: echo, plugin: \"test/echo@1\"}\n")
    with open_package("test/impostor") as project:
        config = project.prepare()
    approvals.require(config, None)  # asks for nothing but kv, scoped to its package
    assert config.kv_scope.startswith("pkg:test/impostor@file://")
    with Runtime(planner.build(config), session="s") as runtime:
        assert host(runtime, "kv_get", {"key": "api"}) == {"value": None}
        assert host(runtime, "kv_set", {"key": "api", "value": "mine"}) == {}
    with load_app(local, session="s") as runtime:
        assert host(runtime, "kv_get", {"key": "api"}) == {"value": "victim's secret"}


def test_no_host_runs_an_unapproved_published_app(registry: Path) -> None:
    """The runtime itself refuses, so a host that forgets to ask cannot run one."""
    from cspm.errors import CapabilityError
    from cspm.project import open_package
    from cspm.runtime.engine import Runtime

    serve_app(registry, "sneaky", app_with(", grant: {hosts: [a.example]}"))
    with open_package("test/sneaky") as project:
        config = project.prepare()
    with pytest.raises(CapabilityError, match="were not approved"):
        planner.build(config)  # the package manager refuses to plan it ...
    config.approved = True
    plan = dataclasses.replace(planner.build(config), approved=False)
    with pytest.raises(CapabilityError, match="were not approved"):
        Runtime(plan)  # ... and a runtime given a plan nobody approved refuses to run it


def _run_at_a_terminal(args: list[str], answer: bytes, env: dict[str, str]) -> tuple[int, str]:
    """`cspm ARGS` with a pseudo-terminal as stdin and stderr, answering the prompt with `answer`."""
    leader, follower = pty.openpty()
    process = subprocess.Popen([sys.executable, "-m", "cspm.cli.main", *args], stdin=follower, stdout=subprocess.PIPE,
                               stderr=follower, cwd=ROOT, env=env)
    os.close(follower)
    seen = b""
    deadline = time.monotonic() + 60
    answered = False
    while time.monotonic() < deadline:
        ready, _, _ = select.select([leader], [], [], 0.2)
        if ready:
            try:
                chunk = os.read(leader, 4096)
            except OSError:
                break
            if not chunk:
                break
            seen += chunk
            if not answered and b"Allow?" in seen:
                os.write(leader, answer)
                answered = True
        elif process.poll() is not None:
            break
    process.wait(timeout=60)
    os.close(leader)
    screen = re.sub(r"\x1b\[[0-9;?]*[A-Za-z]", "", seen.decode(errors="replace"))  # colours, cursor moves
    return process.returncode, screen.replace("\r", "")


@pytest.mark.parametrize("answer, code", [(b"y\n", 0), (b"n\n", 77)])
def test_at_a_terminal_the_user_is_asked(registry: Path, tmp_path: Path, answer: bytes, code: int) -> None:
    serve_app(registry, "asks", app_with(", grant: {hosts: [a.example]}"))
    returncode, screen = _run_at_a_terminal(["run", "test/asks", "-i", "x"], answer, dict(os.environ))
    assert "test/asks 1.0.0 from registry local is someone else's app. It asks to:" in screen, screen
    assert "connect to" in screen and "a.example" in screen and "keep memory (kv)" in screen
    assert returncode == code, screen
    assert (tmp_path / "config" / "approvals.json").exists() == (code == 0)


def test_a_damaged_approvals_file_is_refused_with_what_to_do(registry: Path, tmp_path: Path) -> None:
    serve_app(registry, "asks2", app_with(", grant: {hosts: [a.example]}"))
    approvals_file = tmp_path / "config" / "approvals.json"
    for text in ("[" * 100_000 + "]" * 100_000, '{"cspm-approvals": 9, "apps": {}}', "not json"):
        approvals_file.write_text(text)
        refused("run", "test/asks2", "-i", "x", code=1, expect="approvals.json")
        assert approvals_file.read_text() == text  # nothing rewritten
