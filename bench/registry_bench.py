"""Index reads per second: the registry server vs the same files from nginx, in the same run.

    python bench/registry_bench.py [--quick] [--json OUT]

Publishes 20 versions of a plug-in to a fresh `cspm-registry serve`, exports the data dir to static
files and serves them with nginx (Debian's, when installed; else Python's http.server as the
static baseline). Then a load generator on loopback (`wrk` when installed, else a bounded httpx
thread pool) reads `index/<ns>/<name>`: full answers (200) and revalidations (304 with the ETag).
Ratios are server / static, measured in the same run on the same machine.
"""

from __future__ import annotations

import argparse
import json
import re
import shutil
import socket
import subprocess
import sys
import tempfile
import threading
import time
from pathlib import Path

import httpx

ROOT = Path(__file__).resolve().parent.parent
sys.path.insert(0, str(ROOT))

from cspm.publish import frame  # noqa: E402

WASM = ROOT / "plugins" / "conformance-c" / "build" / "conformance-c.wasm"


def free_port() -> int:
    with socket.socket() as sock:
        sock.bind(("127.0.0.1", 0))
        return sock.getsockname()[1]


def wait_for(url: str, seconds: float = 20) -> None:
    deadline = time.monotonic() + seconds
    while time.monotonic() < deadline:
        try:
            httpx.get(url, timeout=1)
            return
        except httpx.TransportError:
            time.sleep(0.05)
    raise RuntimeError(f"{url} did not come up")


def start_registry(data: Path) -> tuple[subprocess.Popen[bytes], str, str]:
    made = subprocess.run([sys.executable, "-m", "cspm_registry", "token", "create", "--data", str(data),
                           "--namespace", "bench", "--publish"], capture_output=True, text=True, check=True)
    token = re.findall(r"csr_[A-Za-z0-9_-]{20,}", made.stdout)[0]
    port = free_port()
    proc = subprocess.Popen([sys.executable, "-m", "cspm_registry", "serve", "--data", str(data), "--host",
                             "127.0.0.1", "--port", str(port)], stdout=subprocess.DEVNULL, stderr=subprocess.DEVNULL)
    url = f"http://127.0.0.1:{port}"
    wait_for(f"{url}/config.json")
    return proc, url, token


def publish_versions(url: str, token: str, count: int) -> None:
    module = WASM.read_bytes()
    with httpx.Client(timeout=30) as client:
        for minor in range(count):
            manifest = {"name": "bench/echo", "version": f"1.{minor}.0", "kind": "tool", "abi": 1,
                        "wasm": "m.wasm", "description": "a benchmark plug-in with a description of some length"}
            answer = client.put(f"{url}/api/v1/publish", content=frame(manifest, module),
                                headers={"Authorization": f"Bearer {token}"})
            answer.raise_for_status()


def start_static(folder: Path, scratch: Path) -> tuple[subprocess.Popen[bytes], str, str]:
    port = free_port()
    nginx = shutil.which("nginx") or ("/usr/sbin/nginx" if Path("/usr/sbin/nginx").exists() else None)
    if nginx:
        conf = scratch / "nginx.conf"
        conf.write_text(f"""
daemon off; worker_processes 1; pid {scratch}/nginx.pid; error_log {scratch}/nginx-error.log;
events {{ worker_connections 1024; }}
http {{
  access_log off; default_type application/octet-stream;
  client_body_temp_path {scratch}/t1; proxy_temp_path {scratch}/t2; fastcgi_temp_path {scratch}/t3;
  uwsgi_temp_path {scratch}/t4; scgi_temp_path {scratch}/t5;
  server {{ listen 127.0.0.1:{port}; root {folder}; etag on; }}
}}
""")
        proc = subprocess.Popen([nginx, "-c", str(conf), "-p", str(scratch)], stdout=subprocess.DEVNULL,
                                stderr=subprocess.DEVNULL)
        name = "nginx"
    else:
        proc = subprocess.Popen([sys.executable, "-m", "http.server", str(port), "--bind", "127.0.0.1",
                                 "--directory", str(folder)], stdout=subprocess.DEVNULL, stderr=subprocess.DEVNULL)
        name = "http.server"
    url = f"http://127.0.0.1:{port}"
    wait_for(f"{url}/config.json")
    return proc, url, name


def load(url: str, seconds: float, etag: str | None) -> float:
    """Requests per second, by wrk when installed, else a bounded httpx thread pool."""
    wrk = shutil.which("wrk")
    if wrk:
        args = [wrk, "-t2", "-c32", f"-d{seconds}s", url]
        if etag:
            args[1:1] = ["-H", f"If-None-Match: {etag}"]
        out = subprocess.run(args, capture_output=True, text=True, check=True).stdout
        return float(re.search(r"Requests/sec:\s+([\d.]+)", out).group(1))  # type: ignore[union-attr]
    done = [0]
    stop = time.monotonic() + seconds
    headers = {"If-None-Match": etag} if etag else {}

    def worker() -> None:
        with httpx.Client() as client:
            while time.monotonic() < stop:
                client.get(url, headers=headers)
                done[0] += 1

    threads = [threading.Thread(target=worker) for _ in range(16)]
    for thread in threads:
        thread.start()
    for thread in threads:
        thread.join()
    return done[0] / seconds


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("--quick", action="store_true", help="short runs (CI)")
    parser.add_argument("--json", type=Path, help="write the results here")
    args = parser.parse_args()
    seconds = 2 if args.quick else 5
    scratch = Path(tempfile.mkdtemp(prefix="cspm-registry-bench-"))
    scratch.chmod(0o755)  # nginx's workers drop root: they must be able to read the export
    procs: list[subprocess.Popen[bytes]] = []
    try:
        registry, url, token = start_registry(scratch / "data")
        procs.append(registry)
        publish_versions(url, token, 20)
        subprocess.run([sys.executable, "-m", "cspm_registry", "export", "--data", str(scratch / "data"),
                        "--out", str(scratch / "static")], check=True, capture_output=True)
        static, static_url, static_name = start_static(scratch / "static", scratch)
        procs.append(static)
        rows = []
        for label, base in (("cspm-registry", url), (static_name, static_url)):
            target = f"{base}/index/bench/echo"
            first = httpx.get(target)
            assert first.status_code == 200 and first.content.count(b"\n") == 20
            etag = first.headers["etag"]
            assert httpx.get(target, headers={"If-None-Match": etag}).status_code == 304
            rows.append((label, load(target, seconds, None), load(target, seconds, etag), len(first.content)))
        (server, s200, s304, size), (_, b200, b304, _) = rows
        generator = "wrk -t2 -c32" if shutil.which("wrk") else "httpx x16"
        print(f"index file of 20 versions ({size:,} bytes), load by {generator}, {seconds} s each")
        print(f"{'':18}{'200/s':>10}{'304/s':>10}")
        for label, r200, r304, _ in rows:
            print(f"{label:18}{r200:>10.0f}{r304:>10.0f}")
        print(f"{'ratio':18}{s200 / b200:>10.2f}{s304 / b304:>10.2f}   ({server} / {rows[1][0]})")
        if args.json:
            args.json.write_text(json.dumps({"registry_index_reads": {
                "server_200_rps": s200, "server_304_rps": s304, "static": rows[1][0], "static_200_rps": b200,
                "static_304_rps": b304, "ratio_200": s200 / b200, "ratio_304": s304 / b304}}, indent=2))
    finally:
        for proc in procs:
            proc.terminate()
            proc.wait(timeout=10)
        shutil.rmtree(scratch, ignore_errors=True)


if __name__ == "__main__":
    main()
