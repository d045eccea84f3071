"""A registry that answers 500, hangs past the client's timeout, or stalls mid-blob, then recovers.

cspm asks again (cspm.http_client.RETRY: 4 attempts with backoff on 5xx, 429 and timeouts; index
files only when nothing is cached). When the registry is still failing after that, the error names
the registry, the URL or package, and what went wrong; nothing is half-written; a rerun succeeds.
"""

from __future__ import annotations

import json
from pathlib import Path

from tests.faults.conftest import (
    BLOB_RE,
    Faulty,
    add_registry,
    assert_consistent,
    assert_installed,
    ok,
    run,
    store_dir,
)


def digest_hex(registry: Path, name: str) -> str:
    return json.loads((registry / "index" / name).read_text())["digest"][7:]


def blobs_stored() -> list[str]:
    return sorted(p.name for p in (store_dir() / "blobs").rglob("*") if p.is_file())


def test_blob_500s_are_retried_within_one_install(app_file: Path, registry_dir: Path, faulty: Faulty) -> None:
    url, server = faulty(registry_dir)
    add_registry(url)
    boss = digest_hex(registry_dir, "test/boss")
    server.fail(f"/blobs/sha256/{boss}$", times=2, status=500)
    server.fail(f"/blobs/sha256/{boss}$", times=1, status=429)
    installed = ok("install", str(app_file))
    assert installed["downloaded"] == 2
    assert server.actions(boss) == ["status 500", "status 500", "status 429", "served"]
    assert_installed(app_file)
    assert_consistent(app_file)


def test_blob_stalling_mid_body_is_retried_and_the_partial_copy_discarded(
        app_file: Path, registry_dir: Path, faulty: Faulty) -> None:
    url, server = faulty(registry_dir)
    add_registry(url)
    boss = digest_hex(registry_dir, "test/boss")
    server.stall(f"/blobs/sha256/{boss}$", after=150_000)  # then silence, past CSPM_HTTP_TIMEOUT (2 s)
    installed = ok("install", str(app_file))
    assert installed["downloaded"] == 2
    assert server.actions(boss) == ["stall", "served"]
    assert_installed(app_file)
    assert_consistent(app_file)


def test_a_registry_failing_every_attempt_then_recovering(app_file: Path, registry_dir: Path,
                                                         faulty: Faulty) -> None:
    url, server = faulty(registry_dir)
    add_registry(url)
    ok("lock", str(app_file))
    boss = digest_hex(registry_dir, "test/boss")
    server.fail(f"/blobs/sha256/{boss}$", times=4, status=503)
    failed = run("install", str(app_file))
    assert failed.returncode == 1
    assert "error: cannot download test/boss 1.0.0 from registry local: HTTP 503 (after 4 attempts)" \
           in failed.stderr, failed.stderr
    assert "hint: try again later, or use another registry" in failed.stderr
    assert boss not in blobs_stored()  # all or nothing per blob; the other one may be stored, whole
    assert_consistent(app_file)
    assert ok("install", str(app_file))["downloaded"] >= 1  # recovered: the rerun fetches what is missing
    assert_installed(app_file)
    assert_consistent(app_file)


def test_a_registry_hanging_past_the_timeout_then_recovering(app_file: Path, registry_dir: Path,
                                                            faulty: Faulty) -> None:
    url, server = faulty(registry_dir)
    add_registry(url)
    ok("lock", str(app_file))
    echo = digest_hex(registry_dir, "test/echo")
    server.hang(f"/blobs/sha256/{echo}$", times=4)
    failed = run("install", str(app_file), env={"CSPM_HTTP_TIMEOUT": "1"})
    assert failed.returncode == 1
    assert "error: cannot download test/echo 1.0.0 from registry local: timed out (after 4 attempts)" \
           in failed.stderr, failed.stderr
    assert echo not in blobs_stored()
    assert_consistent(app_file)
    server.release.set()
    ok("install", str(app_file))
    assert_installed(app_file)
    assert_consistent(app_file)


def test_index_500s_are_retried_then_a_clear_error_then_success(app_file: Path, registry_dir: Path,
                                                                faulty: Faulty) -> None:
    url, server = faulty(registry_dir)
    add_registry(url)
    # a blip: asked again, and the lock is written as if nothing happened
    server.fail("^/index/test/boss$", times=2, status=502)
    ok("lock", str(app_file))
    assert server.actions("^/index/test/boss$") == ["status 502", "status 502", "served"]
    # down for good, nothing cached: an error naming the registry and the file, and no lock written
    app_file.with_suffix(".lock").unlink()
    ok("cache", "clean", "index")
    server.fail("^/index/test/echo$", times=1000, status=500)
    failed = run("lock", str(app_file))
    assert failed.returncode != 0
    assert f"error: registry local ({url}) answered HTTP 500 for index/test/echo (after 4 attempts)" \
           in failed.stderr, failed.stderr
    assert "hint: the registry is failing: try again later (no cached copy of its index can stand in)" in failed.stderr
    assert not app_file.with_suffix(".lock").exists()
    assert_consistent(app_file)
    server.rules.clear()  # recovered
    ok("install", str(app_file))
    assert_installed(app_file)
    assert_consistent(app_file)


def test_index_hanging_past_the_timeout(app_file: Path, registry_dir: Path, faulty: Faulty) -> None:
    url, server = faulty(registry_dir)
    add_registry(url)
    server.hang("^/index/test/boss$", times=1000)
    failed = run("lock", str(app_file), env={"CSPM_HTTP_TIMEOUT": "1"})
    assert failed.returncode != 0
    assert f"error: registry local ({url}) cannot be reached: timed out" in failed.stderr, failed.stderr
    assert "hint: check the network (no cached copy of its index can stand in)" in failed.stderr
    assert not app_file.with_suffix(".lock").exists()
    server.rules.clear()
    server.release.set()
    ok("install", str(app_file))  # recovered; the cache is warm from here on
    server.release.clear()
    server.hang("^/index/", times=1000)
    # hangs again: the cached index answers, with a warning
    relocked = run("lock", str(app_file), "--upgrade", env={"CSPM_HTTP_TIMEOUT": "1"})
    assert relocked.returncode == 0, relocked.stderr
    assert "registry local cannot be reached (timed out): using its cached index" in relocked.stderr
    assert server.actions(BLOB_RE).count("served") == 2
    assert_consistent(app_file)
