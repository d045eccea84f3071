"""OCI registry benchmark: a cold install of 50 plug-ins from a local OCI registry against plain parallel GETs
of the same blobs, both measured (interleaved) in the same run.

    python bench/oci_bench.py [--quick] [--plugins N] [--reps N] [--json OUT]

| row | cspm | baseline |
|---|---|---|
| cold install | `install` of a lock of N plug-ins, into an empty store | httpx GETs of the same N blobs, 8 threads |

The baseline GETs `/v2/<repo>/blobs/<digest>` with the Basic auth header sent up front and keeps
the bytes in memory.

The registry is Debian's `docker-registry` (CNCF distribution 2.8, filesystem storage) on 127.0.0.1
with htpasswd auth (tests/oci_support.py), started here; without it the bench says so and exits 0.
The plug-ins are bench/pm_bench.py's: distinct valid modules (a WAT template plus a custom section of
random bytes, 24-320 KiB), published unsigned with `cspm.oci_publish.publish` under one namespace,
one repository each. The app is locked once beforehand.

What is cold in the cspm run: the blob store (emptied before each run) and the registry client (a
new Federation each run: new httpx clients, new connections, the registry's 401 → Basic auth round
trip). What is not: the Python modules are imported, and the lock already records each blob's
repository, manifest and layer digest, so an install reads no tag list, manifest or index file (the
index cache left by the lock is warm, but it is not read either). Each downloaded blob is hashed,
size-checked, parsed as a Wasm module, fsync'd and renamed into the store (the folder fsync'd too);
the baseline only reads the bytes into memory.
"""

from __future__ import annotations

import argparse
import base64
import json
import os
import shutil
import sys
import tempfile
import time
from concurrent.futures import ThreadPoolExecutor
from pathlib import Path
from typing import TYPE_CHECKING, Any

ROOT = Path(__file__).resolve().parent.parent
sys.path.insert(0, str(ROOT))

from pm_bench import make_modules, paired, write_app  # noqa: E402 (bench/ is on the path only from here)

if TYPE_CHECKING:
    from cspm.formats.userconfig import Registry
    from tests.oci_support import OciRegistry

REGISTRY = "oci"  # the registry's name in the bench's user config (CSPM_TOKEN_OCI is its login)
NAMESPACE = "bench"


def publish_all(modules: list[bytes], registry: Registry, folder: Path) -> list[str]:
    """Each module as `bench/plugin-NNN` 1.0.0, pushed by cspm's OCI publisher (4 at a time); their names."""
    from packaging.version import Version

    from cspm.formats.manifest import Manifest
    from cspm.index.build import index_line
    from cspm.oci_publish import publish

    def one(i: int) -> str:
        name = f"{NAMESPACE}/plugin-{i:03d}"
        manifest = Manifest(folder=folder, name=name, version=Version("1.0.0"), kind="tool", abi=1,
                            wasm=folder / "plugin.wasm", description=f"benchmark plug-in {i}")
        line = index_line(manifest, modules[i])
        pushed = publish(line, modules[i], registry)
        assert pushed["digest"] == line["digest"], pushed
        return name

    with ThreadPoolExecutor(max_workers=4) as pool:
        return list(pool.map(one, range(len(modules))))


def cold_install_benchmark(tmp: Path, oci: OciRegistry, count: int, reps: int) -> dict[str, Any]:
    import httpx

    from cspm.formats import app as app_format
    from cspm.formats import lock as lock_format
    from cspm.formats.userconfig import Registry, UserConfig
    from cspm.index.federation import Federation
    from cspm.install import install, lock_app
    from cspm.store import Store
    from tests.oci_support import PASSWORD, USERNAME

    modules = make_modules(count, tmp)
    total = sum(len(m) for m in modules)
    registry = Registry(REGISTRY, oci.url, (NAMESPACE,))
    start = time.perf_counter()
    names = publish_all(modules, registry, tmp)
    publish_s = time.perf_counter() - start

    config = UserConfig(tmp / "config.yaml", [registry])
    app_path = write_app(tmp / "app.yaml", names)
    start = time.perf_counter()
    federation = Federation(config)
    try:
        lock = lock_app(app_format.load(app_path), federation)
    finally:
        federation.close()
    lock_s = time.perf_counter() - start
    lock_format.write(lock)
    assert all(p.located and p.blob and "@sha256:" in p.blob for p in lock.plugins), "the lock pins manifests"

    base = f"http://{oci.host}/v2"
    urls = [f"{base}/{p.blob.partition('@')[0]}/blobs/{p.digest}" for p in lock.plugins if p.blob]
    basic = "Basic " + base64.b64encode(f"{USERNAME}:{PASSWORD}".encode()).decode()
    cold_root = tmp / "cold-store"

    def empty_store() -> None:
        shutil.rmtree(cold_root, ignore_errors=True)

    def cold_install() -> None:
        fed = Federation(config)
        try:
            assert install(lock, fed, Store(cold_root)) == count
        finally:
            fed.close()

    def plain_fetch() -> None:
        with httpx.Client(trust_env=False, headers={"Authorization": basic}) as client, \
                ThreadPoolExecutor(max_workers=8) as pool:
            got = sum(pool.map(lambda u: len(client.get(u).raise_for_status().content), urls))
        assert got == total

    result = paired(cold_install, plain_fetch, reps, setup=empty_store)
    empty_store()
    return {"plugins": count, "total_mib": total / 2**20, "reps": reps, **result,
            "publish_s": publish_s, "lock_s": lock_s}


def main(argv: list[str] | None = None) -> dict[str, Any]:
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--quick", action="store_true", help="fewer repetitions")
    parser.add_argument("--plugins", type=int, default=50, help="plug-ins in the installed app")
    parser.add_argument("--reps", type=int, help="repetitions per side (median; default 7, quick 3)")
    parser.add_argument("--json", type=Path)
    args = parser.parse_args(argv)
    reps = args.reps or (3 if args.quick else 7)

    from tests.oci_support import BINARY, OciRegistry, free_port

    if not Path(BINARY).exists() or not shutil.which("wat2wasm"):
        reason = ("no `docker-registry` (Debian's CNCF distribution; .ci/setup installs it)"
                  if not Path(BINARY).exists() else "no `wat2wasm` (wabt)")
        print(f"skip oci: {reason}")
        if args.json:
            args.json.write_text(json.dumps({"skipped": reason}, indent=2))
        return {"skipped": reason}

    started = time.perf_counter()
    with tempfile.TemporaryDirectory(prefix="cspm-oci-bench-") as tmp_name:
        tmp = Path(tmp_name)
        for var, sub in (("CSPM_CACHE_DIR", "cache"), ("CSPM_DATA_DIR", "data"), ("CSPM_CONFIG_DIR", "config"),
                         ("DOCKER_CONFIG", "no-docker")):
            os.environ[var] = str(tmp / sub)
        from tests.oci_support import PASSWORD, USERNAME

        for var in ("CSPM_TOKEN", "CSPM_USERNAME"):
            os.environ.pop(var, None)
        os.environ[f"CSPM_TOKEN_{REGISTRY.upper()}"] = PASSWORD  # the login, as `cspm` reads it from the env
        os.environ[f"CSPM_USERNAME_{REGISTRY.upper()}"] = USERNAME
        oci = OciRegistry(tmp / "registry", free_port())
        oci.start()
        try:
            (tmp / "work").mkdir()
            results: dict[str, Any] = {"oci_cold_install": cold_install_benchmark(tmp / "work", oci, args.plugins,
                                                                                   reps)}
        finally:
            oci.stop()
    results["wall_s"] = time.perf_counter() - started

    r = results["oci_cold_install"]
    n, mib = r["plugins"], r["total_mib"]
    print(f"{'cspm':52} {'ms':>9}   {'baseline':36} {'ms':>9}   {'ratio':>7}")
    print(f"{f'cold install from OCI ({n} plug-ins, {mib:.1f} MiB)':52} {r['cspm_ms']:9.1f}   "
          f"{'httpx GETs of the blobs, 8 threads':36} {r['baseline_ms']:9.1f}   {r['ratio']:6.2f}x")
    print("cold: an empty store and a new registry client (connections, 401 -> Basic auth); the lock pins every "
          "blob, so no index, tag list or manifest is read")
    print(f"setup: {n} publishes in {r['publish_s']:.1f} s, lock in {r['lock_s']:.1f} s; median of {reps} runs "
          f"each; {results['wall_s']:.1f} s in all")
    if args.json:
        args.json.write_text(json.dumps(results, indent=2))
    return results


if __name__ == "__main__":
    main()
