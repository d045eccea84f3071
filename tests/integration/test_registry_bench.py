"""Smoke test of bench/registry_bench.py as `bench/run.py --quick` runs it: the server's index reads against
nginx, and the replicas' rows on a real PostgreSQL + SeaweedFS (static reads of the write-through tree,
staleness, publish throughput with 1 and 3 replicas); the JSON's shape, its figures positive, the
summary rows built from it; and without its servers the replica part says why. No timing assertions."""

from __future__ import annotations

import importlib.util
import json
import subprocess
import sys
from pathlib import Path
from types import ModuleType

import pytest

from tests.conftest import ROOT


def _load(name: str, path: Path) -> ModuleType:
    spec = importlib.util.spec_from_file_location(name, path)
    assert spec is not None and spec.loader is not None
    module = importlib.util.module_from_spec(spec)
    spec.loader.exec_module(module)
    return module


bench_run = _load("bench_run", ROOT / "bench" / "run.py")  # the summary rows
registry_bench = _load("registry_bench", ROOT / "bench" / "registry_bench.py")

BENCH = ROOT / "bench" / "registry_bench.py"


def test_quick_run_measures_every_row(tmp_path: Path) -> None:
    out = tmp_path / "registry.json"
    done = subprocess.run([sys.executable, str(BENCH), *bench_run.BENCHES["registry"][1], "--json", str(out)],
                          cwd=ROOT, capture_output=True, text=True, timeout=240)
    assert done.returncode == 0, done.stdout + done.stderr
    result = json.loads(out.read_text())
    reads = result["registry_index_reads"]
    assert reads["server_200_rps"] > 0 and reads["static_304_rps"] > 0
    assert reads["ratio_200"] == pytest.approx(reads["server_200_rps"] / reads["static_200_rps"])
    replicas = result["registry_replicas"]
    missing = registry_bench.replica_servers_missing()
    if missing:
        assert replicas == {"skipped": missing} and f"skip replicas: {missing}" in done.stdout
        assert len(bench_run.summary({"registry": result})) == 2
        return

    throughput = replicas["publish_throughput"]
    assert throughput["publishes"] == 60 and throughput["clients"] == 6 and throughput["cores"] >= 1
    assert throughput["one_replica_per_s"] > 0 and throughput["three_replicas_per_s"] > 0
    assert throughput["ratio"] == pytest.approx(throughput["three_replicas_per_s"] / throughput["one_replica_per_s"])
    expected_rows = 3
    if registry_bench.NGINX is None:
        assert replicas["static_reads"]["skipped"].startswith("no nginx")
    else:
        reads = replicas["static_reads"]
        assert reads["index_bytes"] > 0 and reads["seconds"] > 0 and reads["generator"].startswith("httpx")
        for code in ("200", "304"):
            assert reads[f"writethrough_{code}_rps"] > 0 and reads[f"export_{code}_rps"] > 0
            assert reads[f"ratio_{code}"] == pytest.approx(reads[f"writethrough_{code}_rps"] /
                                                           reads[f"export_{code}_rps"])
        stale = replicas["staleness"]
        assert stale["publishes"] == 10 and 0 < stale["visible_ms_median"] <= stale["visible_ms_max"]
        assert 0 < stale["publish_rtt_ms_median"] <= stale["publish_rtt_ms_max"] and stale["poll_interval_ms"] > 0
        assert stale["ratio"] == pytest.approx(stale["visible_ms_median"] / stale["publish_rtt_ms_median"])
        assert "(write-through / export)" in done.stdout and "staleness over 10 publishes" in done.stdout
        expected_rows = 6
    assert "publish throughput, 60 distinct versions from 6 clients" in done.stdout
    rows = bench_run.summary({"registry": result})
    assert len(rows) == expected_rows
    what, ours, base, ratio = rows[-1]
    assert what.startswith("registry publishes/s, 3 replicas on PostgreSQL + S3") and ours.endswith("/s")
    assert base.startswith("1 replica ") and ratio == throughput["ratio"]
    if expected_rows == 6:
        assert rows[2][0].startswith("registry index read (200) from the replicas' write-through tree via nginx")
        assert rows[4][0].startswith("registry staleness") and rows[4][3] == replicas["staleness"]["ratio"]


def test_without_weed_the_replica_part_says_why(monkeypatch: pytest.MonkeyPatch, tmp_path: Path) -> None:
    pytest.importorskip("psycopg", reason="the cloud extra: pip install -e 'registry-server[cloud]'")
    pytest.importorskip("boto3", reason="the cloud extra: pip install -e 'registry-server[cloud]'")
    monkeypatch.setenv("PATH", str(tmp_path))  # no `weed` (nor initdb, which may still be in /usr/lib/postgresql)
    missing = registry_bench.replica_servers_missing()
    assert missing is not None and ("weed" in missing or "initdb" in missing)
    # nothing is started: the part returns the reason at once
    assert registry_bench.replicas_benchmark(tmp_path, 1.0, True) == {"skipped": missing}
    assert bench_run.summary({"registry": {"registry_replicas": {"skipped": missing}}}) == []
