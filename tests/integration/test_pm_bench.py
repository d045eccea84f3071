"""Smoke test of bench/pm_bench.py at its smallest: it runs, and its JSON has every number, positive."""

from __future__ import annotations

import json
import shutil
import subprocess
import sys
from pathlib import Path

import pytest

ROOT = Path(__file__).resolve().parents[2]


@pytest.mark.skipif(shutil.which("wat2wasm") is None or shutil.which("sha256sum") is None,
                    reason="needs wabt's wat2wasm and coreutils' sha256sum")
def test_pm_bench_smallest_run(tmp_path: Path) -> None:
    out = tmp_path / "pm.json"
    # a subprocess: the bench points CSPM_*_DIR at its own temp dir, which must not leak into other tests
    done = subprocess.run([sys.executable, str(ROOT / "bench" / "pm_bench.py"), "--quick", "--plugins", "3",
                           "--packages", "30", "--versions", "10", "--require", "10", "--reps", "1",
                           "--json", str(out)], cwd=ROOT, capture_output=True, text=True, timeout=60)
    assert done.returncode == 0, done.stderr
    assert "ratio" in done.stdout and "cold install over HTTP" in done.stdout
    results = json.loads(out.read_text())
    install, resolution = results["install"], results["resolution"]
    assert install["plugins"] == 3 and install["total_mib"] > 0
    for row in (install["warm_install"], install["warm_lock_install"], install["cold_install"], resolution):
        assert {"cspm_ms", "baseline_ms", "ratio"} <= set(row)
        assert row["cspm_ms"] > 0 and row["baseline_ms"] > 0 and row["ratio"] > 0
    assert resolution["resolve_memo_ms"] > 0
    assert (resolution["packages"], resolution["versions"], resolution["requirements"]) == (30, 10, 10)
    assert resolution["resolved"] == 8 + 2 * 5  # 8 tools, 2 bundles each pulling a chain of 4
