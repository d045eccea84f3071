"""`cspm verify` and `cspm keygen` as users run them, on the real production bundle and on keyed signatures."""

from __future__ import annotations

import json
import shutil
from pathlib import Path

import pytest

from cspm.store import digest_of
from cspm.verify.signature import sign_keyed
from tests.integration.test_cli import cspm

FIXTURES = Path(__file__).resolve().parents[3] / "shared" / "fixtures" / "sigstore"
IDENTITY = "https://github.com/trailofbits/rfc8785.py/.github/workflows/release.yml@refs/tags/v0.1.2"
ISSUER = "https://token.actions.githubusercontent.com"


@pytest.fixture
def production(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> tuple[Path, Path]:
    if not FIXTURES.is_dir():
        pytest.skip("../shared/fixtures/sigstore is absent")
    monkeypatch.setenv("XDG_CACHE_HOME", str(tmp_path / "xdg-cache"))  # sigstore's TUF cache: from the wheel
    monkeypatch.setenv("XDG_DATA_HOME", str(tmp_path / "xdg-data"))
    monkeypatch.delenv("CSPM_SIGSTORE_TRUST_CONFIG", raising=False)
    return FIXTURES / "bundle_v3_github.whl", FIXTURES / "bundle_v3_github.whl.sigstore"


def test_the_production_bundle_verifies_offline_and_is_refused_otherwise(tmp_path: Path,
                                                                          production: tuple[Path, Path]) -> None:
    artifact, bundle = production
    result = cspm("verify", str(artifact), "--bundle", str(bundle), "--issuer", ISSUER, "--identity", IDENTITY,
                  "--json")
    assert result.returncode == 0, result.stderr
    assert json.loads(result.stdout)["signer"] == {"issuer": ISSUER, "identity": IDENTITY}
    other = cspm("verify", str(artifact), "--bundle", str(bundle), "--issuer", ISSUER, "--identity",
                 "https://github.com/evil/*")
    assert other.returncode != 0 and f"is signed by {IDENTITY} ({ISSUER})" in other.stderr
    assert "expects https://github.com/evil/*" in other.stderr
    changed = tmp_path / "changed.whl"
    data = bytearray(artifact.read_bytes())
    data[100] ^= 1
    changed.write_bytes(bytes(data))
    result = cspm("verify", str(changed), "--bundle", str(bundle), "--issuer", ISSUER, "--identity", IDENTITY)
    assert result.returncode != 0 and "does not verify for this blob" in result.stderr


def test_keygen_then_verify_a_keyed_signature(tmp_path: Path) -> None:
    made = cspm("keygen", str(tmp_path / "k.pem"), "--json")
    assert made.returncode == 0, made.stderr
    public = json.loads(made.stdout)["public_key"]
    blob = tmp_path / "m.wasm"
    shutil.copy(__file__, blob)
    envelope, _ = sign_keyed((tmp_path / "k.pem").read_bytes(), "acme/calc", "1.0.0", digest_of(blob.read_bytes()))
    (tmp_path / "m.dsse.json").write_bytes(envelope)
    ok = cspm("verify", str(blob), "--bundle", str(tmp_path / "m.dsse.json"), "--name", "acme/calc", "--key", public)
    assert ok.returncode == 0 and "DSSE envelope" in ok.stdout, ok.stderr
    other = json.loads(cspm("keygen", str(tmp_path / "o.pem"), "--json").stdout)["public_key"]
    refused = cspm("verify", str(blob), "--bundle", str(tmp_path / "m.dsse.json"), "--name", "acme/calc",
                   "--key", other)
    assert refused.returncode != 0 and "expected one of" in refused.stderr
    assert "already exists" in cspm("keygen", str(tmp_path / "k.pem")).stderr
