"""Who built a blob: Sigstore bundles (keyless) and DSSE envelopes signed with ed25519 keys (keyed).

Both prove the same thing: a signer (an OIDC issuer + identity, or a key) vouched for a sha256
digest, for one package name. `verify` checks the cryptography (Sigstore: certificate chain, SCT,
transparency log inclusion, signature; DSSE: the signature over the in-toto statement) and then
that the signer is one the trust rule accepts and the lock pinned; every refusal says what was
expected and what was found.
"""

from __future__ import annotations

import fnmatch
import functools
import hashlib
import json
import logging
import os
import sys
import threading
from collections.abc import Iterator
from contextlib import contextmanager
from dataclasses import dataclass
from pathlib import Path
from typing import Any

from cspm.errors import CspmError, SignatureError
from cspm.formats import bounded_json
from cspm.protocol.layout import MAX_BUNDLE

KEY_ISSUER = "key:ed25519"  # the `issuer` of a keyed signer; its identity is the key's id
STATEMENT_TYPE = "https://in-toto.io/Statement/v1"
PREDICATE_TYPE = "https://chainsocket.dev/publish/v1"
PAYLOAD_TYPE = "application/vnd.in-toto+json"
OIDC_ISSUER_V2 = "1.3.6.1.4.1.57264.1.8"
OIDC_ISSUER_V1 = "1.3.6.1.4.1.57264.1.1"


@dataclass(frozen=True)
class Signer:
    issuer: str
    identity: str

    def __str__(self) -> str:
        return f"{self.identity} ({self.issuer})"

    def to_dict(self) -> dict[str, str]:
        return {"issuer": self.issuer, "identity": self.identity}


@dataclass(frozen=True)
class Rule:
    """What a namespace pattern accepts: an OIDC issuer + identity (exact or glob), or public keys."""

    pattern: str
    issuer: str | None = None
    identity: str | None = None
    keys: tuple[str, ...] = ()
    require: bool = True

    def accepts(self, signer: Signer) -> bool:
        if signer.issuer == KEY_ISSUER:
            return any(key_id(k) == signer.identity for k in self.keys)
        if self.issuer is not None and signer.issuer != self.issuer:
            return False
        if self.identity is None:
            return self.issuer is not None
        if any(ch in self.identity for ch in "*?["):
            return fnmatch.fnmatchcase(signer.identity, self.identity)
        return signer.identity == self.identity

    def expected(self) -> str:
        parts = []
        if self.issuer or self.identity:
            parts.append(f"{self.identity or 'any identity'} ({self.issuer or 'any issuer'})")
        parts += [f"key {key_id(k)}" for k in self.keys]
        return " or ".join(parts) or "nobody"


def rule_for(name: str, *policies: dict[str, Any]) -> Rule | None:
    """The most specific pattern matching `name` from the first policy that has one (user config first)."""
    for policy in policies:
        matches = [p for p in (policy or {}) if fnmatch.fnmatchcase(name, p) or p == name.split("/")[0]]
        if matches:
            pattern = max(matches, key=lambda p: (p == name, len(p.replace("*", ""))))
            raw = policy[pattern] or {}
            return Rule(pattern, raw.get("issuer"), raw.get("identity"), tuple(raw.get("keys") or ()),
                        bool(raw.get("require", True)))
    return None


# -- imports (both modes)

# Modules imported only for securesystemslib's cloud-KMS *signers*: `securesystemslib.signer` (which
# the keyed mode uses, and sigstore through `tuf.api.metadata`) tries `import boto3` for its AWS KMS
# signer. Nothing here signs with AWS KMS, and where boto3 is installed (the registry's cloud extra;
# moto in the tests) it costs ~50 ms of a cold Sigstore verification and ~130 ms of a keyed one
# (docs/performance.md, Signatures). It is hidden only while these libraries are first imported and
# only if nothing imported it before; securesystemslib then marks its AWS signer unavailable, exactly
# as where boto3 is not installed, and a later `import boto3` (the registry's S3 store) works as usual.
_SIGNER_ONLY_MODULES = ("boto3",)
_import_lock = threading.RLock()


@contextmanager
def _without_signer_backends() -> Iterator[None]:
    with _import_lock:
        hidden = [m for m in _SIGNER_ONLY_MODULES if m not in sys.modules]
        for module in hidden:
            sys.modules[module] = None  # type: ignore[assignment]  # `import boto3` raises ImportError
        try:
            yield
        finally:
            for module in hidden:
                if sys.modules.get(module, 0) is None:
                    del sys.modules[module]


def _import_verifier() -> None:
    """Import what Sigstore verification uses, without the signer-only backends (`_SIGNER_ONLY_MODULES`)."""
    if "sigstore.verify" in sys.modules and "sigstore.models" in sys.modules:
        return
    with _without_signer_backends():
        import sigstore.models
        import sigstore.verify  # noqa: F401


def _import_sslib() -> None:
    """Import securesystemslib's DSSE and key classes (keyed mode), without the signer-only backends."""
    if "securesystemslib.signer" in sys.modules and "securesystemslib.dsse" in sys.modules:
        return
    with _without_signer_backends():
        import securesystemslib.dsse
        import securesystemslib.signer  # noqa: F401


# -- keys (keyed mode)

def key_id(public: str) -> str:
    """A short, stable id of a public key as written in configs (`ed25519:<64 hex>`)."""
    return hashlib.sha256(public.strip().lower().encode()).hexdigest()[:16]


def _public_bytes(public: str) -> bytes:
    kind, _, text = public.strip().lower().partition(":")
    if kind != "ed25519" or len(text) != 64:
        raise SignatureError(f"{public[:80]!r} is not a public key (expected ed25519:<64 hex digits>)")
    try:
        return bytes.fromhex(text)
    except ValueError:
        raise SignatureError(f"{public[:80]!r} is not a public key (expected ed25519:<64 hex digits>)") from None


def default_key_path() -> Path:
    """Where `cspm keygen` writes without a path: the user config dir, never the current folder (a key
    written there is one `git add .` away from being published)."""
    from cspm import paths

    return paths.config_dir() / "keys" / "cspm.key"


def keygen(path: Path) -> str:
    """Write a new private key (PEM, mode 0600) to `path`, making its folder (mode 0700) when missing;
    returns its public key `ed25519:<hex>`."""
    from cryptography.hazmat.primitives import serialization
    from cryptography.hazmat.primitives.asymmetric.ed25519 import Ed25519PrivateKey

    from cspm.errors import write_error

    if path.exists():
        raise CspmError(f"{path} already exists", hint="choose another path; a key is never overwritten")
    key = Ed25519PrivateKey.generate()
    pem = key.private_bytes(serialization.Encoding.PEM, serialization.PrivateFormat.PKCS8,
                            serialization.NoEncryption())
    try:
        path.parent.mkdir(mode=0o700, parents=True, exist_ok=True)
        fd = os.open(path, os.O_WRONLY | os.O_CREAT | os.O_EXCL, 0o600)
    except FileExistsError:
        raise CspmError(f"{path} already exists", hint="choose another path; a key is never overwritten") from None
    except OSError as exc:
        failed = write_error(exc, str(exc.filename or path))
        if failed is not None:
            raise failed from None
        raise CspmError(f"cannot write the key to {path}: {exc.strerror or exc}",
                        hint="give a path in a folder you can write (`cspm keygen PATH`)") from None
    with os.fdopen(fd, "wb") as handle:
        handle.write(pem)
    raw = key.public_key().public_bytes(serialization.Encoding.Raw, serialization.PublicFormat.Raw)
    return f"ed25519:{raw.hex()}"


def _sslib_key(public: str) -> Any:
    _import_sslib()
    from securesystemslib.signer import SSlibKey

    return SSlibKey(key_id(public), "ed25519", "ed25519", {"public": _public_bytes(public).hex()})


def sign_keyed(private_pem: bytes, name: str, version: str, digest: str) -> tuple[bytes, str]:
    """A DSSE envelope over an in-toto statement for (name, version, digest); returns (envelope, public)."""
    from cryptography.hazmat.primitives import serialization
    from cryptography.hazmat.primitives.asymmetric.ed25519 import Ed25519PrivateKey

    _import_sslib()
    from securesystemslib.dsse import Envelope
    from securesystemslib.signer import CryptoSigner

    try:
        key = serialization.load_pem_private_key(private_pem, password=None)
    except (ValueError, TypeError):
        raise SignatureError("the key file is not an unencrypted PEM private key (make one with `cspm keygen`)"
                             ) from None
    if not isinstance(key, Ed25519PrivateKey):
        raise SignatureError("the key is not an ed25519 key (make one with `cspm keygen`)")
    raw = key.public_key().public_bytes(serialization.Encoding.Raw, serialization.PublicFormat.Raw)
    public = f"ed25519:{raw.hex()}"
    statement = {"_type": STATEMENT_TYPE, "subject": [{"name": name, "digest": {"sha256": digest.split(":")[1]}}],
                 "predicateType": PREDICATE_TYPE, "predicate": {"version": version}}
    envelope = Envelope(json.dumps(statement, sort_keys=True).encode(), PAYLOAD_TYPE, {})
    envelope.sign(CryptoSigner(key, _sslib_key(public)))
    return (json.dumps(envelope.to_dict(), sort_keys=True) + "\n").encode(), public


def _verify_keyed(envelope_bytes: bytes, name: str, digest: str, keys: tuple[str, ...], what: str,
                  version: str | None) -> Signer:
    _import_sslib()
    from securesystemslib.dsse import Envelope

    try:
        envelope = Envelope.from_dict(bounded_json.loads(envelope_bytes, max_bytes=MAX_BUNDLE))
    except Exception:  # any malformed envelope is the same refusal
        raise SignatureError(f"{what}: the signature is not a DSSE envelope") from None
    if not keys:
        raise SignatureError(f"{what}: signed with a key, but no key is trusted for it",
                             hint="pin the publisher's public key under `trust` in your config")
    try:
        accepted = envelope.verify([_sslib_key(k) for k in keys], 1)
    except Exception:  # securesystemslib raises VerificationError and friends
        signed_by = ", ".join(s for s in envelope.signatures) or "nothing"
        raise SignatureError(f"{what}: signed by key {signed_by}, expected one of "
                             f"{', '.join(key_id(k) for k in keys)}") from None
    if envelope.payload_type != PAYLOAD_TYPE:
        raise SignatureError(f"{what}: the envelope carries {envelope.payload_type!r}, not an in-toto statement")
    try:
        statement = bounded_json.loads(envelope.payload, max_bytes=MAX_BUNDLE)
        subject = statement["subject"][0]
        signed_digest, signed_name = "sha256:" + subject["digest"]["sha256"], subject["name"]
        signed_version = str(statement["predicate"]["version"])
        ok_type = statement["_type"] == STATEMENT_TYPE and statement["predicateType"] == PREDICATE_TYPE
    except (ValueError, KeyError, IndexError, TypeError):
        raise SignatureError(f"{what}: the signed statement is malformed") from None
    if not ok_type:
        raise SignatureError(f"{what}: the signed statement is not a chainsocket publish statement")
    if signed_digest != digest:
        raise SignatureError(f"{what}: the signature is for {signed_digest}, not for this blob ({digest})")
    if signed_name != name:
        raise SignatureError(f"{what}: the signature is for {signed_name}, not {name}")
    if version is not None and _same_version(signed_version, version) is False:
        raise SignatureError(f"{what}: the signature is for version {signed_version}, not {version}")
    return Signer(KEY_ISSUER, next(iter(accepted)))


# -- Sigstore (keyless)

TRUST_CONFIG_ENV = "CSPM_SIGSTORE_TRUST_CONFIG"
MAX_TRUST_CONFIG = 4 << 20  # a ClientTrustConfig JSON: a few roots and keys


def trust_config() -> Any:
    """Sigstore's trust: CSPM_SIGSTORE_TRUST_CONFIG (a ClientTrustConfig JSON), else production, offline."""
    return _trust_config(os.environ.get(TRUST_CONFIG_ENV))


@functools.lru_cache(maxsize=4)
def _trust_config(path: str | None) -> Any:
    """Loaded once per process. Offline, sigstore runs no TUF: it parses the trusted root it cached (~2 ms)."""
    _import_verifier()
    from sigstore.models import ClientTrustConfig

    logging.getLogger("sigstore").setLevel(logging.ERROR)  # "loaded in offline mode" is our default, not news
    if path:
        return ClientTrustConfig.from_json(Path(path).read_text(encoding="utf-8"))
    return ClientTrustConfig.production(offline=True)


TUF_URL = "https://tuf-repo-cdn.sigstore.dev"


def refresh_trust() -> None:
    """`cspm trust refresh`: update the production trusted root over TUF. It needs the network, so a
    failure is said as one (what failed, where), not as a bug; the trusted root on disk is kept."""
    from sigstore.models import ClientTrustConfig

    try:
        ClientTrustConfig.production(offline=False)
    except Exception as exc:  # TUFError, DownloadError, OSError, … from tuf and urllib3: all "it failed"
        reason = str(exc).strip() or type(exc).__name__
        cause = exc.__cause__ or exc.__context__
        if cause is not None:  # TUFError says "Failed to refresh TUF metadata"; the cause says why
            reason += f" ({type(cause).__name__}: {str(cause).strip()[:200]})"
        raise CspmError(f"cannot update Sigstore's trusted root from {TUF_URL}: {reason[:300]}",
                        hint="`cspm trust refresh` needs the network: check the connection (or HTTPS_PROXY) and "
                             "run it again; until then, verification uses the trusted root already on disk"
                        ) from None


def cert_signer(cert: Any) -> Signer:
    """The OIDC issuer and identity a Fulcio certificate was issued for."""
    from cryptography import x509

    issuer = ""
    for oid in (OIDC_ISSUER_V2, OIDC_ISSUER_V1):
        try:
            value = cert.extensions.get_extension_for_oid(x509.ObjectIdentifier(oid)).value.value
        except x509.ExtensionNotFound:
            continue
        issuer = _der_utf8(value) if oid == OIDC_ISSUER_V2 else value.decode()  # v2: a DER UTF8String
        break
    san = cert.extensions.get_extension_for_class(x509.SubjectAlternativeName).value
    names = san.get_values_for_type(x509.RFC822Name) + san.get_values_for_type(x509.UniformResourceIdentifier)
    return Signer(issuer, names[0] if names else "")


def _der_utf8(value: bytes) -> str:
    """A DER UTF8String (tag 0x0C, length, text), as Fulcio writes the v2 issuer extension."""
    if len(value) < 2 or value[0] != 0x0C:
        raise ValueError("not a DER UTF8String")
    length, start = value[1], 2
    if length & 0x80:
        count = length & 0x7F
        if count == 0 or count > 4 or len(value) < 2 + count:
            raise ValueError("bad DER length")
        length, start = int.from_bytes(value[2:2 + count], "big"), 2 + count
    if start + length != len(value):
        raise ValueError("bad DER length")
    return value[start:].decode("utf-8")


def sign_sigstore(data: bytes, identity_token: str) -> bytes:
    from sigstore.oidc import IdentityToken
    from sigstore.sign import SigningContext

    context = SigningContext.from_trust_config(trust_config())
    with context.signer(IdentityToken(identity_token), cache=True) as signer:
        bundle = signer.sign_artifact(data)
    return bundle.to_json().encode()


def _verify_sigstore(bundle_bytes: bytes, digest: str, what: str) -> Signer:
    _import_verifier()
    from sigstore.errors import VerificationError
    from sigstore.hashes import Hashed
    from sigstore.models import Bundle, InvalidBundle
    from sigstore.verify import Verifier, policy
    from sigstore_models.common.v1 import HashAlgorithm

    try:
        bundle = Bundle.from_json(bundle_bytes)
    except (InvalidBundle, ValueError):
        raise SignatureError(f"{what}: the signature is not a Sigstore bundle") from None
    from cryptography import x509

    try:
        found = cert_signer(bundle.signing_certificate)
    except (x509.ExtensionNotFound, ValueError):
        raise SignatureError(f"{what}: the Sigstore bundle's certificate names no signer") from None
    verifier = Verifier(trusted_root=trust_config().trusted_root)
    hashed = Hashed(algorithm=HashAlgorithm.SHA2_256, digest=bytes.fromhex(digest.split(":")[1]))
    try:
        verifier.verify_artifact(hashed, bundle, policy.Identity(identity=found.identity, issuer=found.issuer))
    except VerificationError as exc:
        raise SignatureError(f"{what}: the Sigstore bundle does not verify for this blob ({digest}): {exc}") from None
    return found


def _same_version(a: str, b: str) -> bool:
    from packaging.version import InvalidVersion, Version

    try:
        return Version(a) == Version(b)
    except InvalidVersion:
        return a == b


def verify(bundle: bytes | None, kind: str | None, *, name: str, digest: str, what: str, rule: Rule | None,
           pinned: Signer | None = None, version: str | None = None) -> Signer | None:
    """The proven signer of `digest`, or None for an unsigned blob that nothing requires to be signed."""
    if bundle is None:
        if rule is not None and rule.require:
            raise SignatureError(f"{what} is not signed, but the trust policy for {rule.pattern} requires a "
                                 f"signature by {rule.expected()}")
        if pinned is not None:
            raise SignatureError(f"{what} is not signed, but the lock pins signer {pinned}")
        return None
    if len(bundle) > MAX_BUNDLE:
        raise SignatureError(f"{what}: the signature is larger than {MAX_BUNDLE} bytes")
    if kind == "dsse-ed25519":
        keys = tuple(rule.keys) if rule else ()
        signer = _verify_keyed(bundle, name, digest, keys, what, version)
    elif kind == "sigstore":
        signer = _verify_sigstore(bundle, digest, what)
    else:
        raise SignatureError(f"{what}: unknown signature kind {kind!r}")
    if rule is not None and not rule.accepts(signer):
        raise SignatureError(f"{what} is signed by {signer}, but the trust policy for {rule.pattern} expects "
                             f"{rule.expected()}")
    if pinned is not None and signer != pinned:
        raise SignatureError(f"{what} is signed by {signer}, but the lock pins {pinned}",
                             hint="if the publisher really changed, relock: `cspm lock APP.yaml --allow-signer-change`")
    return signer
