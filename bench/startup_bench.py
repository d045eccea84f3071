"""Warm `cspm run` start-up beside `python -c 'import extism'` (the floor of any Python Extism host).

    python bench/startup_bench.py [--runs 10] [--json OUT]

The app is `examples/hello-conformance.yaml` (an agent calling a tool, both local modules), run once
first so that its lock and the compile cache are warm; then each run is a whole process: start
Python, import cspm, load app and lock, instantiate two plug-ins from the compile cache, route one
call, print. The `CSPM_*` folders point into a temp dir; bytecode is cached as after `pip install`
(PYTHONDONTWRITEBYTECODE is unset). Medians of --runs.
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


def timed(cmd: list[str], env: dict[str, str], runs: int) -> float:
    """Median wall time of `runs` runs of cmd, in ms; a failing run stops the benchmark."""
    samples = []
    for _ in range(runs):
        start = time.perf_counter()
        done = subprocess.run(cmd, env=env, cwd=ROOT, capture_output=True, text=True)
        samples.append((time.perf_counter() - start) * 1000)
        if done.returncode != 0:
            sys.exit(f"{' '.join(cmd)} failed (exit {done.returncode}):\n{done.stderr[-2000:]}")
    return statistics.median(samples)


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
        timed(hello, env, 1)  # warm the lock and the compile cache
        baseline = timed([sys.executable, "-c", "import extism"], env, args.runs)
        run_ms = timed(hello, env, args.runs)
    print(f"{'':36}{'ms':>9}   {'baseline':26}{'ms':>9}{'ratio':>9}")
    print(f"{'warm `cspm run` (agent + tool)':36}{run_ms:9.1f}   {'python -c import extism':26}{baseline:9.1f}"
          f"{run_ms / baseline:8.2f}x")
    if args.json:
        args.json.write_text(json.dumps({"startup_ms": {"warm_run": run_ms, "import_extism": baseline,
                                                        "ratio": run_ms / baseline}}, indent=2))


if __name__ == "__main__":
    main()
