"""`cspm serve` throughput and latency (issue 19) beside a minimal Starlette endpoint that calls the
same plug-in directly with `extism`, both measured in this run.

    python bench/serve_bench.py [--quick] [--requests N] [--pool 4] [--json OUT]

The app is tool-only: its entry is the C conformance plug-in as a tool, which answers its input, so
what is measured is the server (HTTP, JSON, the OpenAI shapes, the pool, the Runtime's routing and
checks), not a model. The baseline is the floor of any Python Extism server: Starlette on uvicorn,
a pool of the same number of plug-in instances from the same compiled module, one `call` per
request in a worker thread, the same request body and an answer of the same shape. Each is its own
process on loopback; the clients (asyncio, one keep-alive connection each) are this process.
At 1, 8 and 64 concurrent clients: requests/s, p50 and p99 latency; then the time to the first
streamed content chunk (`stream: true`) against the whole answer, one client.

Then the offline self-ask demo (`chainsocket/self-ask-demo`: an agent, llm-local and its model, kb),
where the model's decoding is the work: `cspm serve` against a minimal Starlette endpoint running
the same run plan on a pool of cspm Runtimes (an agent needs a host to route its calls, so the
floor here is the runtime itself, not one plug-in), at 1 and 2 clients, and the time to its first
streamed chunk. Skipped, with a note, when the demo is not installed (`.ci/setup` installs it).
"""

from __future__ import annotations

import argparse
import asyncio
import json
import os
import re
import socket
import statistics
import subprocess
import sys
import tempfile
import time
from pathlib import Path
from typing import Any

import httpx

ROOT = Path(__file__).resolve().parent.parent
WASM = ROOT / "plugins" / "conformance-c" / "build" / "conformance-c.wasm"
APP = "name: tool-only\nentry: echo\ntools:\n  - name: echo\n    plugin_name: {wasm}\n    config: {{kind: tool}}\n"
CONCURRENCY = (1, 8, 64)
DEMO = "chainsocket/self-ask-demo"
DEMO_QUESTION = "Who was born first, Kogail Bagrol or Stolvle Thema?"
DEMO_ANSWER = "Kogail Bagrol"
DEMO_CONCURRENCY = (1, 2)

BASELINE = r"""
import asyncio, json, socket, sys
from concurrent.futures import ThreadPoolExecutor
import uvicorn
from starlette.applications import Starlette
from starlette.responses import JSONResponse
from starlette.routing import Route

mode, source, pool = sys.argv[1], sys.argv[2], int(sys.argv[3])
executor = ThreadPoolExecutor(pool)
free = None

if mode == "plugin":  # one plug-in called directly with extism: the floor of any Python Extism server
    import extism
    from cspm.runtime import compiler, hostfns
    compiled = compiler.compile_module(open(source, "rb").read(), compiler.Limits(256, 10000, False),
                                       hostfns.FUNCTIONS)
    model = "tool-only"

    def instance():
        return extism.Plugin(compiled, config={"kind": "tool"})

    def answer(plugin, text):
        return json.loads(plugin.call("call", json.dumps({"input": text}).encode()))["output"]
else:  # a run plan on cspm Runtimes: an agent needs a host to route its calls
    from cspm.formats import plan as plans
    from cspm.runtime.engine import Runtime
    plan = plans.from_dict(json.load(open(source)), approved=True)
    model = plan.app_name

    def instance():
        return Runtime(plan)

    def answer(runtime, text):
        return runtime.run(text).output

async def chat(request):
    body = await request.json()
    text = body["messages"][-1]["content"]
    worker = await free.get()
    try:
        output = await asyncio.get_running_loop().run_in_executor(executor, answer, worker, text)
    finally:
        free.put_nowait(worker)
    return JSONResponse({"id": "chatcmpl-0", "object": "chat.completion", "created": 0, "model": model,
                         "choices": [{"index": 0, "message": {"role": "assistant", "content": output},
                                      "logprobs": None, "finish_reason": "stop"}],
                         "usage": {"prompt_tokens": 0, "completion_tokens": 0, "total_tokens": 0}})

async def main():
    global free
    free = asyncio.Queue()
    for _ in range(pool):
        free.put_nowait(instance())
    sock = socket.socket(socket.AF_INET, socket.SOCK_STREAM, socket.IPPROTO_TCP)  # as cspm serve: no Nagle
    sock.bind(("127.0.0.1", 0))
    sock.listen(1024)
    print(f"baseline at http://127.0.0.1:{sock.getsockname()[1]}/", flush=True)
    app = Starlette(routes=[Route("/v1/chat/completions", chat, methods=["POST"])])
    await uvicorn.Server(uvicorn.Config(app, log_level="warning", access_log=False)).serve(sockets=[sock])

asyncio.run(main())
"""


def start(cmd: list[str], env: dict[str, str]) -> tuple[subprocess.Popen[str], str]:
    process = subprocess.Popen(cmd, stdout=subprocess.PIPE, text=True, cwd=ROOT, env=env)
    assert process.stdout is not None
    line = process.stdout.readline()
    match = re.search(r"(http://127\.0\.0\.1:\d+/)", line)
    if not match:
        process.kill()
        sys.exit(f"{cmd[:4]} did not start: {line!r}")
    return process, match.group(1)


def body(i: int, stream: bool = False) -> dict[str, Any]:
    return {"model": "tool-only", "messages": [{"role": "user", "content": f"request {i}"}], "stream": stream}


def echoed(i: int, content: str) -> bool:
    return content == f"request {i}"


def demo_body(_i: int, stream: bool = False) -> dict[str, Any]:
    return {"model": "self-ask-demo", "messages": [{"role": "user", "content": DEMO_QUESTION}], "stream": stream}


def demo_answered(_i: int, content: str) -> bool:
    return DEMO_ANSWER in content


class Connection:
    """A keep-alive HTTP/1.1 connection for POSTs with a Content-Length answer: the load generator.
    httpx's connection pool costs more CPU than the servers under test past a few dozen connections
    (in this same process), so the clients here are this small."""

    def __init__(self, reader: asyncio.StreamReader, writer: asyncio.StreamWriter, host: str) -> None:
        self.reader, self.writer, self.host = reader, writer, host

    @classmethod
    async def open(cls, url: str) -> Connection:
        host, port = url.removeprefix("http://").rstrip("/").rsplit(":", 1)
        reader, writer = await asyncio.open_connection(host, int(port))
        writer.get_extra_info("socket").setsockopt(socket.IPPROTO_TCP, socket.TCP_NODELAY, 1)
        return cls(reader, writer, f"{host}:{port}")

    async def post(self, path: str, payload: dict[str, Any]) -> tuple[int, bytes]:
        data = json.dumps(payload).encode()
        self.writer.write(f"POST {path} HTTP/1.1\r\nHost: {self.host}\r\nContent-Type: application/json\r\n"
                          f"Content-Length: {len(data)}\r\n\r\n".encode() + data)
        head = (await self.reader.readuntil(b"\r\n\r\n")).decode("latin-1")
        status = int(head.split(" ", 2)[1])
        length = int(re.search(r"(?im)^content-length:\s*(\d+)", head).group(1))  # type: ignore[union-attr]
        return status, await self.reader.readexactly(length)

    def close(self) -> None:
        self.writer.close()


async def load(url: str, clients: int, requests: int, make: Any = body, check: Any = echoed,
               warm_up: int | None = None) -> dict[str, float]:
    """`requests` answers by `clients` concurrent clients, one connection each; every answer is checked."""
    latencies: list[float] = []

    async def client(connection: Connection, ids: Any) -> None:
        for i in ids:
            began = time.perf_counter()
            status, answer = await connection.post("/v1/chat/completions", make(i))
            latencies.append(time.perf_counter() - began)
            assert status == 200, answer
            content = json.loads(answer)["choices"][0]["message"]["content"]
            assert check(i, content), content

    connections = [await Connection.open(url) for _ in range(clients)]
    try:
        warm = iter(range(max(clients, 8) * 4 if warm_up is None else warm_up))  # connections used, instances loaded
        await asyncio.gather(*(client(c, warm) for c in connections))
        latencies.clear()
        ids = iter(range(requests))
        began = time.perf_counter()
        await asyncio.gather(*(client(c, ids) for c in connections))
        wall = time.perf_counter() - began
    finally:
        for connection in connections:
            connection.close()
    latencies.sort()
    return {"rps": requests / wall, "p50_ms": statistics.median(latencies) * 1000,
            "p99_ms": latencies[min(len(latencies) - 1, int(len(latencies) * 0.99))] * 1000}


async def first_chunk(url: str, requests: int, make: Any = body) -> dict[str, float]:
    """Median time to the first content delta of a streamed answer, and to its end."""
    firsts, wholes = [], []
    async with httpx.AsyncClient(timeout=600) as http:
        for i in range(requests):
            began, first = time.perf_counter(), None
            async with http.stream("POST", f"{url}v1/chat/completions", json=make(i, stream=True)) as response:
                async for line in response.aiter_lines():
                    if first is None and line.startswith("data: {") and '"content": "' in line:
                        first = time.perf_counter() - began
            wholes.append(time.perf_counter() - began)
            assert first is not None
            firsts.append(first)
    return {"first_chunk_ms": statistics.median(firsts) * 1000, "whole_ms": statistics.median(wholes) * 1000}


def compare(our_url: str, their_url: str, levels: tuple[int, ...], requests: int, **how: Any) -> dict[str, Any]:
    out: dict[str, Any] = {}
    for clients in levels:
        cspm = asyncio.run(load(our_url, clients, requests, **how))
        base = asyncio.run(load(their_url, clients, requests, **how))
        out[str(clients)] = level = {"cspm": cspm, "baseline": base, "throughput_ratio": cspm["rps"] / base["rps"],
                                     "p50_ratio": cspm["p50_ms"] / base["p50_ms"]}
        print(f"{clients:3} clients  cspm {cspm['rps']:7,.1f} req/s p50 {cspm['p50_ms']:8.2f} ms "
              f"p99 {cspm['p99_ms']:8.2f} ms | baseline {base['rps']:7,.1f} req/s p50 {base['p50_ms']:8.2f} "
              f"ms p99 {base['p99_ms']:8.2f} ms | throughput {level['throughput_ratio']:.2f}x"
              f" p50 {level['p50_ratio']:.2f}x", flush=True)
    return out


def tool_only(args: argparse.Namespace, scratch: str, requests: int) -> dict[str, Any]:
    env = {**os.environ, "CSPM_CACHE_DIR": f"{scratch}/cache", "CSPM_DATA_DIR": f"{scratch}/data",
           "CSPM_CONFIG_DIR": f"{scratch}/config"}
    app = Path(scratch) / "app.yaml"
    app.write_text(APP.format(wasm=WASM))
    ours, our_url = start([sys.executable, "-m", "cspm.cli.main", "serve", str(app), "--port", "0", "--pool",
                           str(args.pool), "--queue", "4096", "--mcp", "off"], env)
    theirs, their_url = start([sys.executable, "-c", BASELINE, "plugin", str(WASM), str(args.pool)], env)
    try:
        print("tool-only app (conformance-c)")
        levels = compare(our_url, their_url, CONCURRENCY, requests)
        stream = asyncio.run(first_chunk(our_url, 50 if args.quick else 200))
        print(f"streamed: first chunk {stream['first_chunk_ms']:.2f} ms, whole answer {stream['whole_ms']:.2f} ms")
    finally:
        stop(ours, theirs)
    return {"app": "tool-only (conformance-c)", "pool": args.pool, "requests": requests, "levels": levels,
            "stream": stream}


def self_ask(args: argparse.Namespace, scratch: str) -> dict[str, Any] | None:
    """The demo served and baselined with the user's own configuration (the bundled registry: local files)."""
    planned = subprocess.run([sys.executable, "-m", "cspm.cli.main", "plan", DEMO, "--json"],
                             capture_output=True, text=True, cwd=ROOT)
    if planned.returncode != 0:
        print(f"self-ask demo skipped: `cspm plan {DEMO}` failed (run .ci/setup): "
              f"{planned.stderr.strip()[-300:]}")
        return None
    plan = Path(scratch) / "demo-plan.json"
    plan.write_text(planned.stdout)
    pool = min(args.pool, 2)  # the model's work is CPU-bound: two cores here
    requests = 8 if args.quick else 40
    env = {**os.environ, "CSPM_DATA_DIR": f"{scratch}/demo-data"}  # kv memory of its own
    ours, our_url = start([sys.executable, "-m", "cspm.cli.main", "serve", DEMO, "--port", "0",
                           "--pool", str(pool), "--mcp", "off"], env)
    theirs, their_url = start([sys.executable, "-c", BASELINE, "plan", str(plan), str(pool)], env)
    try:
        print(f"self-ask demo ({DEMO}, pool {pool})")
        levels = compare(our_url, their_url, DEMO_CONCURRENCY, requests, make=demo_body, check=demo_answered,
                         warm_up=pool)
        stream = asyncio.run(first_chunk(our_url, 1 if args.quick else 4, make=demo_body))
        print(f"streamed: first chunk {stream['first_chunk_ms']:.0f} ms, whole answer {stream['whole_ms']:.0f} ms")
    finally:
        stop(ours, theirs)
    return {"app": DEMO, "pool": pool, "requests": requests, "levels": levels, "stream": stream}


def stop(*processes: subprocess.Popen[str]) -> None:
    for process in processes:
        process.terminate()
        process.wait(timeout=30)


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("--quick", action="store_true", help="fewer requests (CI)")
    parser.add_argument("--requests", type=int, help="requests per concurrency level (default 2000, quick 300)")
    parser.add_argument("--pool", type=int, default=4, help="instances, for both servers")
    parser.add_argument("--no-demo", action="store_true", help="skip the self-ask demo")
    parser.add_argument("--json", type=Path)
    args = parser.parse_args()
    requests = args.requests or (300 if args.quick else 2000)
    if not WASM.exists():
        subprocess.run(["bash", str(WASM.parent.parent / "build.sh")], check=True)
    with tempfile.TemporaryDirectory(prefix="cspm-serve-bench-") as scratch:
        result: dict[str, Any] = {"serve": tool_only(args, scratch, requests)}
        if not args.no_demo and (demo := self_ask(args, scratch)) is not None:
            result["serve_self_ask"] = demo
    if args.json:
        args.json.write_text(json.dumps(result, indent=2))


if __name__ == "__main__":
    main()
