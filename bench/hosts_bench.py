"""The same app on the three hosts (issue 20): the Python host, the Node host (hosts/js) and the browser
host in headless Chromium, in one run, each measured against the Python host.

    python bench/hosts_bench.py [--quick] [--lang rust] [--json OUT]

Routing: the app of bench/runtime_bench.py (tool `t` and agents `with_tool`, which calls t, and `alone`,
all the conformance plug-in), planned once with `cspm plan --json`; every host runs that plan. Per host:
a plug-in call through the host (t's `call` export: Runtime.call_export, Host.call), and the routed hop
= run(with_tool) − run(alone). Decode: llm-local's `bench` export on the self-ask demo's `tiny` model
(examples/self-ask-demo, planned offline), tokens/s as the plug-in times them. Node runs
hosts/js/bench/node_bench.js (plug-ins in extism workers, as src/node.js sets them up). Chromium loads
the page `cspm web` writes (its own Host: extism's worker for a plain plug-in, JSPI on the page's thread
for a WASI one) from a loopback server with COOP/COEP, and times that page's Host with
hosts/js/bench/measure.js; the page's script is built from the current sources for this run
(hosts/js/bench/build_page.js, given to `cspm web` as $CSPM_WEB_DIST), never a stale hosts/js/dist.
Times are medians of batches; a batch stops early after --budget-ms, so a slow host gets fewer calls
rather than a longer run. A host that cannot run here (no node, no npm install, no chromium or
playwright) is skipped with the reason, its rows left out; a host that fails exits 1 after the others ran.
"""

from __future__ import annotations

import argparse
import json
import mimetypes
import os
import shutil
import statistics
import subprocess
import sys
import tempfile
import threading
import time
from collections.abc import Callable, Iterator
from contextlib import contextmanager
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer
from pathlib import Path
from typing import Any

ROOT = Path(__file__).resolve().parent.parent
sys.path.insert(0, str(ROOT))
sys.path.insert(0, str(ROOT / "bench"))
from runtime_bench import HOP_APP  # noqa: E402 (bench/ is on the path only from here)

HOST_JS = ROOT / "hosts" / "js"
MEASURE_JS = HOST_JS / "bench" / "measure.js"
DEMO = ROOT / "examples" / "self-ask-demo"
PROMPT = "Once upon a time, in a small village by the sea, there lived an old fisherman who"
HOSTS = ("python", "node", "chromium")
APP = HOP_APP  # bench/runtime_bench.py's routed-hop app, so these rows compare with its rows


def per_call_us(fn: Callable[[], object], calls: int, batches: int, budget_ms: float) -> float:
    """Median over batches of microseconds per call; measure.js's perCallUs, in Python."""
    times = []
    for _ in range(batches):
        start = time.perf_counter()
        done = 0
        while done < calls:
            fn()
            done += 1
            if (time.perf_counter() - start) * 1000 >= budget_ms:
                break
        times.append((time.perf_counter() - start) / done * 1e6)
    return statistics.median(times)


def cspm(*args: str) -> str:
    done = subprocess.run([sys.executable, "-m", "cspm", *args], capture_output=True, text=True, cwd=ROOT,
                          timeout=300)
    if done.returncode != 0:
        sys.exit(f"cspm {' '.join(args)} failed:\n{done.stderr[-2000:]}")
    return done.stdout


# ---- Python ------------------------------------------------------------------------------------------

def python_hop(plan: dict[str, Any], calls: int, batches: int, budget_ms: float) -> dict[str, Any]:
    from cspm.formats import plan as plan_format
    from cspm.runtime.engine import Runtime

    with Runtime(plan_format.from_dict(plan)) as rt:
        payload = json.dumps({"input": "hello"}).encode()
        first = rt.run("hello")
        bare = per_call_us(lambda: rt.call_export("t", "call", payload), calls, batches, budget_ms)
        tool = rt.nodes["t"].plugin  # runtime_bench's bare call: the extism plug-in without the host
        extism = per_call_us(lambda: tool.call("call", payload), calls, batches, budget_ms)
        routed = per_call_us(lambda: rt.run("hello"), calls, batches, budget_ms)
        alone = per_call_us(lambda: rt.run("hello", entry="alone"), calls, batches, budget_ms)
    return {"host_call_us": bare, "run_agent_with_tool_us": routed, "run_agent_alone_us": alone,
            "routed_hop_us": routed - alone, "hop_over_host_call": (routed - alone) / bare,
            "extism_call_us": extism, "first_output": first.output}


def python_decode(plan: dict[str, Any], tokens: int, reps: int) -> dict[str, Any]:
    from cspm.formats import plan as plan_format
    from cspm.runtime.engine import Runtime

    data = json.dumps({"text": PROMPT, "n": tokens}).encode()
    with Runtime(plan_format.from_dict(plan)) as rt:
        rows = [json.loads(rt.call_export("tiny", "bench", data)) for _ in range(reps)]
    return {"decode_tok_s": statistics.median(r["n_gen"] / r["decode_s"] for r in rows),
            "prefill_tok_s": statistics.median(r["n_prompt"] / r["prefill_s"] for r in rows),
            "prompt_tokens": rows[0]["n_prompt"], "generated_tokens": rows[0]["n_gen"], "reps": reps}


# ---- Node --------------------------------------------------------------------------------------------

def node_missing() -> str | None:
    if shutil.which("node") is None:
        return "node is not installed"
    if not (HOST_JS / "node_modules" / "@extism" / "extism").is_dir():
        return "hosts/js/node_modules is missing (`npm ci` in hosts/js)"
    return None


def node_run(*args: str) -> dict[str, Any]:
    done = subprocess.run(["node", "--no-warnings", str(HOST_JS / "bench" / "node_bench.js"), *args],
                          capture_output=True, text=True, cwd=ROOT, timeout=600)
    if done.returncode != 0:
        raise RuntimeError(f"node_bench.js {args[0]} failed: {done.stderr.strip()[-1500:]}")
    result: dict[str, Any] = json.loads(done.stdout)
    return result


# ---- Chromium ----------------------------------------------------------------------------------------

def chromium_missing() -> str | None:
    if node_missing() is not None:
        return str(node_missing())
    if not (HOST_JS / "node_modules" / "esbuild").is_dir():
        return "esbuild is not in hosts/js/node_modules (`npm ci` in hosts/js, with dev dependencies)"
    if shutil.which("chromium") is None:
        return "chromium (Debian package) is not installed"
    try:
        import playwright.sync_api  # noqa: F401
    except ImportError:
        return "playwright (PyPI) is not installed"
    return None


@contextmanager
def serve(sites: dict[str, Path]) -> Iterator[str]:
    """A loopback server: /NAME/… from each site folder, /bench/measure.js; COOP/COEP on all (extism's
    worker mode needs cross-origin isolation, as `cspm web --serve` gives it)."""
    roots = {name: folder.resolve() for name, folder in sites.items()}

    class Handler(BaseHTTPRequestHandler):
        def log_message(self, format: str, *args: Any) -> None:
            pass

        def do_GET(self) -> None:
            path = self.path.split("?", 1)[0]
            target: Path | None = MEASURE_JS if path == "/bench/measure.js" else None
            head, _, rest = path.lstrip("/").partition("/")
            if target is None and head in roots:
                candidate = (roots[head] / (rest or "index.html")).resolve()
                if candidate.is_relative_to(roots[head]) and candidate.is_file():
                    target = candidate
            if target is None:
                self.send_error(404)
                return
            body = target.read_bytes()
            kind = ("text/javascript" if target.suffix == ".js" else "application/wasm" if target.suffix == ".wasm"
                    else mimetypes.guess_type(target.name)[0] or "application/octet-stream")
            self.send_response(200)
            for key, value in (("Content-Type", kind), ("Content-Length", str(len(body))),
                               ("Cross-Origin-Opener-Policy", "same-origin"),
                               ("Cross-Origin-Embedder-Policy", "require-corp"),
                               ("Cross-Origin-Resource-Policy", "same-origin"), ("Cache-Control", "no-store")):
                self.send_header(key, value)
            self.end_headers()
            self.wfile.write(body)

    httpd = ThreadingHTTPServer(("127.0.0.1", 0), Handler)
    thread = threading.Thread(target=httpd.serve_forever, daemon=True)
    thread.start()
    try:
        yield f"http://127.0.0.1:{httpd.server_address[1]}"
    finally:
        httpd.shutdown()
        httpd.server_close()


OPEN_PAGE_HOST = """async () => {
  const state = document.body.dataset.state;
  if (state !== "ready") throw new Error(`the page is ${state}: ${document.getElementById("status")?.innerText}`);
  const web = await import(new URL("chainsocket-web.js", document.baseURI).href);  // the page's own module
  window.benchHost = web.page.host;
  window.benchMeasure = await import("/bench/measure.js");
  return window.crossOriginIsolated;
}"""


def page_build(into: Path) -> Path:
    """A `cspm web` build folder (as hosts/js/dist) whose script is built now from hosts/js's sources."""
    into.mkdir()
    done = subprocess.run(["node", str(HOST_JS / "bench" / "build_page.js"), str(into / "chainsocket-web.js")],
                          capture_output=True, text=True, cwd=ROOT, timeout=120)
    if done.returncode != 0:
        raise RuntimeError(f"building the page script failed: {done.stderr.strip()[-1500:]}")
    for name in ("index.html", "style.css"):
        shutil.copyfile(HOST_JS / "web" / name, into / name)
    return into


def chromium_measure(base: str, site: str, fn: str, args: dict[str, Any]) -> dict[str, Any]:
    """Opens /SITE/ (a `cspm web` page), waits for its Host, and runs measure.js's FN on that Host."""
    from playwright.sync_api import sync_playwright

    with sync_playwright() as p:
        browser = p.chromium.launch(executable_path=shutil.which("chromium"))
        try:
            page = browser.new_page()
            errors: list[str] = []
            page.on("pageerror", lambda e: errors.append(str(e)))
            page.set_default_timeout(300_000)
            page.goto(f"{base}/{site}/index.html")
            page.wait_for_function("['ready', 'failed'].includes(document.body.dataset.state)", timeout=120_000)
            isolated = page.evaluate(OPEN_PAGE_HOST)
            result: dict[str, Any] = page.evaluate(f"(args) => window.benchMeasure.{fn}(window.benchHost, args)", args)
            if errors:
                raise RuntimeError(f"page errors: {errors[:3]}")
            return {**result, "cross_origin_isolated": isolated, "chromium": browser.version}
        finally:
            browser.close()


# ---- the run -----------------------------------------------------------------------------------------

def ratios(hosts: dict[str, dict[str, Any]]) -> dict[str, dict[str, float]]:
    """Each other host against Python: times as host ÷ Python (lower is better), tok/s likewise (higher)."""
    base = hosts.get("python", {})
    out: dict[str, dict[str, float]] = {}
    for name, data in hosts.items():
        if name == "python":
            continue
        r: dict[str, float] = {}
        for key in ("host_call_us", "routed_hop_us"):
            if key in data.get("hop", {}) and key in base.get("hop", {}):
                r[key] = data["hop"][key] / base["hop"][key]
        if "decode" in data and "decode" in base:
            r["decode_tok_s"] = data["decode"]["decode_tok_s"] / base["decode"]["decode_tok_s"]
        out[name] = r
    return out


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--quick", action="store_true", help="short batches and fewer tokens (CI)")
    parser.add_argument("--lang", default="rust", help="the conformance plug-in's language (default rust)")
    parser.add_argument("--calls", type=int, help="calls per batch (default 300; quick 100)")
    parser.add_argument("--batches", type=int, default=5)
    parser.add_argument("--budget-ms", type=int, help="a batch stops after this long (default 2000; quick 300)")
    parser.add_argument("--tokens", type=int, help="tokens decoded per bench call (default 384; quick 128)")
    parser.add_argument("--reps", type=int, help="bench calls per host (default 5; quick 3)")
    parser.add_argument("--host", action="append", choices=HOSTS, help="only these hosts (default all)")
    parser.add_argument("--json", type=Path, help="also write the results here")
    args = parser.parse_args()
    calls = args.calls or (100 if args.quick else 300)
    budget = args.budget_ms or (300 if args.quick else 2000)
    tokens = args.tokens or (128 if args.quick else 384)
    reps = args.reps or (3 if args.quick else 5)
    if not 1 <= calls <= 100_000 or not 1 <= args.batches <= 50 or not 1 <= budget <= 60_000 \
            or not 1 <= tokens <= 480 or not 1 <= reps <= 50:
        parser.error("out of range: calls 1..100000, batches 1..50, budget-ms 1..60000, tokens 1..480, reps 1..50")
    wasm = ROOT / f"plugins/conformance-{args.lang}/build/conformance-{args.lang}.wasm"
    if not wasm.is_file():
        sys.exit(f"{wasm} is not built (plugins/build-all.sh)")
    wanted = args.host or list(HOSTS)
    skipped: dict[str, str] = {}
    for name, missing in (("node", node_missing), ("chromium", chromium_missing)):
        if name in wanted and (why := missing()) is not None:
            skipped[name] = why
            print(f"skip {name}: {why}")
    hosts: dict[str, dict[str, Any]] = {}
    failed: dict[str, str] = {}

    with tempfile.TemporaryDirectory(prefix="hosts-bench-") as tmp:
        work = Path(tmp)
        for var in ("CSPM_CACHE_DIR", "CSPM_DATA_DIR", "CSPM_CONFIG_DIR"):  # keep the user's dirs clean
            os.environ[var] = str(work / var.lower())
        (work / "hop").mkdir()
        app = work / "hop" / "app.yaml"
        app.write_text(APP.format(wasm=wasm))
        demo = work / "self-ask-demo"
        shutil.copytree(DEMO, demo)  # planning may write its lock: never into examples/
        hop_plan_path, demo_plan_path = work / "hop-plan.json", work / "demo-plan.json"
        hop_plan_path.write_text(cspm("plan", str(app), "--json"))
        demo_plan_path.write_text(cspm("plan", str(demo / "app.yaml"), "--offline", "--json"))
        hop_plan, demo_plan = json.loads(hop_plan_path.read_text()), json.loads(demo_plan_path.read_text())
        hop_args = {"calls": calls, "batches": args.batches, "budgetMs": budget}
        decode_args = {"component": "tiny", "prompt": PROMPT, "tokens": tokens, "reps": reps}

        def measure(name: str, what: str, fn: Callable[[], dict[str, Any]]) -> None:
            start = time.monotonic()
            try:
                hosts.setdefault(name, {})[what] = fn()
            except Exception as exc:  # one host failing leaves the others' rows, then the exit status says so
                failed[f"{name} {what}"] = str(exc)[:2000]
                print(f"{name} {what} failed: {exc}", file=sys.stderr)
            print(f"  {name} {what}: {time.monotonic() - start:.1f} s", flush=True)

        if "python" in wanted:
            measure("python", "hop", lambda: python_hop(hop_plan, calls, args.batches, budget))
            measure("python", "decode", lambda: python_decode(demo_plan, tokens, reps))
        if "node" in wanted and "node" not in skipped:
            measure("node", "hop", lambda: node_run(
                "hop", str(hop_plan_path), "--calls", str(calls), "--batches", str(args.batches),
                "--budget-ms", str(budget)))
            measure("node", "decode", lambda: node_run(
                "decode", str(demo_plan_path), "--component", "tiny", "--tokens", str(tokens), "--reps", str(reps),
                "--prompt", PROMPT))
        if "chromium" in wanted and "chromium" not in skipped:
            os.environ["CSPM_WEB_DIST"] = str(page_build(work / "web-dist"))
            cspm("web", str(app), "--out", str(work / "site-hop"))
            cspm("web", str(demo / "app.yaml"), "--offline", "--out", str(work / "site-demo"))
            with serve({"hop": work / "site-hop", "demo": work / "site-demo"}) as base:
                measure("chromium", "hop", lambda: chromium_measure(base, "hop", "measureHop", hop_args))
                measure("chromium", "decode", lambda: chromium_measure(base, "demo", "measureDecode", decode_args))

    result = {"lang": args.lang, "calls": calls, "batches": args.batches, "budget_ms": budget, "tokens": tokens,
              "reps": reps, "model": "self-ask demo `tiny` (llm-local)", "hosts": hosts, "ratios": ratios(hosts),
              "skipped": skipped, "failed": failed}
    print(f"\nconformance-{args.lang}, median of {args.batches} batches (≤ {calls} calls or {budget} ms each); "
          f"llm-local `tiny`, {tokens} tokens, median of {reps}")
    print(f"{'host':10}{'host call':>13}{'agent alone':>13}{'with tool':>13}{'routed hop':>13}{'decode tok/s':>14}")
    for name, data in hosts.items():
        hop, dec = data.get("hop", {}), data.get("decode", {})
        cells = [f"{hop[k] / 1000:10.3f} ms" if k in hop else f"{'-':>13}"
                 for k in ("host_call_us", "run_agent_alone_us", "run_agent_with_tool_us", "routed_hop_us")]
        print(f"{name:10}{''.join(cells)}{dec['decode_tok_s']:14.0f}" if dec else f"{name:10}{''.join(cells)}{'-':>14}")
    for name, r in result["ratios"].items():
        if r:
            print(f"{name} ÷ python: " + ", ".join(f"{k.removesuffix('_us').removesuffix('_tok_s')} {v:.2f}×"
                                                  for k, v in r.items()))
    if args.json:
        args.json.write_text(json.dumps(result, indent=2))
    if failed:
        sys.exit(f"failed: {', '.join(failed)}")


if __name__ == "__main__":
    main()
