"""Package-manager benchmarks: a warm no-op install, a cold install over loopback HTTP, and resolution
over a large synthetic index, each beside a baseline measured in the same run.

    python bench/pm_bench.py [--quick] [--json OUT]

| row | cspm | baseline |
|---|---|---|
| warm install | load app + lock, stale check, `install` (all blobs stored) | `sha256sum` of the same blobs |
| warm lock + install | the same, re-resolving against the (HTTP, cached) index first | `sha256sum` of the same blobs |
| cold install | `install` of every blob into an empty store over loopback HTTP | plain httpx GETs, 8 threads |
| resolution | `resolve` of an app's requirements over a large folder index | `python -c 'import cspm'` |

Plug-ins are distinct, valid modules (a WAT template plus a custom section of random bytes, tens to
hundreds of KiB). Everything lives in a temp dir (CSPM_*_DIR point there) and nothing leaves
127.0.0.1. Only ratios to a baseline of the same run are meaningful; absolute times are shown for
context.
"""

from __future__ import annotations

import argparse
import contextlib
import hashlib
import json
import os
import random
import shutil
import statistics
import subprocess
import sys
import tempfile
import time
from collections.abc import Callable, Iterator
from concurrent.futures import ThreadPoolExecutor
from pathlib import Path
from typing import Any

ROOT = Path(__file__).resolve().parent.parent
sys.path.insert(0, str(ROOT))

TEMPLATE_WAT = """(module
  (import "extism:host/env" "input_length" (func $input_length (result i64)))
  (import "extism:host/env" "alloc" (func $alloc (param i64) (result i64)))
  (import "extism:host/env" "output_set" (func $output_set (param i64 i64)))
  (memory (export "memory") 1)
  (func (export "call") (result i32)
    (call $output_set (call $alloc (call $input_length)) (i64.const 0))
    (i32.const 0)))
"""
MIN_KIB, MAX_KIB = 24, 320  # the built plug-ins of plugins/ (Go aside) span 30-330 KiB

SERVER = r"""
import functools, sys
from http.server import SimpleHTTPRequestHandler, ThreadingHTTPServer

class Handler(SimpleHTTPRequestHandler):
    protocol_version = "HTTP/1.1"  # keep-alive, as a real registry (Content-Length is always sent)

    def log_message(self, *args):
        pass

# socketserver listens with a backlog of 5: 8 clients connecting at once overflow it, and a dropped SYN
# is sent again only after 1 s (TCP's initial retransmission timeout). A registry's server (nginx: 511)
# does not do that, so neither does this one.
ThreadingHTTPServer.request_queue_size = 128
server = ThreadingHTTPServer(("127.0.0.1", 0), functools.partial(Handler, directory=sys.argv[1]))
print(server.server_address[1], flush=True)
server.serve_forever()
"""


def median_ms(fn: Callable[[], Any], reps: int, setup: Callable[[], Any] | None = None) -> float:
    times = []
    for _ in range(reps):
        if setup is not None:
            setup()
        start = time.perf_counter()
        fn()
        times.append((time.perf_counter() - start) * 1000)
    return statistics.median(times)


def paired(cspm: Callable[[], Any], baseline: Callable[[], Any], reps: int,
           setup: Callable[[], Any] | None = None) -> dict[str, float]:
    """Both interleaved (order alternating), so drift on a noisy machine hits both alike."""
    ours: list[float] = []
    theirs: list[float] = []
    for rep in range(reps):
        pair = [(cspm, ours), (baseline, theirs)]
        for fn, into in pair if rep % 2 == 0 else pair[::-1]:
            if setup is not None:
                setup()
            start = time.perf_counter()
            fn()
            into.append((time.perf_counter() - start) * 1000)
    cspm_ms, base_ms = statistics.median(ours), statistics.median(theirs)
    return {"cspm_ms": cspm_ms, "baseline_ms": base_ms, "ratio": cspm_ms / base_ms}


# -- fixtures ------------------------------------------------------------------------------------


def _uleb(n: int) -> bytes:
    out = bytearray()
    while True:
        byte, n = n & 0x7F, n >> 7
        out.append(byte | (0x80 if n else 0))
        if not n:
            return bytes(out)


def make_modules(count: int, folder: Path, seed: int = 1) -> list[bytes]:
    """`count` distinct valid plug-ins: the template plus a custom section of random bytes."""
    source = folder / "template.wat"
    source.write_text(TEMPLATE_WAT)
    subprocess.run(["wat2wasm", str(source), "-o", str(folder / "template.wasm")], check=True)
    base = (folder / "template.wasm").read_bytes()
    rng = random.Random(seed)
    modules = []
    for i in range(count):
        name = b"pm-bench"
        content = _uleb(len(name)) + name + i.to_bytes(4, "little") + rng.randbytes(
            rng.randint(MIN_KIB, MAX_KIB) * 1024)
        modules.append(base + b"\x00" + _uleb(len(content)) + content)
    return modules


def plugin_registry(root: Path, modules: list[bytes]) -> list[str]:
    """A folder registry with one version of each plug-in (built by cspm.index.build); their names."""
    from packaging.version import Version

    from cspm.formats.manifest import Manifest
    from cspm.index.build import add_to_folder

    names = []
    for i, module in enumerate(modules):
        name = f"bench/plugin-{i:03d}"
        manifest = Manifest(folder=root, name=name, version=Version("1.0.0"), kind="tool", abi=1,
                            wasm=root / "plugin.wasm", description=f"benchmark plug-in {i}")
        add_to_folder(root, manifest, module)
        names.append(name)
    return names


@contextlib.contextmanager
def static_server(folder: Path) -> Iterator[str]:
    """`folder` served by http.server's ThreadingHTTPServer in a subprocess, on 127.0.0.1 only."""
    proc = subprocess.Popen([sys.executable, "-c", SERVER, str(folder)], stdout=subprocess.PIPE,
                            stderr=subprocess.DEVNULL, text=True)
    try:
        assert proc.stdout is not None
        port = int(proc.stdout.readline())
        yield f"http://127.0.0.1:{port}"
    finally:
        proc.terminate()
        proc.wait(timeout=10)


def write_app(path: Path, names: list[str]) -> Path:
    lines = ["entry: t000", "tools:"]
    lines += [f'  - {{name: t{i:03d}, plugin: "{name}@^1"}}' for i, name in enumerate(names)]
    path.write_text("\n".join(lines) + "\n")
    return path


# -- 1 and 2: install ----------------------------------------------------------------------------


def install_benchmarks(tmp: Path, count: int, reps: int) -> dict[str, Any]:
    import httpx

    from cspm.formats import app as app_format
    from cspm.formats import lock as lock_format
    from cspm.formats.userconfig import Registry, UserConfig
    from cspm.index.federation import Federation
    from cspm.install import install, lock_app, stale_reasons
    from cspm.store import Store

    modules = make_modules(count, tmp)
    registry = tmp / "registry"
    names = plugin_registry(registry, modules)
    total = sum(len(m) for m in modules)
    app_path = write_app(tmp / "app.yaml", names)
    results: dict[str, Any] = {"plugins": count, "total_mib": total / 2**20}

    with static_server(registry) as url:
        config = UserConfig(tmp / "config.yaml", [Registry("bench", url)])
        federation = Federation(config)
        lock = lock_app(app_format.load(app_path), federation)
        lock_format.write(lock)
        warm = Store(tmp / "warm-store")
        assert install(lock, federation, warm) == count
        federation.close()
        blobs = [str(warm.path(p.digest)) for p in lock.plugins]

        def sha256sum() -> None:
            subprocess.run(["sha256sum", *blobs], check=True, stdout=subprocess.DEVNULL)

        def warm_install() -> None:
            app = app_format.load(app_path)
            locked = lock_format.load(lock.path)
            assert stale_reasons(app, locked) == []
            fed = Federation(config)
            try:
                assert install(locked, fed, Store(warm.root)) == 0
            finally:
                fed.close()

        def warm_lock_install() -> None:
            app = app_format.load(app_path)
            locked = lock_format.load(lock.path)
            fed = Federation(config)
            try:
                new = lock_app(app, fed, existing=locked)
                assert lock_format.same(new, locked)  # nothing to write (as `cspm lock` decides it)
                assert install(new, fed, Store(warm.root)) == 0
            finally:
                fed.close()

        results["warm_install"] = paired(warm_install, sha256sum, reps * 2)
        results["warm_lock_install"] = paired(warm_lock_install, sha256sum, reps * 2)

        cold_root = tmp / "cold-store"
        urls = [f"{url}/blobs/sha256/{p.digest[7:]}" for p in lock.plugins]

        def empty_store() -> None:
            shutil.rmtree(cold_root, ignore_errors=True)

        def cold_install() -> None:
            fed = Federation(config)
            try:
                assert install(lock, fed, Store(cold_root)) == count
            finally:
                fed.close()

        def plain_fetch() -> None:
            with httpx.Client(trust_env=False) as client, ThreadPoolExecutor(max_workers=8) as pool:
                got = sum(pool.map(lambda u: len(client.get(u).raise_for_status().content), urls))
            assert got == total

        results["cold_install"] = paired(cold_install, plain_fetch, reps, setup=empty_store)
        empty_store()
    return results


# -- 3: resolution -------------------------------------------------------------------------------


def versions_list(count: int) -> list[str]:
    return [f"{1 + v // 5}.{v % 5}.0" for v in range(count)]


def resolution_index(root: Path, packages: int, versions: int, require: int) -> tuple[list[tuple[str, str]], int]:
    """`packages` x `versions` index lines; returns the app's requirements and how many names they reach.

    The app asks for `require` names: 4/5 tools with assorted specifiers and 1/5 app packages, each
    the head of a chain of app packages (bundle -> mid1 -> mid2 -> mid3 -> leaf tool) that also
    depends on one of the directly required tools. The top major of every bundle wants a version of
    that tool the app excludes, so the resolver has to backtrack each bundle to a lower major.
    """
    from cspm.formats.index_line import to_line

    bundles = max(1, require // 5)
    tools = require - bundles
    used = tools + bundles * 5
    if packages < used or tools < 1:
        raise SystemExit(f"--packages {packages} is too few for --require {require} (needs {used})")
    vers = versions_list(versions)
    majors = sorted({int(v.split(".")[0]) for v in vers})
    top, low = majors[-1], majors[0]
    names = [f"ns{i % 50:02d}/pkg-{i:05d}" for i in range(packages)]
    specs = [f"^{low}", "*", f">={vers[0]}", f"^{majors[len(majors) // 2]}"]
    deps: dict[str, Callable[[str], dict[str, str]]] = {}
    kinds: dict[str, str] = {}
    wanted = [(names[i], specs[i % len(specs)]) for i in range(tools)]
    for b in range(bundles):
        head = tools + b * 5
        chain = names[head:head + 5]
        shared = names[(b * 4) % tools]  # spec `^low`: excludes `top` whenever there are 2+ majors
        for level, name in enumerate(chain[:-1]):
            kinds[name] = "app"

            def dependencies(version: str, level: int = level, chain: list[str] = chain,
                             shared: str = shared) -> dict[str, str]:
                major = int(version.split(".")[0])
                out = {chain[level + 1]: f"^{major}"}
                if level == 0:
                    out[shared] = f">={top}" if major == top and top != low else f">={vers[0]}"
                return out

            deps[name] = dependencies
        wanted.append((chain[0], "*"))
    for name in names:
        lines = []
        for version in vers:
            line: dict[str, Any] = {
                "name": name, "version": version, "kind": kinds.get(name, "tool"), "abi": 1,
                "digest": "sha256:" + hashlib.sha256(f"{name} {version}".encode()).hexdigest(),
                "size": 100_000 + len(lines), "exports": ["call"],
                "imports": ["extism:host/env::alloc", "extism:host/env::input_length",
                            "extism:host/env::output_set"],
                "capabilities": {}, "description": f"synthetic package {name} {version}", "signature": None,
                "yanked": False,
            }
            if name in deps:
                line["dependencies"] = deps[name](version)
            lines.append(to_line(line) + "\n")
        path = root / "index" / name
        path.parent.mkdir(parents=True, exist_ok=True)
        path.write_text("".join(lines))
    (root / "config.json").write_text('{"name": "big", "dl": "blobs/sha256/{hex}", "api": null}\n')
    return wanted, used


def resolution_benchmark(tmp: Path, packages: int, versions: int, require: int, reps: int) -> dict[str, Any]:
    from cspm.formats.names import parse_specifier
    from cspm.formats.userconfig import Registry, UserConfig
    from cspm.index.federation import Federation
    from cspm.resolver import Req, resolve

    root = tmp / "big-index"
    start = time.perf_counter()
    wanted, used = resolution_index(root, packages, versions, require)
    build_s = time.perf_counter() - start
    config = UserConfig(tmp / "config.yaml", [Registry("big", root.as_uri())])
    reqs = [Req(name, parse_specifier(spec), f"app component `c{i}`") for i, (name, spec) in enumerate(wanted)]
    federation = Federation(config)
    chosen = resolve(reqs, federation)
    assert len(chosen) == used, (len(chosen), used)
    top = max(int(v.split(".")[0]) for v in versions_list(versions))
    assert top == 1 or all(chosen[name].version.major < top for name, _ in wanted[-max(1, require // 5):])

    def cold() -> None:
        resolve(reqs, Federation(config))

    def import_cspm() -> None:
        subprocess.run([sys.executable, "-c", "import cspm"], check=True)

    result = paired(cold, import_cspm, reps * 2)
    result["resolve_memo_ms"] = median_ms(lambda: resolve(reqs, federation), reps * 2)  # index already parsed
    result.update({"packages": packages, "versions": versions, "requirements": len(reqs),
                   "resolved": used, "index_lines": packages * versions, "index_build_s": build_s})
    return result


# -- main ----------------------------------------------------------------------------------------


def main(argv: list[str] | None = None) -> dict[str, Any]:
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--quick", action="store_true", help="fewer repetitions and a 1,000-package index")
    parser.add_argument("--plugins", type=int, default=50, help="plug-ins in the installed app")
    parser.add_argument("--packages", type=int, help="packages in the resolution index (default 5000)")
    parser.add_argument("--versions", type=int, default=20, help="versions of each package")
    parser.add_argument("--require", type=int, default=50, help="names the resolved app asks for")
    parser.add_argument("--reps", type=int, help="repetitions per measurement (median; default 5, quick 2)")
    parser.add_argument("--json", type=Path)
    args = parser.parse_args(argv)
    reps = args.reps or (2 if args.quick else 5)
    packages = args.packages or (1000 if args.quick else 5000)

    started = time.perf_counter()
    with tempfile.TemporaryDirectory(prefix="cspm-pm-bench-") as tmp_name:
        tmp = Path(tmp_name)
        for var, sub in (("CSPM_CACHE_DIR", "cache"), ("CSPM_DATA_DIR", "data"), ("CSPM_CONFIG_DIR", "config")):
            os.environ[var] = str(tmp / sub)
        results: dict[str, Any] = {"reps": reps}
        for sub in ("install", "resolve"):
            (tmp / sub).mkdir()
        results["install"] = install_benchmarks(tmp / "install", args.plugins, reps)
        results["resolution"] = resolution_benchmark(tmp / "resolve", packages, args.versions, args.require, reps)
    results["wall_s"] = time.perf_counter() - started

    inst, res = results["install"], results["resolution"]
    n, mib = inst["plugins"], inst["total_mib"]
    rows = [
        (f"warm install ({n} plug-ins, nothing to do)", inst["warm_install"], f"sha256sum of the {n} blobs"),
        ("warm lock + install (index revalidated)", inst["warm_lock_install"], f"sha256sum of the {n} blobs"),
        (f"cold install over HTTP ({mib:.1f} MiB)", inst["cold_install"], "httpx GETs, 8 threads"),
        (f"resolve {res['requirements']} reqs -> {res['resolved']} names", res, "python -c 'import cspm'"),
    ]
    print(f"{'cspm':48} {'ms':>9}   {'baseline':30} {'ms':>9}   {'ratio':>7}")
    for label, r, base in rows:
        print(f"{label:48} {r['cspm_ms']:9.1f}   {base:30} {r['baseline_ms']:9.1f}   {r['ratio']:6.2f}x")
    print(f"resolution index: {res['packages']} packages x {res['versions']} versions ({res['index_lines']} lines, "
          f"built in {res['index_build_s']:.1f} s); with the index already parsed: {res['resolve_memo_ms']:.1f} ms")
    print(f"median of {reps} (installs, cold) / {reps * 2} (the rest) runs; {results['wall_s']:.1f} s in all")
    if args.json:
        args.json.write_text(json.dumps(results, indent=2))
    return results


if __name__ == "__main__":
    main()
