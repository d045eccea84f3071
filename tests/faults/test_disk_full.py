"""The store's disk fills up during an install: a clear "no space" error naming the store, nothing
partial left, and the same install succeeds once space is freed."""

from __future__ import annotations

import os
import shutil
import subprocess
from collections.abc import Iterator
from pathlib import Path

import pytest

from tests.faults.conftest import Faulty, add_registry, assert_consistent, assert_installed, ok, run, store_dir

SIZE = 2 * 1024 * 1024


@pytest.fixture
def small_disk(tmp_path: Path) -> Iterator[Path]:
    """A 2 MiB tmpfs (root, or CAP_SYS_ADMIN), else a 2 MiB loop-mounted ext4 image; skipped if neither works."""
    mount = tmp_path / "small"
    mount.mkdir()
    tries = [["mount", "-t", "tmpfs", "-o", f"size={SIZE},mode=0755", "tmpfs", str(mount)]]
    image = tmp_path / "small.img"
    if shutil.which("mkfs.ext4"):
        tries.append(["sh", "-c", f"truncate -s {SIZE} {image} && mkfs.ext4 -q -F {image} && "
                                  f"mount -o loop {image} {mount}"])
    reasons = []
    for command in tries:
        if shutil.which(command[0]) is None:
            reasons.append(f"{command[0]}: not installed")
            continue
        result = subprocess.run(command, capture_output=True, text=True)
        if result.returncode == 0:
            break
        reasons.append(f"{' '.join(command[:3])}: {result.stderr.strip() or result.returncode}")
    else:
        pytest.skip("cannot mount a small file system here (needs root or CAP_SYS_ADMIN): " + "; ".join(reasons))
    try:
        yield mount
    finally:
        subprocess.run(["umount", "-l", str(mount)], capture_output=True)


def fill(folder: Path, leave: int) -> Path:
    """A file that takes all but about `leave` bytes of the file system."""
    filler = folder / "filler"
    stat = os.statvfs(folder)
    free = stat.f_bavail * stat.f_frsize
    with filler.open("wb") as handle:
        handle.write(b"\0" * max(0, free - leave))
    return filler


def test_disk_full_during_install_then_space_is_freed(
        small_disk: Path, app_file: Path, registry_dir: Path, faulty: Faulty,
        monkeypatch: pytest.MonkeyPatch) -> None:
    url, _server = faulty(registry_dir)
    add_registry(url)
    ok("lock", str(app_file))  # index files cached in the roomy cache dir
    cache = small_disk / "cache"
    monkeypatch.setenv("CSPM_CACHE_DIR", str(cache))
    ok("lock", str(app_file))  # and once more here, so the small disk holds the index cache too
    filler = fill(small_disk, leave=200 * 1024)  # room for the C module (44 KB), not the Rust one (327 KB)

    failed = run("install", str(app_file))
    assert failed.returncode == 74, failed.stderr  # a full disk exits 74 wherever it is (cspm.errors.ExitCode)
    assert f"no space left on the device of the store {store_dir(cache)}" in failed.stderr, failed.stderr
    assert "hint: free some space, or run `cspm cache clean`" in failed.stderr
    assert_consistent(app_file, cache)  # whatever was stored is whole; no temp file is left

    filler.unlink()
    installed = ok("install", str(app_file))
    assert installed["downloaded"] >= 1
    assert_installed(app_file, cache)
    assert_consistent(app_file, cache)
    assert ok("run", str(app_file), "-i", "ahoy")["output"] == "ahoy"


def test_disk_full_before_anything_fits(small_disk: Path, app_file: Path, registry_dir: Path,
                                        faulty: Faulty, monkeypatch: pytest.MonkeyPatch) -> None:
    """Not even the index cache, the store's folders or a temp file fit: still an error, not a traceback."""
    url, _server = faulty(registry_dir)
    add_registry(url)
    cache = small_disk / "cache"
    monkeypatch.setenv("CSPM_CACHE_DIR", str(cache))
    filler = fill(small_disk, leave=0)
    failed = run("install", str(app_file))
    assert failed.returncode != 0
    assert "no space left on the device" in failed.stderr and str(small_disk) in failed.stderr, failed.stderr
    assert not app_file.with_suffix(".lock").exists() or app_file.with_suffix(".lock").read_text()
    filler.unlink()
    ok("install", str(app_file))
    assert_installed(app_file, cache)
    assert_consistent(app_file, cache)


def test_disk_full_for_the_lock_itself(small_disk: Path, app_file: Path, registry_dir: Path,
                                       faulty: Faulty) -> None:
    """The project folder is the full one: `cspm lock` says so and names the file; the old lock is whole."""
    url, _server = faulty(registry_dir)
    add_registry(url)
    project = small_disk / "project"
    project.mkdir()
    app = project / "app.yaml"
    app.write_text(app_file.read_text())
    filler = fill(small_disk, leave=0)
    failed = run("lock", str(app))
    assert failed.returncode == 74, failed.stderr
    assert "error: no space left on the device" in failed.stderr and str(project) in failed.stderr, failed.stderr
    assert "hint: free some space" in failed.stderr and "Traceback" not in failed.stderr
    assert not app.with_suffix(".lock").exists() and not list(project.glob(".app.lock.*"))
    filler.unlink()
    ok("lock", str(app))
    assert app.with_suffix(".lock").is_file()
