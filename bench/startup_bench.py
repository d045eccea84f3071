"""Warm `cspm run` start-up beside `python -c 'import extism'` (the floor of any Python Extism host).

    python bench/startup_bench.py [--runs 10] [--json OUT]

The app is `examples/hello-conformance.yaml` (an agent calling a tool, both local modules), run once
first so that its plan and the compile cache are warm; then each run is a whole process: start
Python, import cspm, find the cached plan (cspm.plan_cache: the warm fast path, cspm.cli.fast_run),
instantiate the plug-ins from the compile cache, route one call, print. A second row plans on every
run as before the fast path (`--offline`, a flag the fast path leaves to the normal path and a no-op
for a local app): parse app.yaml, check it, hash the modules, build the plan, with typer and rich.
The `CSPM_*` folders point into a temp dir; bytecode is cached as after `pip install`
(PYTHONDONTWRITEBYTECODE is unset). The three commands take turns, so that a busy machine slows
each alike; medians of --runs.
"""

from __future__ import annotations

import argparse
import json
import os
import statistics
import subprocess
import sys
import tempfile
import time
from pathlib import Path

ROOT = Path(__file__).resolve().parent.parent


def once(cmd: list[str], env: dict[str, str]) -> float:
    """Wall time of one run of cmd, in ms; a failing run stops the benchmark."""
    start = time.perf_counter()
    done = subprocess.run(cmd, env=env, cwd=ROOT, capture_output=True, text=True)
    elapsed = (time.perf_counter() - start) * 1000
    if done.returncode != 0:
        sys.exit(f"{' '.join(cmd)} failed (exit {done.returncode}):\n{done.stderr[-2000:]}")
    return elapsed


def timed(cmds: dict[str, list[str]], env: dict[str, str], runs: int) -> dict[str, float]:
    """Median ms of each command, the commands taking turns."""
    samples: dict[str, list[float]] = {name: [] for name in cmds}
    for _ in range(runs):
        for name, cmd in cmds.items():
            samples[name].append(once(cmd, env))
    return {name: statistics.median(values) for name, values in samples.items()}


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("--runs", type=int, default=10)
    parser.add_argument("--json", type=Path)
    args = parser.parse_args()
    with tempfile.TemporaryDirectory(prefix="cspm-startup-bench-") as scratch:
        env = {**os.environ, **{f"CSPM_{k}_DIR": str(Path(scratch) / k.lower()) for k in ("CONFIG", "CACHE", "DATA")}}
        env.pop("PYTHONDONTWRITEBYTECODE", None)  # as installed: bytecode cached, as pip compiles it
        cspm = [sys.executable, "-m", "cspm"]
        hello = [*cspm, "run", "examples/hello-conformance.yaml", "--input", "hi"]
        once(hello, env)  # warm the plan and the compile cache
        got = timed({"baseline": [sys.executable, "-c", "import extism"], "warm": hello,
                     "planned": [*hello, "--offline"]}, env, args.runs)
    baseline, run_ms, planned_ms = got["baseline"], got["warm"], got["planned"]
    print(f"{'':40}{'ms':>9}   {'baseline':26}{'ms':>9}{'ratio':>9}")
    for what, ms in (("warm `cspm run` (agent + tool)", run_ms), ("planned every run (before the fast path)",
                                                                  planned_ms)):
        print(f"{what:40}{ms:9.1f}   {'python -c import extism':26}{baseline:9.1f}{ms / baseline:8.2f}x")
    if args.json:
        args.json.write_text(json.dumps({"startup_ms": {"warm_run": run_ms, "import_extism": baseline,
                                                        "ratio": run_ms / baseline, "planned_run": planned_ms,
                                                        "planned_ratio": planned_ms / baseline}}, indent=2))


if __name__ == "__main__":
    main()
