"""Offline signature verification: cold (a new process), warm (in process) and cached (a verdict hit).

    python bench/signature_bench.py [--quick] [--json OUT]

Uses the real production bundle in ../shared/fixtures/sigstore (skipped when absent). Baseline:
`python -c 'import cspm'` in a new process, measured in the same run; the in-process numbers are
also shown beside a plain sha256 of the artifact.
"""

from __future__ import annotations

import argparse
import hashlib
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
FIXTURES = ROOT.parent / "shared" / "fixtures" / "sigstore"
IDENTITY = "https://github.com/trailofbits/rfc8785.py/.github/workflows/release.yml@refs/tags/v0.1.2"
ISSUER = "https://token.actions.githubusercontent.com"


def timed(fn, runs: int) -> float:  # type: ignore[no-untyped-def]
    samples = []
    for _ in range(runs):
        start = time.perf_counter()
        fn()
        samples.append(time.perf_counter() - start)
    return statistics.median(samples) * 1000


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("--quick", action="store_true")
    parser.add_argument("--json", type=Path)
    args = parser.parse_args()
    if not FIXTURES.is_dir():
        print("skipped: ../shared/fixtures/sigstore is absent")
        return
    runs = 3 if args.quick else 7
    scratch = tempfile.mkdtemp(prefix="cspm-sig-bench-")
    env = {**os.environ, "XDG_CACHE_HOME": f"{scratch}/xdg", "XDG_DATA_HOME": f"{scratch}/xdg-data",
           "CSPM_CACHE_DIR": f"{scratch}/cache"}
    os.environ.update(env)
    os.environ.pop("CSPM_SIGSTORE_TRUST_CONFIG", None)
    artifact, bundle = FIXTURES / "bundle_v3_github.whl", FIXTURES / "bundle_v3_github.whl.sigstore"
    cli = [sys.executable, "-m", "cspm.cli.main", "verify", str(artifact), "--bundle", str(bundle), "--issuer",
           ISSUER, "--identity", IDENTITY]
    cold = timed(lambda: subprocess.run(cli, env=env, check=True, capture_output=True), runs)
    start_up = timed(lambda: subprocess.run([sys.executable, "-c", "import cspm"], env=env, check=True), runs)

    from cspm import provenance
    from cspm.store import digest_of
    from cspm.verify import signature

    data, sig = artifact.read_bytes(), bundle.read_bytes()
    digest = digest_of(data)
    rule = signature.Rule("rfc8785/*", ISSUER, IDENTITY)

    def verify() -> None:
        signature.verify(sig, "sigstore", name="x/y", digest=digest, what="wheel", rule=rule)

    first = timed(verify, 1)
    warm = timed(verify, runs * 3)
    key = provenance._fingerprint(rule, None)
    provenance._remember(digest, key, signature.Signer(ISSUER, IDENTITY))
    cached = timed(lambda: provenance._cached(digest, key), runs * 30)
    hashing = timed(lambda: hashlib.sha256(data).hexdigest(), runs * 30)
    rows = [("cold: `cspm verify` in a new process", cold, "python -c 'import cspm'", start_up),
            ("first verify in process (trusted root load)", first, "sha256 of the artifact", hashing),
            ("warm verify in process", warm, "sha256 of the artifact", hashing),
            ("cached verdict (warm install)", cached, "sha256 of the artifact", hashing)]
    print(f"{'':46}{'ms':>9}   {'baseline':28}{'ms':>9}{'ratio':>9}")
    for label, value, base_label, base in rows:
        print(f"{label:46}{value:>9.2f}   {base_label:28}{base:>9.3f}{value / base:>9.1f}x")
    if args.json:
        args.json.write_text(json.dumps({"signature_verification_ms": {
            "cold_process": cold, "import_cspm": start_up, "first_in_process": first, "warm": warm,
            "cached_verdict": cached, "sha256": hashing}}, indent=2))


if __name__ == "__main__":
    main()
