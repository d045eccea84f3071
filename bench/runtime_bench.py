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


def interleaved_us(fns: dict, n: int, rounds: int = 15) -> tuple[dict[str, list[float]], dict[str, list[float]]]:
    """µs per call of each function (wall clock, and this thread's CPU time), one batch of n calls each
    per round, the functions taking turns.

    Taking turns puts a shared machine's slow spells on every function alike, so a difference of two
    (the hop: with a tool, minus alone) is taken within a round and its median over rounds reported.
    CPU time leaves out the time the thread waited (preempted by other work on a busy machine, or
    for Extism's timer thread): the guest runs on the calling thread, so it is all counted.
    """
    wall: dict[str, list[float]] = {name: [] for name in fns}
    cpu: dict[str, list[float]] = {name: [] for name in fns}
    for _ in range(rounds):
        for name, fn in fns.items():
            start, start_cpu = time.perf_counter(), time.thread_time()
            for _ in range(n):
                fn()
            cpu[name].append((time.thread_time() - start_cpu) / n * 1e6)
            wall[name].append((time.perf_counter() - start) / n * 1e6)
    return wall, cpu


def _summary(runs: dict[str, list[float]]) -> dict:
    med = {name: statistics.median(values) for name, values in runs.items()}
    hop = statistics.median(r - a for r, a in zip(runs["routed"], runs["alone"], strict=True))
    ratio = statistics.median((r - a) / b for r, a, b in zip(runs["routed"], runs["alone"], runs["bare"], strict=True))
    return {"bare_tool_call_us": med["bare"], "bare_agent_call_us": med["agent_bare"],
            "run_agent_alone_us": med["alone"], "run_agent_with_tool_us": med["routed"], "routed_hop_us": hop,
            "hop_over_bare_call": ratio}


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
            agent_payload = json.dumps({"input": "hello", "session": "s", "tools": [], "llms": [], "agents": []})
            alone = rt.nodes["alone"].plugin
            for _ in range(max(n // 3, 50)):  # warm: caches, the validators compiled at their first use
                rt.run("hello")
                rt.run("hello", entry="alone")
            wall, cpu = interleaved_us({"bare": lambda: tool.call("call", payload),
                                        "agent_bare": lambda: alone.call("call", agent_payload),
                                        "routed": lambda: rt.run("hello"),
                                        "alone": lambda: rt.run("hello", entry="alone")}, n)
    return {**_summary(wall), "cpu": _summary(cpu)}


class _NoSpan:
    """What Span.child returns while spans are knocked out."""

    model = None

    def record(self, *_: object) -> None:
        pass

    def finish(self, *_: object) -> None:
        pass


def hop_profile(wasm: Path, rounds: int, n: int = 400) -> dict[str, float]:
    """CPU µs per hop of each part, measured in place: the run is repeated with one part knocked out
    (a no-op, or a cached answer) and the difference taken, the variants taking turns. The parts that
    run(`alone`) has too (schema checks, log drain, JSON) subtract what the knock-out saves there.
    A profiling tool only: the knock-outs skip checks, so nothing here is a way to run."""
    from extism_sys import ffi, lib

    from cspm import planner
    from cspm.formats import app as app_format
    from cspm.runtime import engine, fastcheck, trace, watchdog
    from cspm.runtime.engine import Frame, Runtime

    def swap(obj: object, name: str, value: object) -> tuple:
        old = getattr(obj, name)
        return (lambda: setattr(obj, name, value)), (lambda: setattr(obj, name, old))

    def both(*pairs: tuple) -> tuple:
        return (lambda: [p[0]() for p in pairs]), (lambda: [p[1]() for p in pairs])

    memo: dict = {}

    def memo_loads(data: bytes, **_: object) -> object:
        if data not in memo:
            memo[data] = json.loads(data)
        return memo[data]

    with tempfile.TemporaryDirectory() as tmp:
        path = Path(tmp) / "app.yaml"
        path.write_text(HOP_APP.format(wasm=wasm))
        with Runtime(planner.build(app_format.load(path))) as rt:
            tool = rt.nodes["t"]
            payload = json.dumps({"input": "hello"}).encode()
            answer = tool.plugin.call("call", payload)
            handle = ffi.new_handle(None)

            def raw_call() -> bytes:  # the tool's call with no Python layer but cffi's
                pointer = tool.plugin.plugin
                lib.extism_plugin_call_with_host_context(pointer, b"call", payload, len(payload), handle)
                lib.extism_plugin_error(pointer)
                return ffi.buffer(lib.extism_plugin_output_data(pointer), lib.extism_plugin_output_length(pointer))[:]

            def routed() -> object:
                return rt.run("hello")

            def alone() -> object:
                return rt.run("hello", entry="alone")

            checks = both(swap(engine, "message_check", lambda _name: (lambda _message: None)),
                          swap(fastcheck, "ANSWERS", {k: (lambda _m: True) for k in fastcheck.ANSWERS}),
                          swap(fastcheck, "REQUESTS", {k: (lambda _m, _n: True) for k in fastcheck.REQUESTS}))
            drain = swap(rt._logs, "drain", lambda: None)
            parse = swap(engine.bounded_json, "loads", memo_loads)
            variants: dict[str, tuple] = {
                "alone": (alone, None), "routed": (routed, None),
                "answered at once": (routed, swap(Frame, "handle", lambda _self, _f, _r: answer)),
                "raw nested call": (routed, swap(Frame, "handle", lambda _self, _f, _r: raw_call())),
                "no checks": (routed, checks), "alone, no checks": (alone, checks),
                "no spans": (routed, swap(trace.Span, "child", lambda _self, *_a, **_k: _NoSpan())),
                "no watchdog": (routed, swap(engine.WATCHDOG, "arm", lambda _d, cancel: watchdog.Armed(cancel))),
                "no drain": (routed, drain), "alone, no drain": (alone, drain),
                "no parse": (routed, parse), "alone, no parse": (alone, parse),
                "bare": (lambda: tool.plugin.call("call", payload), None), "bare raw": (raw_call, None)}
            for _ in range(300):
                routed()
                alone()
            cpu: dict[str, list[float]] = {name: [] for name in variants}
            for _ in range(rounds):
                for name, (fn, patch) in variants.items():
                    if patch:
                        patch[0]()
                    try:
                        start = time.thread_time()
                        for _ in range(n):
                            fn()
                        cpu[name].append((time.thread_time() - start) / n * 1e6)
                    finally:
                        if patch:
                            patch[1]()

    def less(a: str, b: str) -> float:
        return statistics.median(x - y for x, y in zip(cpu[a], cpu[b], strict=True))

    return {"hop": less("routed", "alone"),
            "guest extra + host-function crossing": less("answered at once", "alone"),
            "nested Extism call (raw cffi)": less("raw nested call", "answered at once"),
            "host Python": less("routed", "raw nested call"),
            "- schema checks": less("routed", "no checks") - less("alone", "alone, no checks"),
            "- trace spans": less("routed", "no spans"),
            "- watchdog arm": less("routed", "no watchdog"),
            "- log drain": less("routed", "no drain") - less("alone", "alone, no drain"),
            "- JSON parse": less("routed", "no parse") - less("alone", "alone, no parse"),
            "bare call, extism Plugin.call": statistics.median(cpu["bare"]),
            "bare call, raw cffi": statistics.median(cpu["bare raw"])}


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__)
    parser.add_argument("--lang", action="append", help="languages (default: all built)")
    parser.add_argument("--calls", type=int, default=2000)
    parser.add_argument("--json", type=Path)
    parser.add_argument("--routing-only", action="store_true", help="skip the instantiation measurements")
    parser.add_argument("--profile", type=int, metavar="ROUNDS",
                        help="instead: the routed hop's parts in CPU µs (docs/performance.md), ROUNDS rounds")
    args = parser.parse_args()
    if args.profile:
        os.environ["CSPM_DATA_DIR"] = tempfile.mkdtemp()
        for lang in args.lang or ["c", "rust"]:
            wasm = ROOT / f"plugins/conformance-{lang}/build/conformance-{lang}.wasm"
            parts = hop_profile(wasm, args.profile)
            print(lang, json.dumps({k: round(v, 1) for k, v in parts.items()}))
        return
    results: dict = {"instantiation": {}, "routing": {}}
    with tempfile.TemporaryDirectory() as cache_root:
        for lang in [] if args.routing_only else args.lang or LANGS:
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
            c = r["cpu"]
            print(f"{'':15} cpu time: bare {c['bare_tool_call_us']:6.1f} us   hop {c['routed_hop_us']:6.1f} us"
                  f"   ratio {c['hop_over_bare_call']:4.2f}x")
    if args.json:
        args.json.write_text(json.dumps(results, indent=2))


if __name__ == "__main__":
    main()
