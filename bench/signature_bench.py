"""Offline signature verification: cold (a new process), warm (in process) and cached (a verdict hit).

    python bench/signature_bench.py [--quick] [--json OUT]

Uses the real production bundle in ../shared/fixtures/sigstore (skipped when absent). Baseline:
`python -c 'import cspm'` in a new process, measured in the same run; the in-process numbers are
also shown beside a plain sha256 of the artifact.

The cold row is a real verification: `cspm verify FILE --bundle SIG` never answers from the verdict
cache (installs do, the last row). Two more new-process rows show where its time goes: the floor,
the same verification by sigstore-python alone (the unmodified library imports pydantic, its
Rekor/bundle models, TUF, requests and cryptography at module level: most of a cold verification),
and a keyed (DSSE ed25519) `cspm verify`, which needs none of sigstore.
"""

from __future__ import annotations

import argparse
import hashlib
import json
import os
import resource
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


def cpu_of(cmd: list[str], env: dict[str, str], runs: int) -> float:
    """Median CPU time (user + sys) of a new process, in ms: steadier than wall time on a shared machine."""
    samples = []
    for _ in range(runs):
        before = resource.getrusage(resource.RUSAGE_CHILDREN)
        subprocess.run(cmd, env=env, check=True, capture_output=True)
        after = resource.getrusage(resource.RUSAGE_CHILDREN)
        samples.append(after.ru_utime + after.ru_stime - before.ru_utime - before.ru_stime)
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
    from cspm import provenance
    from cspm.store import digest_of
    from cspm.verify import signature

    key_path = Path(scratch) / "bench.key"
    public = signature.keygen(key_path)
    envelope, _ = signature.sign_keyed(key_path.read_bytes(), "bench/wheel", "0.1.2", digest_of(artifact.read_bytes()))
    (Path(scratch) / "wheel.dsse").write_bytes(envelope)
    keyed_cli = [sys.executable, "-m", "cspm.cli.main", "verify", str(artifact), "--bundle",
                 f"{scratch}/wheel.dsse", "--name", "bench/wheel", "--key", public]
    # The floor: the same verification by sigstore-python alone in a new process (no CLI, no cspm), with
    # boto3 hidden as cspm hides it (cspm/verify/signature.py, _SIGNER_ONLY_MODULES).
    floor_code = f"""
import hashlib, logging, sys
sys.modules["boto3"] = None
from sigstore.hashes import Hashed
from sigstore.models import Bundle, ClientTrustConfig
from sigstore.verify import Verifier, policy
from sigstore_models.common.v1 import HashAlgorithm
logging.getLogger("sigstore").setLevel(logging.ERROR)
digest = hashlib.sha256(open({str(artifact)!r}, "rb").read()).digest()
bundle = Bundle.from_json(open({str(bundle)!r}, "rb").read())
verifier = Verifier(trusted_root=ClientTrustConfig.production(offline=True).trusted_root)
verifier.verify_artifact(Hashed(algorithm=HashAlgorithm.SHA2_256, digest=digest), bundle,
                         policy.Identity(identity={IDENTITY!r}, issuer={ISSUER!r}))
"""

    def run(cmd: list[str]) -> None:
        subprocess.run(cmd, env=env, check=True, capture_output=True)

    cold = timed(lambda: run(cli), runs)
    start_up = timed(lambda: run([sys.executable, "-c", "import cspm"]), runs)
    floor = timed(lambda: run([sys.executable, "-c", floor_code]), runs)
    keyed = timed(lambda: run(keyed_cli), runs)
    commands = {"cold_process": cli, "import_cspm": [sys.executable, "-c", "import cspm"],
                "sigstore_alone_process": [sys.executable, "-c", floor_code], "cold_keyed_process": keyed_cli}
    cpu = {label: cpu_of(cmd, env, runs) for label, cmd in commands.items()}

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
            ("floor: sigstore-python alone, new process", floor, "python -c 'import cspm'", start_up),
            ("cold keyed (DSSE ed25519) `cspm verify`", keyed, "python -c 'import cspm'", start_up),
            ("first verify in process (imports, trusted root)", first, "sha256 of the artifact", hashing),
            ("warm verify in process", warm, "sha256 of the artifact", hashing),
            ("cached verdict (warm install)", cached, "sha256 of the artifact", hashing)]
    print(f"{'':46}{'ms':>9}   {'baseline':28}{'ms':>9}{'ratio':>9}")
    for label, value, base_label, base in rows:
        print(f"{label:46}{value:>9.2f}   {base_label:28}{base:>9.3f}{value / base:>9.1f}x")
    print("CPU time (user+sys) of the new processes, ms: " + ", ".join(
        f"{label} {value:.0f} ({value / cpu['import_cspm']:.1f}x)" for label, value in cpu.items()))
    if args.json:
        args.json.write_text(json.dumps({"signature_verification_ms": {
            "cold_process": cold, "import_cspm": start_up, "sigstore_alone_process": floor,
            "cold_keyed_process": keyed, "first_in_process": first, "warm": warm,
            "cached_verdict": cached, "sha256": hashing, "cpu": cpu}}, indent=2))


if __name__ == "__main__":
    main()
