"""Index reads per second: the registry server vs the same files from nginx, in the same run; and the
registry's replicas on PostgreSQL + S3: their write-through static tree, its staleness, publish throughput.

    python bench/registry_bench.py [--quick] [--json OUT]

Publishes 20 versions of a plug-in to a fresh `cspm-registry serve`, exports the data dir to static
files and serves them with nginx (Debian's, when installed; else Python's http.server as the
static baseline). Then a load generator on loopback (`wrk` when installed, else a bounded httpx
thread pool) reads `index/<ns>/<name>`: full answers (200) and revalidations (304 with the ETag).
Ratios are server / static, measured in the same run on the same machine.

Replicas (`registry_replicas` in the JSON; skipped, with the reason, without initdb/pg_ctl or `weed`,
and its nginx parts without nginx): a throwaway PostgreSQL cluster (tests/postgres_support.py) and
SeaweedFS's `weed mini` (tests/s3_support.py) shared by `cspm-registry serve --db … --blobs s3://…
--static DIR` replicas.

- static reads: the same 20 versions published to a replica; nginx serving DIR (the write-through
  tree) against the same nginx config serving `cspm-registry export --db …` of the same registry,
  under one load: each thread of the httpx pool alternates between the two, request by request, and
  times each request (a drift of the shared machine falls on both alike); 200s, then 304s.
- staleness: a reader polls DIR's index file through nginx (a keep-alive connection, every ~1 ms)
  while one publish at a time is sent to a replica; visible = send → the reader first sees the new
  version line, against the publish's own round trip (send → 201). The replica writes the tree
  before it answers, so the ratio is below 1 unless the reader's poll interval dominates.
- publish throughput: N publishes of distinct versions (distinct modules: each uploads its own blob)
  from concurrent clients against 1 replica, and N round-robin against 3 (all three started before
  either run, each warmed by one publish), in halves 1 3 3 1, on the same PostgreSQL and SeaweedFS;
  then checks that the static tree and the API list every version.
"""

from __future__ import annotations

import argparse
import http.client
import json
import os
import re
import select
import shutil
import socket
import subprocess
import sys
import tempfile
import threading
import time
from concurrent.futures import ThreadPoolExecutor
from pathlib import Path
from statistics import median
from typing import Any

import httpx

ROOT = Path(__file__).resolve().parent.parent
sys.path.insert(0, str(ROOT))

from cspm.publish import frame  # noqa: E402

WASM = ROOT / "plugins" / "conformance-c" / "build" / "conformance-c.wasm"
NGINX = shutil.which("nginx") or ("/usr/sbin/nginx" if Path("/usr/sbin/nginx").exists() else None)
DESCRIPTION = "a benchmark plug-in with a description of some length"


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


def publish_body(name: str, version: str, module: bytes) -> bytes:
    manifest = {"name": name, "version": version, "kind": "tool", "abi": 1, "wasm": "m.wasm",
                "description": DESCRIPTION}
    return frame(manifest, module)


def publish_versions(url: str, token: str, count: int) -> None:
    module = WASM.read_bytes()
    with httpx.Client(timeout=30) as client:
        for minor in range(count):
            answer = client.put(f"{url}/api/v1/publish", content=publish_body("bench/echo", f"1.{minor}.0", module),
                                headers={"Authorization": f"Bearer {token}"})
            answer.raise_for_status()


def start_static(folder: Path, scratch: Path) -> tuple[subprocess.Popen[bytes], str, str]:
    port = free_port()
    nginx = NGINX
    if nginx:
        scratch = scratch / f"nginx-{port}"  # each nginx its own pid, log and temp paths
        scratch.mkdir()
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


LOAD_THREADS = 16
_clients: list[httpx.Client] = []  # kept across calls: making 16 httpx clients takes ~0.4 s, not load


def load(url: str, seconds: float, etag: str | None) -> float:
    """Requests per second, by wrk when installed, else a bounded httpx thread pool (the clock starts once
    every thread is ready, so setting up the pool is not counted)."""
    wrk = shutil.which("wrk")
    if wrk:
        args = [wrk, "-t2", "-c32", f"-d{seconds:g}s", url]
        if etag:
            args[1:1] = ["-H", f"If-None-Match: {etag}"]
        out = subprocess.run(args, capture_output=True, text=True, check=True).stdout
        return float(re.search(r"Requests/sec:\s+([\d.]+)", out).group(1))  # type: ignore[union-attr]
    while len(_clients) < LOAD_THREADS:
        _clients.append(httpx.Client())
    counts = [0] * LOAD_THREADS
    stop = [0.0]
    ready = threading.Barrier(LOAD_THREADS, action=lambda: stop.__setitem__(0, time.monotonic() + seconds))
    headers = {"If-None-Match": etag} if etag else {}

    def worker(i: int) -> None:
        ready.wait()
        while time.monotonic() < stop[0]:
            _clients[i].get(url, headers=headers)
            counts[i] += 1

    threads = [threading.Thread(target=worker, args=(i,)) for i in range(LOAD_THREADS)]
    for thread in threads:
        thread.start()
    for thread in threads:
        thread.join()
    return sum(counts) / seconds


def load_pair(targets: list[tuple[str, str | None]], seconds: float) -> list[float]:
    """Two servers under one load, request by request: each of the httpx pool's threads alternates between
    them (half the threads starting with each) and times every request, so a drift of a shared machine
    falls on both alike. A side's rate is what the pool would get from it alone at the latencies it showed:
    threads × requests / the time spent waiting on it."""
    while len(_clients) < LOAD_THREADS:
        _clients.append(httpx.Client())
    spent = [[0.0, 0.0] for _ in range(LOAD_THREADS)]
    counts = [[0, 0] for _ in range(LOAD_THREADS)]
    stop = [0.0]
    ready = threading.Barrier(LOAD_THREADS, action=lambda: stop.__setitem__(0, time.monotonic() + seconds))

    def worker(i: int) -> None:
        side = i % 2
        ready.wait()
        while time.monotonic() < stop[0]:
            url, etag = targets[side]
            start = time.perf_counter()
            _clients[i].get(url, headers={"If-None-Match": etag} if etag else {})
            spent[i][side] += time.perf_counter() - start
            counts[i][side] += 1
            side ^= 1

    threads = [threading.Thread(target=worker, args=(i,)) for i in range(LOAD_THREADS)]
    for thread in threads:
        thread.start()
    for thread in threads:
        thread.join()
    return [LOAD_THREADS * sum(c[side] for c in counts) / sum(t[side] for t in spent) for side in (0, 1)]


# -- replicas on PostgreSQL + S3 (issue 21 part 2)

BUCKET_PREFIX = "bench"  # the replicas' blobs: s3://<the support module's bucket>/bench


def replica_servers_missing() -> str | None:
    """Why the replica parts cannot run here (None: they can): initdb/pg_ctl, `weed`, the cloud extra."""
    try:
        import boto3  # noqa: F401
        import psycopg  # noqa: F401
        import pytest  # noqa: F401  (the support modules skip through it)
    except ImportError as exc:
        return f"no {exc.name} (pip install -e 'registry-server[cloud]' and the dev extra)"
    from tests.postgres_support import NO_BINARIES, bin_dir
    from tests.s3_support import NO_WEED

    if bin_dir() is None:
        return NO_BINARIES
    if shutil.which("weed") is None:
        return NO_WEED
    return None


def distinct_module(base: bytes, tag: str) -> bytes:
    """`base` with a custom section naming `tag` appended: a valid module with its own digest (its own blob)."""

    def leb(n: int) -> bytes:
        out = bytearray()
        while True:
            byte, n = n & 0x7F, n >> 7
            out.append(byte | (0x80 if n else 0))
            if not n:
                return bytes(out)

    name = b"cspm-bench"
    payload = leb(len(name)) + name + tag.encode()
    return base + b"\x00" + leb(len(payload)) + payload


class Replica:
    """`cspm-registry serve --db … --blobs … --static DIR --port 0` in a subprocess; its URL from the line it prints."""

    def __init__(self, log: Path, args: list[str], env: dict[str, str]) -> None:
        with log.open("ab") as out:
            self.proc = subprocess.Popen([sys.executable, "-m", "cspm_registry", "serve", "--port", "0", "--name",
                                          "bench", *args], stdout=subprocess.PIPE, stderr=out,
                                         env={**os.environ, **env})
        assert self.proc.stdout is not None
        ready, _, _ = select.select([self.proc.stdout], [], [], 60)
        line = self.proc.stdout.readline().decode() if ready else ""
        found = re.search(r"http://127\.0\.0\.1:(\d+)/", line)
        if not found:
            self.stop()
            raise RuntimeError(f"a replica did not start: {line!r}\n{log.read_text()[-2000:]}")
        self.url = f"http://127.0.0.1:{found.group(1)}"

    def stop(self) -> None:
        if self.proc.poll() is None:
            self.proc.terminate()
            try:
                self.proc.wait(10)
            except subprocess.TimeoutExpired:
                self.proc.kill()
                self.proc.wait(10)
        if self.proc.stdout is not None:
            self.proc.stdout.close()


class Publisher:
    """Publishes with one keep-alive httpx client per thread; each answer must be 201."""

    def __init__(self, token: str) -> None:
        self.headers = {"Authorization": f"Bearer {token}"}
        self.local = threading.local()

    def __call__(self, url: str, name: str, version: str, module: bytes) -> None:
        client = getattr(self.local, "client", None)
        if client is None:
            client = self.local.client = httpx.Client(timeout=60)
        answer = client.put(f"{url}/api/v1/publish", content=publish_body(name, version, module),
                            headers=self.headers)
        if answer.status_code != 201:
            raise RuntimeError(f"publish {name} {version} to {url}: {answer.status_code} {answer.text[:300]}")


class Poller:
    """A reader of one index file through the static server, as fast as it can (a GET, then ~1 ms of sleep):
    records when each awaited version line first shows."""

    def __init__(self, port: int, path: str) -> None:
        self.port, self.path = port, path
        self.waiting: set[str] = set()  # `"version"`, quoted as in an index line
        self.seen: dict[str, float] = {}
        self.polls = 0
        self.started = time.perf_counter()
        self.lock = threading.Lock()
        self.done = threading.Event()
        self.thread = threading.Thread(target=self.run, daemon=True)
        self.thread.start()

    def expect(self, version: str) -> None:
        with self.lock:
            self.waiting.add(f'"{version}"')

    def run(self) -> None:
        connection = http.client.HTTPConnection("127.0.0.1", self.port, timeout=10)
        while not self.done.is_set():
            try:
                connection.request("GET", self.path)
                body = connection.getresponse().read().decode()
            except (OSError, http.client.HTTPException):  # nginx closed the keep-alive connection: a new one
                connection.close()
                continue
            now = time.perf_counter()
            self.polls += 1
            with self.lock:
                for quoted in [q for q in self.waiting if q in body]:
                    self.waiting.discard(quoted)
                    self.seen[quoted.strip('"')] = now
            time.sleep(0.001)
        connection.close()

    def wait_for(self, version: str, seconds: float = 10) -> float:
        deadline = time.monotonic() + seconds
        while version not in self.seen:
            if time.monotonic() > deadline:
                raise RuntimeError(f"{version} was not visible in {self.path} within {seconds:g} s")
            time.sleep(0.0005)
        return self.seen[version]

    def stop(self) -> None:
        self.done.set()
        self.thread.join(10)


def static_reads(tree: Path, copy: Path, scratch: Path, seconds: float,
                 procs: list[subprocess.Popen[bytes]]) -> dict[str, Any]:
    """nginx on the write-through tree against the same nginx config on `cspm-registry export`'s copy, the
    same bytes: both under one load, request by request (`load_pair`), 200s then 304s."""
    targets: dict[str, tuple[str, str]] = {}
    size = 0
    for label, folder in (("writethrough", tree), ("export", copy)):
        proc, base, _ = start_static(folder, scratch)
        procs.append(proc)
        target = f"{base}/index/bench/echo"
        first = httpx.get(target)
        assert first.status_code == 200 and first.content.count(b"\n") == 20, first
        assert first.content == (copy / "index" / "bench" / "echo").read_bytes()  # the same bytes both sides
        assert httpx.get(target, headers={"If-None-Match": first.headers["etag"]}).status_code == 304
        targets[label] = (target, first.headers["etag"])
        size = len(first.content)
    result: dict[str, Any] = {"static": "nginx", "index_bytes": size, "seconds": seconds,
                              "generator": f"httpx x{LOAD_THREADS}, alternating"}
    for code in ("200", "304"):
        pair = [(url, etag if code == "304" else None) for url, etag in targets.values()]
        result[f"writethrough_{code}_rps"], result[f"export_{code}_rps"] = load_pair(pair, seconds)
        result[f"ratio_{code}"] = result[f"writethrough_{code}_rps"] / result[f"export_{code}_rps"]
    return result


def staleness(replica: Replica, publish: Publisher, static_url: str, count: int) -> dict[str, Any]:
    """Send → the reader sees the version line, and send → 201, for `count` publishes one at a time."""
    base = WASM.read_bytes()
    poller = Poller(int(static_url.rsplit(":", 1)[1]), "/index/bench/stale")
    visible, round_trip = [], []
    try:
        for i in range(count):
            version = f"1.{i}.0"
            module = distinct_module(base, f"stale-{i}")
            time.sleep(0.02)  # the reader is between polls at a random point
            poller.expect(version)
            start = time.perf_counter()
            publish(replica.url, "bench/stale", version, module)
            answered = time.perf_counter()
            seen = poller.wait_for(version)
            visible.append((seen - start) * 1000)
            round_trip.append((answered - start) * 1000)
    finally:
        poller.stop()
    interval = (time.perf_counter() - poller.started) * 1000 / max(1, poller.polls)
    return {"publishes": count, "visible_ms_median": median(visible), "visible_ms_max": max(visible),
            "publish_rtt_ms_median": median(round_trip), "publish_rtt_ms_max": max(round_trip),
            "ratio": median(visible) / median(round_trip), "poll_interval_ms": interval}


def throughput(replicas: list[Replica], publish: Publisher, count: int, clients: int, tree: Path) -> dict[str, Any]:
    """`count` publishes of distinct versions from `clients` threads against replicas[0], and `count` round-robin
    against all of them, in halves A B B A (a drift of the shared machine falls on both); then every version
    must be in the static tree and the API."""
    base = WASM.read_bytes()
    with ThreadPoolExecutor(len(replicas)) as pool:  # warm each replica (its pools, lazy imports)
        list(pool.map(lambda r: publish(r[1].url, "bench/warm", f"0.{r[0]}.0", distinct_module(base, f"warm{r[0]}")),
                      enumerate(replicas)))
    result: dict[str, Any] = {"publishes": count, "clients": clients, "cores": os.cpu_count()}
    sides = {"one_replica": replicas[:1], "three_replicas": replicas}
    elapsed = dict.fromkeys(sides, 0.0)
    done = dict.fromkeys(sides, 0)
    for label in ("one_replica", "three_replicas", "three_replicas", "one_replica"):
        serving, name = sides[label], f"bench/tp-{len(sides[label])}"
        first, n = done[label], count // 2 if done[label] == 0 else count - done[label]
        modules = [distinct_module(base, f"{name}-{i}") for i in range(first, first + n)]
        urls = [serving[i % len(serving)].url for i in range(first, first + n)]
        start = time.perf_counter()
        with ThreadPoolExecutor(clients) as pool:
            list(pool.map(publish, urls, [name] * n, [f"1.{i}.0" for i in range(first, first + n)], modules))
        elapsed[label] += time.perf_counter() - start
        done[label] += n
    for label, serving in sides.items():
        result[f"{label}_per_s"] = count / elapsed[label]
        name = f"bench/tp-{len(serving)}"
        listed = (tree / "index" / name).read_text().splitlines()
        served = httpx.get(f"{replicas[-1].url}/index/{name}").text.splitlines()
        if {json.loads(line)["version"] for line in listed} != {f"1.{i}.0" for i in range(count)} or \
                sorted(served) != sorted(listed):
            raise RuntimeError(f"{name}: the static tree or the API does not list every version")
    result["ratio"] = result["three_replicas_per_s"] / result["one_replica_per_s"]
    return result


def replicas_benchmark(scratch: Path, seconds: float, quick: bool) -> dict[str, Any]:
    """The three replica rows on one PostgreSQL cluster and one SeaweedFS (or {"skipped": reason})."""
    missing = replica_servers_missing()
    if missing:
        print(f"skip replicas: {missing}")
        return {"skipped": missing}
    from tests.postgres_support import Cluster
    from tests.s3_support import BUCKET, SeaweedFS

    result: dict[str, Any] = {}
    procs: list[subprocess.Popen[bytes]] = []
    replicas: list[Replica] = []
    cluster = s3 = None
    try:
        cluster = Cluster()
        s3 = SeaweedFS()
        db = cluster.new_database()
        env = s3.env()
        tree = scratch / "writethrough"
        args = ["--db", db, "--blobs", f"s3://{BUCKET}/{BUCKET_PREFIX}", "--static", str(tree), "--grace", "0"]
        with ThreadPoolExecutor(3) as pool:  # started together, as a deployment would
            replicas += pool.map(lambda i: Replica(scratch / f"replica-{i}.log", args, env), range(3))
        made = subprocess.run([sys.executable, "-m", "cspm_registry", "token", "create", "--db", db, "--namespace",
                               "bench", "--publish"], capture_output=True, text=True, check=True,
                              env={**os.environ, **env})
        publish = Publisher(made.stdout.strip())
        module = WASM.read_bytes()
        for minor in range(20):  # the same 20 versions as the server's row above
            publish(replicas[0].url, "bench/echo", f"1.{minor}.0", module)
        if NGINX is None:
            reason = "no nginx (Debian's `nginx` package; .ci/setup installs it)"
            print(f"skip replicas static reads and staleness: {reason}")
            result["static_reads"] = result["staleness"] = {"skipped": reason}
        else:
            subprocess.run([sys.executable, "-m", "cspm_registry", "export", "--db", db, "--blobs",
                            f"s3://{BUCKET}/{BUCKET_PREFIX}", "--out", str(scratch / "exported")], check=True,
                           capture_output=True, env={**os.environ, **env})
            result["static_reads"] = static_reads(tree, scratch / "exported", scratch, seconds, procs)
            proc, static_url, _ = start_static(tree, scratch)
            procs.append(proc)
            result["staleness"] = staleness(replicas[0], publish, static_url, 10 if quick else 40)
        result["publish_throughput"] = throughput(replicas, publish, 60 if quick else 180, 6, tree)
    finally:
        for replica in replicas:
            replica.stop()
        for proc in procs:
            proc.terminate()
            proc.wait(timeout=10)
        if s3 is not None:
            s3.remove()
        if cluster is not None:
            cluster.remove()
    return result


def print_replicas(result: dict[str, Any]) -> None:
    if "skipped" in result:
        return
    if "skipped" not in (r := result["static_reads"]):
        print(f"\nreplicas: index file of 20 versions ({r['index_bytes']:,} bytes) from the write-through tree "
              f"vs `cspm-registry export`, both served by nginx, under one load ({r['generator']}), "
              f"{r['seconds']:g} s each")
        print(f"{'':18}{'200/s':>10}{'304/s':>10}")
        for label in ("writethrough", "export"):
            print(f"{label:18}{r[f'{label}_200_rps']:>10.0f}{r[f'{label}_304_rps']:>10.0f}")
        print(f"{'ratio':18}{r['ratio_200']:>10.2f}{r['ratio_304']:>10.2f}   (write-through / export)")
    if "skipped" not in (r := result["staleness"]):
        print(f"\nstaleness over {r['publishes']} publishes (reader polls nginx every "
              f"{r['poll_interval_ms']:.1f} ms): visible {r['visible_ms_median']:.1f} ms median, "
              f"{r['visible_ms_max']:.1f} ms max; the 201 {r['publish_rtt_ms_median']:.1f} ms median, "
              f"{r['publish_rtt_ms_max']:.1f} ms max; ratio {r['ratio']:.2f}")
    r = result["publish_throughput"]
    print(f"\npublish throughput, {r['publishes']} distinct versions from {r['clients']} clients "
          f"({r['cores']} cores): 1 replica {r['one_replica_per_s']:.1f}/s, 3 replicas "
          f"{r['three_replicas_per_s']:.1f}/s, ratio {r['ratio']:.2f}")


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
        results: dict[str, Any] = {"registry_index_reads": {
            "server_200_rps": s200, "server_304_rps": s304, "static": rows[1][0], "static_200_rps": b200,
            "static_304_rps": b304, "ratio_200": s200 / b200, "ratio_304": s304 / b304}}
        for proc in procs:  # the server's row is done: nothing of it runs during the replicas' rows
            proc.terminate()
            proc.wait(timeout=10)
        procs.clear()
        results["registry_replicas"] = replicas_benchmark(scratch, seconds, args.quick)
        print_replicas(results["registry_replicas"])
        if args.json:
            args.json.write_text(json.dumps(results, indent=2))
    finally:
        for proc in procs:
            proc.terminate()
            proc.wait(timeout=10)
        for client in _clients:
            client.close()
        shutil.rmtree(scratch, ignore_errors=True)


if __name__ == "__main__":
    main()
