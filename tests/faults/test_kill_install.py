"""SIGKILL of `cspm install` while a blob is half downloaded; concurrent installs and locks."""

from __future__ import annotations

import json
import os
import signal
import subprocess
import time
from pathlib import Path

from tests.faults.conftest import (
    BLOB_RE,
    Faulty,
    add_registry,
    assert_consistent,
    assert_installed,
    cspm_cmd,
    ok,
    store_dir,
)

BOSS_BYTES = 140_000  # of the Rust module's 326,638: the kill lands with the rest still to come
ON_DISK = 2 * 65_536  # what cspm has written of those by then (it writes 64 KiB chunks)


def test_sigkill_mid_download_leaves_no_partial_blob_and_a_rerun_installs(
        app_file: Path, registry_dir: Path, faulty: Faulty) -> None:
    url, server = faulty(registry_dir)
    add_registry(url)
    ok("lock", str(app_file))
    lock_before = app_file.with_suffix(".lock").read_bytes()
    boss = json.loads((registry_dir / "index" / "test" / "boss").read_text())["digest"][7:]
    server.stall(f"/blobs/sha256/{boss}$", after=BOSS_BYTES)

    proc = subprocess.Popen(cspm_cmd("install", str(app_file), "--json"), stdout=subprocess.PIPE,
                            stderr=subprocess.PIPE, env={**os.environ, "CSPM_HTTP_TIMEOUT": "60"})
    try:
        assert server.stalled.wait(30), "the install never asked for the blob"
        tmp = store_dir() / "tmp"
        deadline = time.monotonic() + 10  # until the bytes sent are on disk, in a temp file
        while not any(p.stat().st_size >= ON_DISK for p in tmp.iterdir()):
            assert time.monotonic() < deadline and proc.poll() is None, "no partial download in the store's tmp/"
            time.sleep(0.02)
    finally:
        proc.send_signal(signal.SIGKILL)
        proc.communicate(timeout=10)
    assert proc.returncode == -signal.SIGKILL

    final = store_dir() / "blobs" / "sha256" / boss[:2] / boss
    assert not final.exists(), "a partial blob is under its final name"
    assert app_file.with_suffix(".lock").read_bytes() == lock_before
    assert_consistent(app_file, tmp_empty=False)  # the dead writer's temp file is all that is left
    assert any(p.name.startswith(boss[:12]) for p in (store_dir() / "tmp").iterdir())

    server.release.set()
    rerun = ok("install", str(app_file))  # the dead process's file lock is gone with it: no wait
    assert rerun["downloaded"] >= 1 and rerun["lock"] is not None
    assert_installed(app_file)
    assert_consistent(app_file)  # ... and the rerun swept the dead writer's temp file
    assert server.actions(BLOB_RE).count("stall") == 1


def test_concurrent_installs_into_one_store_download_each_blob_once(
        app_file: Path, registry_dir: Path, faulty: Faulty) -> None:
    url, server = faulty(registry_dir)
    server.rate = 400_000  # slow enough (about 1 s for the Rust module) that the installs overlap
    add_registry(url)
    ok("lock", str(app_file))
    procs = [subprocess.Popen(cspm_cmd("install", str(app_file), "--json"), stdout=subprocess.PIPE,
                              stderr=subprocess.PIPE, text=True) for _ in range(3)]
    results = [p.communicate(timeout=60) for p in procs]
    assert [p.returncode for p in procs] == [0, 0, 0], results
    assert sum(json.loads(out)["downloaded"] for out, _ in results) == 2  # the file lock: one download each
    assert server.actions(BLOB_RE) == ["served", "served"]
    assert_installed(app_file)
    assert_consistent(app_file)


def test_concurrent_locks_of_one_app_write_one_whole_lock(app_file: Path, registry_dir: Path) -> None:
    add_registry(str(registry_dir))
    procs = [subprocess.Popen(cspm_cmd("lock", str(app_file), "--json"), stdout=subprocess.PIPE,
                              stderr=subprocess.PIPE, text=True) for _ in range(4)]
    results = [p.communicate(timeout=60) for p in procs]
    assert [p.returncode for p in procs] == [0] * 4, results
    assert_consistent(app_file)
    text = app_file.with_suffix(".lock").read_text()
    assert text.count("name: test/boss") == 1 and text.count("name: test/echo") == 1
    assert not ok("lock", str(app_file))["written"]  # whichever won, it fits the app
    # and a lock racing an install (which locks first, then fetches) ends the same way
    app_file.with_suffix(".lock").unlink()
    procs = [subprocess.Popen(cspm_cmd(command, str(app_file), "--json"), stdout=subprocess.PIPE,
                              stderr=subprocess.PIPE, text=True) for command in ("lock", "install", "lock", "install")]
    results = [p.communicate(timeout=60) for p in procs]
    assert [p.returncode for p in procs] == [0] * 4, results
    assert_installed(app_file)
    assert_consistent(app_file)
    assert ok("install", str(app_file), "--frozen")["downloaded"] == 0
    assert os.listdir(app_file.parent) == sorted(["app.yaml", "app.lock"]) or set(os.listdir(app_file.parent)) == {
        "app.yaml", "app.lock"}
