"""Smoke test of bench/hosts_bench.py at its smallest: every host this machine has runs the same plan and
the same llm-local export, its JSON has positive figures and ratios against Python; a host whose tools are
missing is skipped with its reason and leaves no row."""

from __future__ import annotations

import importlib.util
import json
import os
import subprocess
import sys
from pathlib import Path
from typing import Any

from tests.conftest import ROOT, conformance_wasm, plugin_wasm

_spec = importlib.util.spec_from_file_location("bench_run", ROOT / "bench" / "run.py")
assert _spec is not None and _spec.loader is not None
bench_run = importlib.util.module_from_spec(_spec)  # bench/run.py: the summary rows
_spec.loader.exec_module(bench_run)

SMALLEST = ["--quick", "--calls", "5", "--batches", "2", "--budget-ms", "100", "--tokens", "8", "--reps", "1"]


def bench(tmp_path: Path, *args: str, env: dict[str, str] | None = None
          ) -> tuple[subprocess.CompletedProcess[str], dict[str, Any]]:
    conformance_wasm("rust")
    plugin_wasm("llm-local")
    plugin_wasm("kb")
    out = tmp_path / "hosts.json"
    command = [sys.executable, str(ROOT / "bench" / "hosts_bench.py"), *SMALLEST, *args, "--json", str(out)]
    done = subprocess.run(command, cwd=ROOT, capture_output=True, text=True, timeout=300,
                          env={**os.environ, **(env or {})})
    assert done.returncode == 0, done.stderr
    return done, json.loads(out.read_text())


def test_every_available_host_runs_the_same_plan(tmp_path: Path) -> None:
    done, result = bench(tmp_path)
    hosts = result["hosts"]
    expected = {"python"} | {h for h in ("node", "chromium") if h not in result["skipped"]}
    assert result["failed"] == {}
    assert set(hosts) == expected, result["skipped"]
    for name, data in hosts.items():
        hop = data["hop"]
        assert hop["first_output"] == "hello", name  # the conformance agent's answer through its tool
        assert hop["host_call_us"] > 0 and hop["run_agent_alone_us"] > 0 and hop["run_agent_with_tool_us"] > 0
        assert data["decode"]["decode_tok_s"] > 0 and data["decode"]["generated_tokens"] == 8, name
    for name in expected - {"python"}:
        assert set(result["ratios"][name]) == {"host_call_us", "routed_hop_us", "decode_tok_s"}
    rows = bench_run._host_rows(result)
    assert len(rows) == 3 * (len(expected) - 1)
    # every row has its ratio; a time or a rate is positive. The hop is a difference of two timings
    # (with the tool − alone): at this smallest size (5 calls) a loaded machine can make it ≤ 0, so
    # only its presence is asserted here, and its size is the benchmark's business
    assert all(ratio is not None for *_, ratio in rows)
    assert all(ratio > 0 for what, _, _, ratio in rows if "routed hop" not in what and ratio is not None)
    assert "node ÷ python" in done.stdout or "node" in result["skipped"]


def test_a_host_without_its_tools_is_skipped_with_the_reason(tmp_path: Path) -> None:
    empty = tmp_path / "bin"
    empty.mkdir()
    # a PATH with neither node nor chromium on it (the Python interpreter is called by its full path)
    done, result = bench(tmp_path, env={"PATH": str(empty)})
    assert result["skipped"]["node"] == "node is not installed"
    assert result["skipped"]["chromium"] == "node is not installed"
    assert "skip node: node is not installed" in done.stdout
    assert set(result["hosts"]) == {"python"} and result["ratios"] == {}
    assert bench_run._host_rows(result) == []
