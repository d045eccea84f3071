"""Run every fuzz harness for a bounded time and report executions per harness.

    python fuzz/run.py --seconds 20            # each harness 20 s, one after the other
    python fuzz/run.py --seconds 3 --only wasm

Each harness (fuzz/harnesses/<name>.py, atheris + libFuzzer) runs in its own subprocess with
`-max_total_time`, seeded from fuzz/corpus/<name>/ (copied: what libFuzzer adds goes to a temp folder,
never into the repository). A crash (an exception the harness does not expect) ends that harness;
its input is kept under fuzz/crashes/ and the run exits 1. Exit 0: every harness ran clean.
"""

from __future__ import annotations

import argparse
import json
import re
import shutil
import subprocess
import sys
import tempfile
import time
from pathlib import Path

HERE = Path(__file__).resolve().parent
HARNESSES = sorted(p.stem for p in (HERE / "harnesses").glob("*.py"))
MAX_LEN = {"wasm": 16384, "formats": 8192, "specifier": 512}


def run_one(name: str, seconds: int, work: Path, crashes: Path) -> dict:
    corpus, artifacts = work / name / "corpus", work / name / "artifacts"
    artifacts.mkdir(parents=True)
    shutil.copytree(HERE / "corpus" / name, corpus)
    command = [sys.executable, str(HERE / "harnesses" / f"{name}.py"), str(corpus),
               f"-max_total_time={seconds}", "-timeout=10", "-rss_limit_mb=2048",
               f"-max_len={MAX_LEN.get(name, 4096)}", f"-artifact_prefix={artifacts}/",
               "-print_final_stats=1"]
    if (HERE / "dicts" / f"{name}.dict").is_file():
        command.append(f"-dict={HERE / 'dicts' / f'{name}.dict'}")
    started = time.monotonic()
    result = subprocess.run(command, capture_output=True, text=True, errors="replace",
                            timeout=seconds + 120, cwd=HERE.parent)
    elapsed = time.monotonic() - started
    output = result.stdout + "\n" + result.stderr
    runs = re.findall(r"stat::number_of_executed_units:\s*(\d+)", output) or \
        re.findall(r"Done (\d+) runs", output) or re.findall(r"#(\d+)\s", output)
    found = sorted(artifacts.iterdir())
    kept = []
    for artifact in found:
        crashes.mkdir(parents=True, exist_ok=True)
        target = crashes / f"{name}-{artifact.name}"
        shutil.copy(artifact, target)
        kept.append(str(target))
    ok = result.returncode == 0 and not found
    report = {"harness": name, "executions": int(runs[-1]) if runs else 0, "seconds": round(elapsed, 1),
              "ok": ok, "crashes": kept}
    if not ok:
        error = re.search(r"=== Uncaught Python exception: ===.*?(?=\n(?:INFO|==\d+==|MS:|artifact_prefix)|\Z)",
                          output, re.S)
        report["error"] = (error.group(0) if error else output[-3000:]).strip()
    return report


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--seconds", type=int, default=20, help="time per harness (default 20)")
    parser.add_argument("--only", action="append", choices=HARNESSES, help="run this harness (repeatable)")
    parser.add_argument("--json", type=Path, help="also write the report here")
    args = parser.parse_args(argv)
    try:
        import atheris  # noqa: F401
    except ImportError:
        print("atheris is not installed: pip install atheris", file=sys.stderr)
        return 2
    reports = []
    with tempfile.TemporaryDirectory(prefix="cspm-fuzz-") as tmp:
        for name in args.only or HARNESSES:
            report = run_one(name, args.seconds, Path(tmp), HERE / "crashes")
            reports.append(report)
            status = "ok" if report["ok"] else "CRASH"
            print(f"{name:<12} {report['executions']:>10,} executions in {report['seconds']:>5.1f} s  {status}",
                  flush=True)
            if not report["ok"]:
                print(report["error"], "\n", "input kept in", ", ".join(report["crashes"]) or "(none)",
                      file=sys.stderr, flush=True)
    total = sum(r["executions"] for r in reports)
    print(f"{'total':<12} {total:>10,} executions")
    if args.json:
        args.json.write_text(json.dumps({"harnesses": reports, "total": total}, indent=2) + "\n")
    return 0 if all(r["ok"] for r in reports) else 1


if __name__ == "__main__":
    sys.exit(main())
