"""A lock pinning a yanked version: every command that reads the lock says so (with the reason), a plain
lock keeps the pin (Cargo's rule), and an upgrade of that name moves off it."""

from __future__ import annotations

import json
import os
import time
from pathlib import Path

from tests.integration import test_cli_pm as pm
from tests.integration.test_cli import cspm
from tests.integration.test_cli_pm import APP, ok

# fixtures shared with the package-manager tests
app, registry, sources, http_registry = pm.app, pm.registry, pm.sources, pm.http_registry
own_config_and_cache = pm.own_config_and_cache

REASON = "CVE-2026-0042: leaks the session"
def yank(registry: Path, name: str, version: str, reason: str) -> None:
    """Yank in a folder registry as `cspm-registry` does: rewrite only that line's `yanked`."""
    path = registry / "index" / name
    lines = []
    for line in path.read_text().splitlines():
        entry = json.loads(line)
        if entry["version"] == version:
            entry["yanked"] = reason
        lines.append(json.dumps(entry, separators=(",", ":"), sort_keys=True))
    path.write_text("\n".join(lines) + "\n")
    later = time.time() + 5  # a new Last-Modified, even within the same second as the last read
    os.utime(path, (later, later))


def warned(stderr: str) -> bool:
    return "test/echo 1.1.0" in stderr and "is yanked" in stderr and REASON in stderr


def test_a_yanked_pin_is_warned_about_kept_by_lock_and_left_by_an_upgrade(app: Path, registry: Path) -> None:
    app.write_text(APP.replace("~1.0", "^1"))
    assert {p["name"]: p["version"] for p in ok("lock", str(app), "--allow-capabilities")["plugins"]}[
        "test/echo"] == "1.1.0"
    ok("install", str(app))
    yank(registry, "test/echo", "1.1.0", REASON)

    installed = cspm("install", str(app), "--json")
    assert installed.returncode == 0 and warned(installed.stderr), installed.stderr
    assert any(REASON in w for w in json.loads(installed.stdout)["warnings"])
    assert "cspm lock --upgrade-package test/echo" in installed.stderr

    ran = cspm("run", str(app), "-i", "ahoy")
    assert ran.returncode == 0 and ran.stdout.strip() == "ahoy" and warned(ran.stderr), ran.stderr
    ran_json = cspm("run", str(app), "-i", "ahoy", "--json")  # a script reads stdout only
    assert ran_json.returncode == 0 and warned(ran_json.stderr)
    assert any(REASON in w for w in json.loads(ran_json.stdout)["warnings"])

    kept = cspm("lock", str(app), "--json")  # a plain lock never moves a pin, yanked or not
    assert kept.returncode == 0 and warned(kept.stderr)
    data = json.loads(kept.stdout)
    assert not data["written"] and any(REASON in w for w in data["warnings"])

    moved = ok("lock", str(app), "--upgrade-package", "test/echo")  # 1.0.0 still matches ^1: off the yank
    assert moved["changes"] == [{"name": "test/echo", "old": "1.1.0", "new": "1.0.0", "change": "updated"}]
    assert moved["warnings"] == []
    again = cspm("run", str(app), "-i", "ahoy", "--json")
    assert again.returncode == 0 and "yanked" not in again.stderr and json.loads(again.stdout)["warnings"] == []


def test_upgrade_everything_leaves_a_yanked_pin_too(app: Path, registry: Path) -> None:
    app.write_text(APP.replace("~1.0", ">=1.1"))
    ok("lock", str(app), "--allow-capabilities")
    yank(registry, "test/echo", "1.1.0", REASON)
    # when nothing else matches, the yanked pin is kept by an upgrade, and warned about
    stuck = cspm("lock", str(app), "--upgrade", "--json")
    assert stuck.returncode == 0 and warned(stuck.stderr), stuck.stdout + stuck.stderr
    assert {p["name"]: p["version"] for p in json.loads(stuck.stdout)["plugins"]}["test/echo"] == "1.1.0"
    app.write_text(APP.replace("~1.0", "^1"))  # the pin still matches: a plain lock keeps it
    assert not ok("lock", str(app))["written"]
    moved = ok("lock", str(app), "--upgrade")
    assert [(c["name"], c["new"]) for c in moved["changes"]] == [("test/echo", "1.0.0")]


def test_a_warm_run_warns_from_the_cached_index_without_the_network(
        app: Path, registry: Path, http_registry: tuple[str, object]) -> None:
    app.write_text(APP.replace("~1.0", "^1"))
    ok("lock", str(app), "--allow-capabilities")
    yank(registry, "test/echo", "1.1.0", REASON)
    installed = cspm("install", str(app))  # install asks the registry: it learns of the yank
    assert installed.returncode == 0 and warned(installed.stderr), installed.stderr
    _, server = http_registry
    server.shutdown()  # type: ignore[attr-defined]
    server.server_close()  # type: ignore[attr-defined]
    started = time.perf_counter()
    ran = cspm("run", str(app), "-i", "ahoy")
    assert ran.returncode == 0 and warned(ran.stderr), ran.stderr
    assert "cannot be reached" not in ran.stderr  # the cache was read, the registry was not asked
    assert time.perf_counter() - started < 30
