"""Runtime benchmarks (issue 2): plug-in instantiation from a cold and a warm compile cache, and the
cost of one routed hop (agent -> host -> tool -> back) beside a bare Extism call of the same tool.

    python bench/runtime_bench.py [--lang c] [--json OUT]

Everything is measured in this run, and reported as ratios to a baseline of the same run.
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
sys.path.insert(0, str(ROOT))
LANGS = ["rust", "c", "zig", "assemblyscript", "go"]
# the routed hop's app: hop = run(with_tool) - run(alone); bench/hosts_bench.py runs it on every host
HOP_APP = """
entry: with_tool
tools:
  - {{name: t, description: echo, plugin_name: {wasm}}}
agents:
  - {{name: with_tool, description: routes to t, plugin_name: {wasm}, config: {{kind: agent}}, tools: [t]}}
  - {{name: alone, description: answers itself, plugin_name: {wasm}, config: {{kind: agent}}}}
"""

INSTANTIATE = r"""
import sys, time, json
t0 = time.perf_counter()
import extism
from cspm.runtime import compiler, hostfns
t1 = time.perf_counter()
wasm = open(sys.argv[1], "rb").read()
limits = compiler.Limits(256, 10000, sys.argv[2] == "1")
t2 = time.perf_counter()
compiled = compiler.compile_module(wasm, limits, hostfns.FUNCTIONS)
t3 = time.perf_counter()
plugin = extism.Plugin(compiled, config={"kind": "tool"})
t4 = time.perf_counter()
for _ in range(20):
    extism.Plugin(compiled, config={"kind": "tool"})
t5 = time.perf_counter()
print(json.dumps({"import_s": t1 - t0, "compile_s": t3 - t2, "instantiate_s": t4 - t3,
                  "reinstantiate_s": (t5 - t4) / 20}))
"""


def instantiation(lang: str, wasm: Path, cache: Path) -> dict:
    env = {**os.environ, "CSPM_CACHE_DIR": str(cache)}
    env.pop("EXTISM_CACHE_CONFIG", None)
    wasi = "1" if lang == "go" else "0"
    runs = [json.loads(subprocess.run([sys.executable, "-c", INSTANTIATE, str(wasm), wasi], env=env, cwd=ROOT,
                                      capture_output=True, text=True, check=True).stdout) for _ in range(2)]
    return {"cold_compile_ms": runs[0]["compile_s"] * 1000, "warm_compile_ms": runs[1]["compile_s"] * 1000,
            "instantiate_ms": runs[1]["instantiate_s"] * 1000, "reinstantiate_ms": runs[1]["reinstantiate_s"] * 1000}


def per_call_us(fn, n: int) -> float:
    """Median of 5 batches, in microseconds per call."""
    batches = []
    for _ in range(5):
        start = time.perf_counter()
        for _ in range(n):
            fn()
        batches.append((time.perf_counter() - start) / n * 1e6)
    return statistics.median(batches)


def routed_hop(wasm: Path, n: int) -> dict:
    from cspm import planner
    from cspm.formats import app as app_format
    from cspm.runtime.engine import Runtime

    with tempfile.TemporaryDirectory() as tmp:
        path = Path(tmp) / "app.yaml"
        path.write_text(HOP_APP.format(wasm=wasm))
        with Runtime(planner.build(app_format.load(path))) as rt:
            tool = rt.nodes["t"].plugin
            payload = json.dumps({"input": "hello"}).encode()
            bare = per_call_us(lambda: tool.call("call", payload), n)
            agent_payload = json.dumps({"input": "hello", "session": "s", "tools": [], "llms": [], "agents": []})
            alone = rt.nodes["alone"].plugin
            agent_bare = per_call_us(lambda: alone.call("call", agent_payload), n)
            routed = per_call_us(lambda: rt.run("hello"), n)
            alone_run = per_call_us(lambda: rt.run("hello", entry="alone"), n)
    hop = routed - alone_run
    return {"bare_tool_call_us": bare, "bare_agent_call_us": agent_bare, "run_agent_alone_us": alone_run,
            "run_agent_with_tool_us": routed, "routed_hop_us": hop, "hop_over_bare_call": hop / bare}


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__)
    parser.add_argument("--lang", action="append", help="languages (default: all built)")
    parser.add_argument("--calls", type=int, default=2000)
    parser.add_argument("--json", type=Path)
    args = parser.parse_args()
    results: dict = {"instantiation": {}, "routing": {}}
    with tempfile.TemporaryDirectory() as cache_root:
        for lang in args.lang or LANGS:
            wasm = ROOT / f"plugins/conformance-{lang}/build/conformance-{lang}.wasm"
            if not wasm.exists():
                print(f"skip {lang}: {wasm} not built (plugins/build-all.sh)")
                continue
            results["instantiation"][lang] = r = instantiation(lang, wasm, Path(cache_root) / lang)
            print(f"{lang:15} {wasm.stat().st_size / 1024:8.0f} KiB  compile cold {r['cold_compile_ms']:8.1f} ms  "
                  f"warm {r['warm_compile_ms']:6.1f} ms  ({r['cold_compile_ms'] / r['warm_compile_ms']:5.0f}x)  "
                  f"instantiate {r['instantiate_ms']:5.2f} ms  again {r['reinstantiate_ms']:5.2f} ms")
    os.environ["CSPM_DATA_DIR"] = tempfile.mkdtemp()
    for lang in args.lang or ["c", "rust"]:
        wasm = ROOT / f"plugins/conformance-{lang}/build/conformance-{lang}.wasm"
        if wasm.exists():
            results["routing"][lang] = r = routed_hop(wasm, args.calls)
            print(f"{lang:15} bare tool call {r['bare_tool_call_us']:6.1f} us   routed hop {r['routed_hop_us']:6.1f} us"
                  f"   ratio {r['hop_over_bare_call']:4.2f}x   (agent alone {r['run_agent_alone_us']:.1f} us, "
                  f"with tool {r['run_agent_with_tool_us']:.1f} us)")
    if args.json:
        args.json.write_text(json.dumps(results, indent=2))


if __name__ == "__main__":
    main()
