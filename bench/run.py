"""Every benchmark in one command, each printing ratios against a baseline measured in the same run.

    python bench/run.py [--quick] [--json OUT] [--only NAME ...]

Runs the benchmark scripts of this folder one after another (each in its own process, so none
warms another's caches), shows their tables as they finish, and writes all their JSON results into
one file. A benchmark that cannot run here (a missing fixture, a missing tool) says so and the
others go on.
"""

from __future__ import annotations

import argparse
import json
import subprocess
import sys
import tempfile
import time
from pathlib import Path

HERE = Path(__file__).resolve().parent

# name -> (script, arguments for --quick, arguments for a full run)
BENCHES: dict[str, tuple[str, list[str], list[str]]] = {
    "runtime": ("runtime_bench.py", ["--calls", "300"], []),
    "package-manager": ("pm_bench.py", ["--quick"], []),
    "registry": ("registry_bench.py", ["--quick"], []),
    "signatures": ("signature_bench.py", ["--quick"], []),
    "llm-local": ("llm_local_bench.py", ["--quick"], ["--quick", "--tokens", "128"]),
}


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("--quick", action="store_true", help="short runs (CI)")
    parser.add_argument("--json", type=Path, help="write every result here")
    parser.add_argument("--only", nargs="*", choices=sorted(BENCHES), help="run only these")
    args = parser.parse_args()
    results: dict[str, object] = {}
    failed = []
    with tempfile.TemporaryDirectory(prefix="cspm-bench-") as scratch:
        for name, (script, quick, full) in BENCHES.items():
            if args.only and name not in args.only:
                continue
            out = Path(scratch) / f"{name}.json"
            print(f"\n== {name} ({script})", flush=True)
            start = time.monotonic()
            done = subprocess.run([sys.executable, str(HERE / script), *(quick if args.quick else full),
                                   "--json", str(out)], cwd=HERE.parent)
            elapsed = time.monotonic() - start
            if done.returncode != 0:
                failed.append(name)
                results[name] = {"error": f"exit {done.returncode}"}
                continue
            data = json.loads(out.read_text()) if out.exists() else {"skipped": True}
            results[name] = {"seconds": round(elapsed, 1), **(data if isinstance(data, dict) else {"data": data})}
    if args.json:
        args.json.write_text(json.dumps({"quick": args.quick, "python": sys.version.split()[0],
                                         "results": results}, indent=2))
        print(f"\nresults written to {args.json}")
    if failed:
        print(f"failed: {', '.join(failed)}", file=sys.stderr)
        sys.exit(1)


if __name__ == "__main__":
    main()
