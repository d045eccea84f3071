"""The unmodified sigstore-python client signs and verifies against the local stack (tests/sigstore_stack.py), and
verifies a real production bundle offline with the trusted root shipped in its wheel."""

from __future__ import annotations

import base64
import hashlib
import json
import time
import urllib.error
import urllib.request
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import pytest
from cryptography import x509
from cryptography.hazmat.primitives import hashes, serialization
from cryptography.hazmat.primitives.asymmetric import ec
from sigstore import dsse
from sigstore._internal.fulcio.client import FulcioClientError
from sigstore.errors import VerificationError
from sigstore.hashes import Hashed
from sigstore.models import Bundle, ClientTrustConfig
from sigstore.oidc import IdentityToken
from sigstore.sign import SigningContext
from sigstore.verify import Verifier
from sigstore.verify.policy import Identity
from sigstore_models.common.v1 import HashAlgorithm

from tests.sigstore_stack import RekorLog, SigstoreStack, TestCA, _b64, _key_id, _spki

EMAIL = "alice@example.com"
BLOB = b"(module (func (export \"run\")))\n"
OTHER_BLOB = b"(module (func (export \"walk\")))\n"
PRODUCTION = Path(__file__).resolve().parents[3] / "shared" / "fixtures" / "sigstore"
PRODUCTION_IDENTITY = "https://github.com/trailofbits/rfc8785.py/.github/workflows/release.yml@refs/tags/v0.1.2"
PRODUCTION_ISSUER = "https://token.actions.githubusercontent.com"


def sign(stack: SigstoreStack, *blobs: bytes, **token: Any) -> list[Bundle]:
    """Sign with the unmodified client: trust config -> SigningContext -> Signer (one certificate for all)."""
    context = SigningContext.from_trust_config(ClientTrustConfig.from_json(stack.trust_config_json))
    with context.signer(IdentityToken(stack.mint_token(**token))) as signer:
        # round-trip through JSON, as a bundle on disk would be
        return [Bundle.from_json(signer.sign_artifact(blob).to_json()) for blob in blobs]


def verifier(stack: SigstoreStack) -> Verifier:
    return Verifier(trusted_root=ClientTrustConfig.from_json(stack.trust_config_json).trusted_root)


@pytest.fixture(scope="module")
def signed(sigstore_stack: SigstoreStack) -> tuple[Bundle, Bundle]:
    """Bundles for BLOB and OTHER_BLOB, signed by EMAIL through the ES256 issuer."""
    first, second = sign(sigstore_stack, BLOB, OTHER_BLOB, email=EMAIL)
    return first, second


def test_sign_and_verify_blob(sigstore_stack: SigstoreStack, signed: tuple[Bundle, Bundle]) -> None:
    bundle = signed[0]
    cert = bundle.signing_certificate
    assert cert.issuer == sigstore_stack.ca.intermediate.subject
    started = time.perf_counter()
    verifier(sigstore_stack).verify_artifact(BLOB, bundle, Identity(identity=EMAIL, issuer=sigstore_stack.issuer))
    assert time.perf_counter() - started < 2
    # and by digest alone, as a large artifact would be verified
    digest = Hashed(algorithm=HashAlgorithm.SHA2_256, digest=hashlib.sha256(BLOB).digest())
    verifier(sigstore_stack).verify_artifact(digest, bundle, Identity(identity=EMAIL, issuer=sigstore_stack.issuer))


def test_refuses_another_identity(sigstore_stack: SigstoreStack, signed: tuple[Bundle, Bundle]) -> None:
    with pytest.raises(VerificationError, match="SANs do not match"):
        verifier(sigstore_stack).verify_artifact(
            BLOB, signed[0], Identity(identity="mallory@example.com", issuer=sigstore_stack.issuer))


def test_refuses_another_issuer(sigstore_stack: SigstoreStack, signed: tuple[Bundle, Bundle]) -> None:
    with pytest.raises(VerificationError, match="OIDCIssuer does not match"):
        verifier(sigstore_stack).verify_artifact(
            BLOB, signed[0], Identity(identity=EMAIL, issuer=sigstore_stack.other_issuer))


def test_refuses_a_changed_byte(sigstore_stack: SigstoreStack, signed: tuple[Bundle, Bundle]) -> None:
    for position in (0, len(BLOB) // 2, len(BLOB) - 1):
        tampered = bytearray(BLOB)
        tampered[position] ^= 0x01
        with pytest.raises(VerificationError, match="digest mismatch"):
            verifier(sigstore_stack).verify_artifact(
                bytes(tampered), signed[0], Identity(identity=EMAIL, issuer=sigstore_stack.issuer))


def test_refuses_the_bundle_of_another_blob(sigstore_stack: SigstoreStack, signed: tuple[Bundle, Bundle]) -> None:
    policy = Identity(identity=EMAIL, issuer=sigstore_stack.issuer)
    verifier(sigstore_stack).verify_artifact(OTHER_BLOB, signed[1], policy)
    with pytest.raises(VerificationError, match="digest mismatch"):
        verifier(sigstore_stack).verify_artifact(BLOB, signed[1], policy)
    # a bundle whose recorded digest is removed still fails on the signature itself
    inner = json.loads(signed[1].to_json())
    del inner["messageSignature"]["messageDigest"]
    with pytest.raises(VerificationError, match="Signature is invalid"):
        verifier(sigstore_stack).verify_artifact(BLOB, Bundle.from_json(json.dumps(inner)), policy)


def test_uri_identity_from_the_rs256_issuer(sigstore_stack: SigstoreStack) -> None:
    workflow = "https://example.com/cspm/plugins/.ci/release.yml@refs/tags/v1.0.0"
    (bundle,) = sign(sigstore_stack, BLOB, sub=workflow, issuer=sigstore_stack.other_issuer)
    verifier(sigstore_stack).verify_artifact(BLOB, bundle, Identity(identity=workflow,
                                                                    issuer=sigstore_stack.other_issuer))
    with pytest.raises(VerificationError):
        verifier(sigstore_stack).verify_artifact(BLOB, bundle, Identity(identity=workflow,
                                                                        issuer=sigstore_stack.issuer))


def test_ca_refuses_a_token_signed_by_an_untrusted_key(sigstore_stack: SigstoreStack) -> None:
    context = SigningContext.from_trust_config(ClientTrustConfig.from_json(sigstore_stack.trust_config_json))
    issued = len(sigstore_stack.ca.issued)
    forged = IdentityToken(sigstore_stack.mint_token(email=EMAIL, untrusted_key=True))
    with pytest.raises(FulcioClientError) as refused, context.signer(forged) as signer:
        signer.sign_artifact(BLOB)
    # sigstore-python drops Fulcio's JSON message (a 4xx `requests.Response` is falsy); the status is in the cause
    assert "401" in str(refused.value.__cause__)
    assert len(sigstore_stack.ca.issued) == issued


def post_signing_cert(stack: SigstoreStack, token: str) -> tuple[int, dict[str, Any]]:
    key = ec.generate_private_key(ec.SECP256R1())
    csr = x509.CertificateSigningRequestBuilder().subject_name(x509.Name([])).sign(key, hashes.SHA256())
    body = json.dumps({"certificateSigningRequest": _b64(csr.public_bytes(serialization.Encoding.PEM))}).encode()
    request = urllib.request.Request(f"{stack.url}/api/v2/signingCert", data=body, method="POST", headers={
        "Authorization": f"Bearer {token}", "Content-Type": "application/json"})
    try:
        with urllib.request.urlopen(request, timeout=10) as response:
            return response.status, json.load(response)
    except urllib.error.HTTPError as error:
        return error.code, json.load(error)


@pytest.mark.parametrize(("token", "message"), [
    ({"untrusted_key": True}, "signature does not verify"),
    ({"audience": "someone-else"}, "audience"),
    ({"lifetime": -60}, "expired"),
])
def test_ca_checks_the_token(sigstore_stack: SigstoreStack, token: dict[str, Any], message: str) -> None:
    status, reply = post_signing_cert(sigstore_stack, sigstore_stack.mint_token(email=EMAIL, **token))
    assert (status, message in reply["message"]) == (401, True), reply
    status, reply = post_signing_cert(sigstore_stack, sigstore_stack.mint_token(email=EMAIL))
    assert status == 201 and len(reply["signedCertificateEmbeddedSct"]["chain"]["certificates"]) == 3


def test_many_entries_each_with_its_inclusion_proof(sigstore_stack: SigstoreStack) -> None:
    blobs = [b"plug-in %d" % i for i in range(5)]
    bundles = sign(sigstore_stack, *blobs, email=EMAIL)
    indexes = {b.log_entry._inner.log_index for b in bundles}
    assert len(indexes) == 5
    for blob, bundle in zip(blobs, bundles, strict=True):
        verifier(sigstore_stack).verify_artifact(blob, bundle, Identity(identity=EMAIL, issuer=sigstore_stack.issuer))


def test_dsse_statement(sigstore_stack: SigstoreStack) -> None:
    statement = dsse.StatementBuilder(
        subjects=[dsse.Subject(name="plugin.wasm", digest={"sha256": hashlib.sha256(BLOB).hexdigest()})],
        predicate_type="https://cspm.dev/publish/v1", predicate={"name": "test/echo"}).build()
    context = SigningContext.from_trust_config(ClientTrustConfig.from_json(sigstore_stack.trust_config_json))
    with context.signer(IdentityToken(sigstore_stack.mint_token(email=EMAIL))) as signer:
        bundle = Bundle.from_json(signer.sign_dsse(statement).to_json())
    payload_type, payload = verifier(sigstore_stack).verify_dsse(
        bundle, Identity(identity=EMAIL, issuer=sigstore_stack.issuer))
    assert payload_type == "application/vnd.in-toto+json" and json.loads(payload)["predicate"] == {"name": "test/echo"}


def foreign_root(stack: SigstoreStack, part: str) -> Verifier:
    """A verifier whose trusted root has `part` (CA, CT log or Rekor key) swapped for material of another stack."""
    config = json.loads(stack.trust_config_json)
    root = config["trustedRoot"]
    if part == "certificateAuthorities":
        other = TestCA()
        root[part][0]["certChain"]["certificates"] = [
            {"rawBytes": base64.b64encode(c.public_bytes(serialization.Encoding.DER)).decode()}
            for c in (other.intermediate, other.root)]
    else:
        key = (TestCA().ct_key if part == "ctlogs" else RekorLog().key).public_key()
        root[part][0]["publicKey"]["rawBytes"] = _b64(_spki(key))
        root[part][0]["logId"]["keyId"] = _b64(_key_id(key))
    return Verifier(trusted_root=ClientTrustConfig.from_json(json.dumps(config)).trusted_root)


@pytest.mark.parametrize(("part", "message"), [
    ("certificateAuthorities", "certificate chain"), ("ctlogs", "SCT"), ("tlogs", "invalid log entry")])
def test_every_trust_anchor_is_checked(sigstore_stack: SigstoreStack, signed: tuple[Bundle, Bundle],
                                       part: str, message: str) -> None:
    with pytest.raises(VerificationError, match=message):
        foreign_root(sigstore_stack, part).verify_artifact(
            BLOB, signed[0], Identity(identity=EMAIL, issuer=sigstore_stack.issuer))


@pytest.mark.parametrize("edit", ["integratedTime", "inclusionHash", "checkpoint"])
def test_a_tampered_log_entry_is_refused(sigstore_stack: SigstoreStack, signed: tuple[Bundle, Bundle],
                                         edit: str) -> None:
    inner = json.loads(signed[0].to_json())
    entry = inner["verificationMaterial"]["tlogEntries"][0]
    if edit == "integratedTime":
        entry["integratedTime"] = str(int(entry["integratedTime"]) + 1)
    elif edit == "inclusionHash":
        entry["inclusionProof"]["rootHash"] = _b64(hashlib.sha256(b"another tree").digest())
    else:
        envelope = entry["inclusionProof"]["checkpoint"]["envelope"]
        entry["inclusionProof"]["checkpoint"]["envelope"] = envelope.replace(" - ", " -- ", 1)
    with pytest.raises(VerificationError):
        verifier(sigstore_stack).verify_artifact(BLOB, Bundle.from_json(json.dumps(inner)),
                                                 Identity(identity=EMAIL, issuer=sigstore_stack.issuer))


# --- a real production bundle, verified offline with the trusted root shipped in the sigstore wheel -----------------

needs_production = pytest.mark.skipif(not PRODUCTION.is_dir(), reason=f"{PRODUCTION} is absent")


@pytest.fixture
def production_verifier(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> Iterator[Verifier]:
    """`Verifier.production(offline=True)` with an empty TUF cache: it seeds the cache from the wheel's embedded
    trusted_root.json and never refreshes (no network); the user's real cache is left alone."""
    monkeypatch.setenv("XDG_CACHE_HOME", str(tmp_path / "cache"))
    monkeypatch.setenv("XDG_DATA_HOME", str(tmp_path / "data"))
    yield Verifier.production(offline=True)


@needs_production
def test_production_bundle_verifies_offline(production_verifier: Verifier) -> None:
    artifact = (PRODUCTION / "bundle_v3_github.whl").read_bytes()
    bundle = Bundle.from_json((PRODUCTION / "bundle_v3_github.whl.sigstore").read_bytes())
    production_verifier.verify_artifact(artifact, bundle, Identity(identity=PRODUCTION_IDENTITY,
                                                                   issuer=PRODUCTION_ISSUER))
    with pytest.raises(VerificationError, match="SANs do not match"):
        production_verifier.verify_artifact(artifact, bundle, Identity(
            identity="https://github.com/someone/else/.github/workflows/release.yml@refs/tags/v0.1.2",
            issuer=PRODUCTION_ISSUER))
    with pytest.raises(VerificationError, match="OIDCIssuer does not match"):
        production_verifier.verify_artifact(artifact, bundle, Identity(identity=PRODUCTION_IDENTITY,
                                                                       issuer="https://accounts.google.com"))
    changed = bytearray(artifact)
    changed[len(changed) // 2] ^= 0x01
    with pytest.raises(VerificationError, match="digest mismatch"):
        production_verifier.verify_artifact(bytes(changed), bundle, Identity(identity=PRODUCTION_IDENTITY,
                                                                             issuer=PRODUCTION_ISSUER))


@needs_production
def test_production_bundle_is_refused_by_the_local_stack(sigstore_stack: SigstoreStack) -> None:
    artifact = (PRODUCTION / "bundle_v3_github.whl").read_bytes()
    bundle = Bundle.from_json((PRODUCTION / "bundle_v3_github.whl.sigstore").read_bytes())
    with pytest.raises(VerificationError):
        verifier(sigstore_stack).verify_artifact(artifact, bundle, Identity(identity=PRODUCTION_IDENTITY,
                                                                            issuer=PRODUCTION_ISSUER))
