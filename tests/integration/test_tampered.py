"""A blob whose bytes changed (here: one import name, so its interface differs too) is reported as a
digest mismatch, the first check of every blob, whether it is downloaded or already in the store."""

from __future__ import annotations

import json
import os
from pathlib import Path

from tests.integration import test_cli_pm as pm
from tests.integration.test_cli import cspm
from tests.integration.test_cli_pm import ok

app, registry, sources, own_config_and_cache = pm.app, pm.registry, pm.sources, pm.own_config_and_cache  # fixtures


def tamper_import(blob: Path) -> None:
    """Rename one import (same length): a valid module with another import section."""
    data = blob.read_bytes()
    assert b"error_set" in data
    blob.chmod(0o644)
    blob.write_bytes(data.replace(b"error_set", b"error_sez", 1))


def echo_digest(registry: Path) -> str:
    line = (registry / "index" / "test" / "echo").read_text().splitlines()[0]
    return json.loads(line)["digest"]


def test_a_download_with_a_changed_import_section_is_a_digest_mismatch(app: Path, registry: Path) -> None:
    digest = echo_digest(registry)
    tamper_import(registry / "blobs" / "sha256" / digest.split(":")[1])
    result = cspm("install", str(app))
    assert result.returncode == 1, result.stderr
    assert f"download of {digest}" in result.stderr and "has digest sha256:" in result.stderr, result.stderr
    assert "describes other exports/imports" not in result.stderr


def test_a_stored_blob_with_a_changed_import_section_is_a_digest_mismatch(app: Path, registry: Path) -> None:
    assert ok("install", str(app))["downloaded"] == 2
    digest = echo_digest(registry)
    stored = Path(os.environ["CSPM_CACHE_DIR"]) / "store" / "blobs" / "sha256" / digest[7:9] / digest[7:]
    tamper_import(stored)
    ran = cspm("run", str(app), "-i", "x")
    assert ran.returncode == 1 and f"the stored module {digest} is corrupted" in ran.stderr, ran.stderr
    again = cspm("install", str(app), "--json")  # re-hashed first: removed and fetched again
    assert again.returncode == 0 and json.loads(again.stdout)["downloaded"] == 1, again.stderr
    assert "no longer matches its digest" in again.stderr
    assert ok("run", str(app), "-i", "ahoy")["output"] == "ahoy"


def test_no_lock_is_written_when_a_blob_it_pins_cannot_be_verified(app: Path, registry: Path) -> None:
    """The lock is written after every blob it pins is fetched and verified: a failed install leaves no
    lock that `--frozen` would then refuse to go on from (issue 18)."""
    lock = app.with_suffix(".lock")
    assert not lock.exists()
    tamper_import(registry / "blobs" / "sha256" / echo_digest(registry).split(":")[1])
    failed = cspm("install", str(app))
    assert failed.returncode == 1 and "has digest sha256:" in failed.stderr, failed.stderr
    assert not lock.exists()
    failed = cspm("run", str(app), "-i", "x")
    assert failed.returncode == 1 and not lock.exists()
