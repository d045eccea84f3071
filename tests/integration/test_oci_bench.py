"""Smoke test of bench/oci_bench.py as `bench/run.py --quick` runs it: 50 plug-ins published to a real
docker-registry, a cold install and the plain GETs both measured, the JSON's figures positive and the
summary row built from it; and without its tools the bench says why and exits 0. No timing assertions."""

from __future__ import annotations

import importlib.util
import json
import os
import shutil
import subprocess
import sys
from pathlib import Path

import pytest

from tests.conftest import ROOT
from tests.oci_support import BINARY

_spec = importlib.util.spec_from_file_location("bench_run", ROOT / "bench" / "run.py")
assert _spec is not None and _spec.loader is not None
bench_run = importlib.util.module_from_spec(_spec)  # bench/run.py: the summary rows
_spec.loader.exec_module(bench_run)

BENCH = ROOT / "bench" / "oci_bench.py"


def run_bench(tmp_path: Path, *args: str, env: dict[str, str] | None = None) -> tuple[str, dict]:
    out = tmp_path / "oci.json"
    # a subprocess: the bench points CSPM_*_DIR and the login env at its own temp dir
    done = subprocess.run([sys.executable, str(BENCH), *args, "--json", str(out)], cwd=ROOT, capture_output=True,
                          text=True, timeout=120, env={**os.environ, **(env or {})})
    assert done.returncode == 0, done.stdout + done.stderr
    return done.stdout, json.loads(out.read_text())


@pytest.mark.skipif(not Path(BINARY).exists() or shutil.which("wat2wasm") is None,
                    reason="needs Debian's docker-registry (.ci/setup installs it) and wabt's wat2wasm")
def test_quick_run_measures_both_sides(tmp_path: Path) -> None:
    stdout, result = run_bench(tmp_path, *bench_run.BENCHES["oci"][1])  # exactly what run.py --quick passes
    row = result["oci_cold_install"]
    assert row["plugins"] == 50 and 5 < row["total_mib"] < 20  # 50 modules of 24-320 KiB
    assert row["reps"] >= 1 and row["cspm_ms"] > 0 and row["baseline_ms"] > 0
    assert row["ratio"] == pytest.approx(row["cspm_ms"] / row["baseline_ms"])
    assert row["publish_s"] > 0 and row["lock_s"] > 0
    assert "cold install from OCI (50 plug-ins" in stdout and "httpx GETs of the blobs, 8 threads" in stdout
    rows = bench_run.summary({"oci": result})
    assert len(rows) == 1
    what, ours, base, ratio = rows[0]
    assert what.startswith("cold install from an OCI registry, 50 plug-ins")
    assert ours.endswith(" ms") and base.startswith("plain parallel httpx GETs") and ratio == row["ratio"]


def test_missing_tools_skip_with_the_reason(tmp_path: Path) -> None:
    empty = tmp_path / "bin"
    empty.mkdir()
    # no wat2wasm on this PATH (the interpreter is called by its full path): nothing is started
    stdout, result = run_bench(tmp_path, "--quick", env={"PATH": str(empty)})
    if not Path(BINARY).exists():
        assert "docker-registry" in result["skipped"]
    else:
        assert result == {"skipped": "no `wat2wasm` (wabt)"}
    assert stdout.startswith("skip oci: ")
    assert bench_run.summary({"oci": result}) == []
