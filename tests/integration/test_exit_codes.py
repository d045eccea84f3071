"""One exit status per category (cspm.errors.ExitCode, the table of docs/cli.md), true in every command:
one real case of each through the real CLI, with `file:line` for the errors that are about a file."""

from __future__ import annotations

import importlib
import pkgutil
import platform
import re
import signal
import subprocess
import sys
import time
from pathlib import Path

import pytest

import cspm
from cspm.errors import CspmError, ExitCode
from tests.conftest import ROOT, write_app
from tests.faults import test_disk_full
from tests.integration import test_cli_pm as pm
from tests.integration.test_cli import cspm as run_cspm
from tests.integration.test_cli_pm import APP, source

# fixtures shared with the package-manager and disk-full tests
app, registry, own_config_and_cache = pm.app, pm.registry, pm.own_config_and_cache
small_disk, fill = test_disk_full.small_disk, test_disk_full.fill

DEMO = """\
entry: echo
tools:
  - {name: echo, description: says it back, plugin: "test/echo@~1.0", config: {kind: tool},
     grant: {hosts: [api.example.com]}}
"""


@pytest.fixture
def sources(tmp_path: Path) -> Path:
    root = tmp_path / "src"
    source(root, "test/echo", "1.0.0", "tool", "c")
    source(root, "test/boss", "1.0.0", "agent", "rust")
    demo = root / "demo"
    demo.mkdir()
    (demo / "plugin.yaml").write_text("name: test/demo\nversion: 1.0.0\nkind: app\nabi: 1\napp: app.yaml\n")
    (demo / "app.yaml").write_text(DEMO)
    return root


def code(*args: str, cwd: Path = ROOT, env: dict | None = None) -> tuple[int, str]:
    result = run_cspm(*args, cwd=cwd, env=env)
    assert "internal error" not in result.stderr, result.stderr
    return result.returncode, result.stderr


def test_the_docs_table_is_exit_code_and_every_error_class_uses_it() -> None:
    table = (ROOT / "docs" / "cli.md").read_text().split("| exit code | meaning |", 1)[1].split("\n\n", 1)[0]
    assert sorted(int(n) for n in re.findall(r"^\| (\d+) \|", table, re.M)) == sorted(int(c) for c in ExitCode)
    for module in pkgutil.walk_packages(cspm.__path__, "cspm."):
        if module.name.startswith(("cspm.cli.main", "cspm.__main__", "cspm.schemas.compile")):
            continue
        importlib.import_module(module.name)
    classes, todo = [], [CspmError]
    while todo:
        cls = todo.pop()
        classes.append(cls)
        todo.extend(cls.__subclasses__())
    assert len(classes) > 20
    for cls in classes:
        assert cls.exit_code in set(ExitCode), f"{cls.__module__}.{cls.__name__} exits {cls.exit_code}"


def test_success_and_a_failed_plugin(tmp_path: Path, wat_dir: Path) -> None:
    assert code("--version")[0] == ExitCode.OK
    app_file = write_app(tmp_path, f"entry: t\ntools:\n  - {{name: t, plugin_name: {wat_dir / 'nocall.wasm'}}}\n")
    status, stderr = code("run", str(app_file), "-i", "x")
    assert status == ExitCode.FAILED and "does not export a function `call`" in stderr


def test_input_errors_exit_2_and_name_the_file_and_line(tmp_path: Path, app: Path) -> None:
    assert code("lock", str(app), "--upgarde")[0] == ExitCode.USAGE  # a usage error
    missing = write_app(tmp_path, "entry: t\ntools:\n  - {name: t, plugin_name: nowhere.wasm}\n", "missing.yaml")
    status, stderr = code("run", str(missing), "-i", "x")
    assert status == ExitCode.USAGE and f"{missing}:3: tool `t`: plug-in file" in stderr, stderr
    for text, expect in [
        (APP.replace("test/echo@~1.0", "test/echo@^^1"), "tool `echo`: '^^1' is not a version specifier"),
        (APP.replace("test/echo@~1.0", "test/ehco@~1.0"), "tool `echo`: test/ehco was not found"),
    ]:
        app.write_text(text)
        for command in (("lock", str(app)), ("install", str(app)), ("run", str(app), "-i", "x")):
            status, stderr = code(*command)
            assert status == ExitCode.USAGE and f"{app}:4: {expect}" in stderr, (command, stderr)
    assert "hint: did you mean test/echo?" in stderr
    status, stderr = code("info", "test/nope")
    assert status == ExitCode.USAGE and "test/nope was not found" in stderr


def test_a_full_disk_exits_74_in_the_store_and_in_the_lock(app: Path, small_disk: Path, tmp_path: Path) -> None:
    assert code("lock", str(app))[0] == ExitCode.OK
    project = small_disk / "project"
    project.mkdir()
    (project / "app.yaml").write_text(APP)
    filler = fill(small_disk, leave=0)
    status, stderr = code("install", str(app), env={"CSPM_CACHE_DIR": str(small_disk / "cache")})
    assert status == ExitCode.IO and "no space left on the device" in stderr, stderr
    status, stderr = code("lock", str(project / "app.yaml"))
    assert status == ExitCode.IO and "no space left on the device" in stderr and str(project) in stderr, stderr
    filler.unlink()


def test_an_unapproved_published_app_exits_77(registry: Path) -> None:
    status, stderr = code("run", "test/demo", "-i", "x")
    assert status == ExitCode.NOT_APPROVED and "api.example.com" in stderr, stderr


def _reading_stdin(pid: int) -> bool:
    """Blocked in read(0, …): /proc/PID/syscall names the syscall (x86-64: 0 is read) and its first
    argument; elsewhere, a pause long enough for start-up."""
    if platform.machine() != "x86_64":
        time.sleep(3)
        return True
    try:
        return Path(f"/proc/{pid}/syscall").read_text().startswith("0 0x0 ")
    except OSError:
        return False


def test_ctrl_c_exits_130() -> None:
    # `login` reads its token from stdin: a Ctrl-C there, once cspm waits for it, is an interruption
    process = subprocess.Popen([sys.executable, "-m", "cspm.cli.main", "login", "chainsocket"], cwd=ROOT,
                               stdin=subprocess.PIPE, stdout=subprocess.PIPE, stderr=subprocess.PIPE,
                               # SIGINT as a terminal gives it, even when this runner was started with it
                               # ignored (`cmd &` in a script): Python then never raises KeyboardInterrupt
                               preexec_fn=lambda: signal.signal(signal.SIGINT, signal.SIG_DFL))
    deadline = time.monotonic() + 60
    while not _reading_stdin(process.pid) and time.monotonic() < deadline:
        time.sleep(0.05)
    process.send_signal(signal.SIGINT)
    _, stderr = process.communicate(timeout=30)
    assert process.returncode == ExitCode.INTERRUPTED, stderr
    assert b"interrupted" in stderr and b"Traceback" not in stderr
