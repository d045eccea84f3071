"""A local Sigstore stack on loopback, so that the unmodified sigstore-python client signs and verifies against it.

One ThreadingHTTPServer on 127.0.0.1 (random port) serves:

- test OIDC issuers (`<url>/oidc`, ES256, and `<url>/oidc-rs`, RS256) with discovery and JWKS documents; tokens come
  from `SigstoreStack.mint_token` (iss, sub, email, aud "sigstore", iat, exp);
- a Fulcio stand-in, `POST /api/v2/signingCert`: verifies the token's JWT signature against the issuer's key (the
  client never does), its audience and lifetime, and the CSR's self-signature (or the v2 `publicKeyRequest` proof of
  possession), then issues a 10-minute code-signing leaf under a test root + intermediate, with the Sigstore issuer
  extensions (1.3.6.1.4.1.57264.1.1 raw, .1.8 UTF8String), the SAN from the token (email, or the `sub` URI) and one
  embedded SCT: RFC 6962 precertificate flow, the CT log signing the precert's TBS with the poison stripped;
- a Rekor v1 log (`/api/v1/log...`): hashedrekord and dsse 0.0.1 entries (signature checked against the certificate),
  an RFC 6962 Merkle tree, a signed entry timestamp and an inclusion proof with a signed checkpoint (signed note);
- the client trust config (`SigstoreStack.trust_config_json`, also `GET /trust_config.json`): trusted root + signing
  config naming the CA, CT log and Rekor; no TSA (Rekor v1's signed integrated time is the verified time).
"""

from __future__ import annotations

import base64
import hashlib
import json
import os
import struct
import threading
import time
from collections.abc import Iterator
from dataclasses import dataclass
from datetime import UTC, datetime, timedelta
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer
from typing import Any, ClassVar
from urllib.parse import parse_qs, urlsplit

import pytest
from cryptography import x509
from cryptography.exceptions import InvalidSignature
from cryptography.hazmat.primitives import hashes, serialization
from cryptography.hazmat.primitives.asymmetric import ec, padding, rsa
from cryptography.hazmat.primitives.asymmetric.utils import Prehashed, decode_dss_signature, encode_dss_signature
from cryptography.x509.oid import ExtendedKeyUsageOID, NameOID, ObjectIdentifier

OIDC_ISSUER_OID = ObjectIdentifier("1.3.6.1.4.1.57264.1.1")
OIDC_ISSUER_V2_OID = ObjectIdentifier("1.3.6.1.4.1.57264.1.8")
SCT_LIST_OID = "1.3.6.1.4.1.11129.2.4.2"
POISON_OID = "1.3.6.1.4.1.11129.2.4.3"
AUDIENCE = "sigstore"
OPERATOR = "cspm-tests"
LOG_NAME = "rekor.cspm.test"
CERT_LIFETIME = timedelta(minutes=10)
CLOCK_LEEWAY = 5


class Refused(Exception):
    """A request the CA or the log refuses: becomes an HTTP error with a JSON {code, message} body."""

    def __init__(self, code: int, message: str) -> None:
        super().__init__(message)
        self.code = code


# --- encodings -----------------------------------------------------------------------------------------------------


def _b64(data: bytes) -> str:
    return base64.b64encode(data).decode()


def _b64url(data: bytes) -> str:
    return base64.urlsafe_b64encode(data).rstrip(b"=").decode()


def _unb64url(text: str) -> bytes:
    return base64.urlsafe_b64decode(text + "=" * (-len(text) % 4))


def _canonical(obj: Any) -> bytes:
    """RFC 8785 for what this module encodes (ASCII keys, strings, integers): sorted keys, no whitespace."""
    return json.dumps(obj, sort_keys=True, separators=(",", ":"), ensure_ascii=False).encode()


def _der(tag: int, content: bytes) -> bytes:
    n = len(content)
    if n < 0x80:
        return bytes([tag, n]) + content
    size = n.to_bytes((n.bit_length() + 7) // 8, "big")
    return bytes([tag, 0x80 | len(size)]) + size + content


def _der_read(data: bytes, pos: int) -> tuple[int, int, int]:
    """(tag, content start, content end) of the DER element at `pos`."""
    tag, first = data[pos], data[pos + 1]
    if first < 0x80:
        return tag, pos + 2, pos + 2 + first
    count = first & 0x7F
    length = int.from_bytes(data[pos + 2 : pos + 2 + count], "big")
    return tag, pos + 2 + count, pos + 2 + count + length


def _der_oid(dotted: str) -> bytes:
    arcs = [int(a) for a in dotted.split(".")]
    body = bytearray([40 * arcs[0] + arcs[1]])
    for arc in arcs[2:]:
        chunk = [arc & 0x7F]
        while arc > 0x7F:
            arc >>= 7
            chunk.append(0x80 | (arc & 0x7F))
        body += bytes(reversed(chunk))
    return _der(0x06, bytes(body))


def _strip_extension(tbs: bytes, dotted_oid: str) -> bytes:
    """A TBSCertificate's DER without the extension `dotted_oid` (RFC 6962 §3.2: the log drops the poison)."""
    oid = _der_oid(dotted_oid)
    _, start, end = _der_read(tbs, 0)
    fields, pos = [], start
    while pos < end:
        tag, cstart, cend = _der_read(tbs, pos)
        if tag == 0xA3:  # [3] EXPLICIT Extensions
            _, estart, eend = _der_read(tbs, cstart)
            kept, epos = [], estart
            while epos < eend:
                _, xstart, xend = _der_read(tbs, epos)
                if not tbs[xstart:].startswith(oid):
                    kept.append(tbs[epos:xend])
                epos = xend
            fields.append(_der(0xA3, _der(0x30, b"".join(kept))))
        else:
            fields.append(tbs[pos:cend])
        pos = cend
    return _der(0x30, b"".join(fields))


def _spki(key: Any) -> bytes:
    return key.public_bytes(serialization.Encoding.DER, serialization.PublicFormat.SubjectPublicKeyInfo)


def _key_id(key: Any) -> bytes:
    """RFC 6962 key ID: SHA-256 of the DER SubjectPublicKeyInfo (also Rekor's log ID)."""
    return hashlib.sha256(_spki(key)).digest()


def _pem(cert: x509.Certificate) -> str:
    return cert.public_bytes(serialization.Encoding.PEM).decode()


def _iso(moment: datetime) -> str:
    return moment.strftime("%Y-%m-%dT%H:%M:%SZ")


# --- OIDC ------------------------------------------------------------------------------------------------------------


@dataclass
class TestIssuer:
    """A test OIDC issuer: its URL (the `iss` claim), JWS algorithm, signing key and key ID."""

    __test__ = False
    url: str
    alg: str
    key: Any
    kid: str

    def jwk(self) -> dict[str, str]:
        numbers = self.key.public_key().public_numbers()
        if self.alg == "ES256":
            return {"kty": "EC", "crv": "P-256", "x": _b64url(numbers.x.to_bytes(32, "big")),
                    "y": _b64url(numbers.y.to_bytes(32, "big")), "kid": self.kid, "alg": "ES256", "use": "sig"}
        return {"kty": "RSA", "n": _b64url(numbers.n.to_bytes((numbers.n.bit_length() + 7) // 8, "big")),
                "e": _b64url(numbers.e.to_bytes(3, "big")), "kid": self.kid, "alg": "RS256", "use": "sig"}


def _new_key(alg: str) -> Any:
    if alg == "ES256":
        return ec.generate_private_key(ec.SECP256R1())
    return rsa.generate_private_key(public_exponent=65537, key_size=2048)


def _jws_sign(key: Any, alg: str, data: bytes) -> bytes:
    if alg == "ES256":
        r, s = decode_dss_signature(key.sign(data, ec.ECDSA(hashes.SHA256())))
        return r.to_bytes(32, "big") + s.to_bytes(32, "big")
    return key.sign(data, padding.PKCS1v15(), hashes.SHA256())


def _jws_verify(public_key: Any, alg: str, signature: bytes, data: bytes) -> None:
    if alg == "ES256":
        if len(signature) != 64:
            raise InvalidSignature
        der = encode_dss_signature(int.from_bytes(signature[:32], "big"), int.from_bytes(signature[32:], "big"))
        public_key.verify(der, data, ec.ECDSA(hashes.SHA256()))
    else:
        public_key.verify(signature, data, padding.PKCS1v15(), hashes.SHA256())


def mint_jwt(claims: dict[str, Any], key: Any, alg: str, kid: str) -> str:
    header = {"alg": alg, "typ": "JWT", "kid": kid}
    signing_input = f"{_b64url(_canonical(header))}.{_b64url(_canonical(claims))}".encode()
    return f"{signing_input.decode()}.{_b64url(_jws_sign(key, alg, signing_input))}"


def verify_jwt(token: str, issuers: dict[str, TestIssuer], audience: str = AUDIENCE) -> dict[str, Any]:
    """The CA's check of an identity token: known issuer, its key and algorithm, audience and lifetime."""
    try:
        head, body, sig = token.split(".")
        header, claims = json.loads(_unb64url(head)), json.loads(_unb64url(body))
        signature = _unb64url(sig)
    except ValueError as exc:
        raise Refused(401, f"malformed identity token: {exc}") from exc
    iss = claims.get("iss") if isinstance(claims, dict) and isinstance(header, dict) else None
    issuer = issuers.get(iss) if isinstance(iss, str) else None
    if issuer is None:
        raise Refused(401, "identity token from an untrusted issuer")
    if header.get("alg") != issuer.alg:
        raise Refused(401, f"identity token algorithm {header.get('alg')!r} is not the issuer's {issuer.alg}")
    try:
        _jws_verify(issuer.key.public_key(), issuer.alg, signature, f"{head}.{body}".encode())
    except InvalidSignature as exc:
        raise Refused(401, "identity token signature does not verify with the issuer's key") from exc
    aud = claims.get("aud")
    if audience not in (aud if isinstance(aud, list) else [aud]):
        raise Refused(401, f"identity token audience is not {audience!r}")
    now = time.time()
    if not isinstance(claims.get("exp"), int) or claims["exp"] <= now - CLOCK_LEEWAY:
        raise Refused(401, "identity token has expired")
    if claims.get("iat", 0) > now + CLOCK_LEEWAY or claims.get("nbf", 0) > now + CLOCK_LEEWAY:
        raise Refused(401, "identity token is not valid yet")
    if not claims.get("sub"):
        raise Refused(401, "identity token has no subject")
    return claims


# --- transparency: RFC 6962 Merkle tree, signed notes ----------------------------------------------------------------


def _leaf_hash(data: bytes) -> bytes:
    return hashlib.sha256(b"\x00" + data).digest()


def _node_hash(left: bytes, right: bytes) -> bytes:
    return hashlib.sha256(b"\x01" + left + right).digest()


def _split(n: int) -> int:
    """The largest power of two smaller than n (n >= 2)."""
    return 1 << ((n - 1).bit_length() - 1)


def merkle_root(leaves: list[bytes]) -> bytes:
    if not leaves:
        return hashlib.sha256(b"").digest()
    if len(leaves) == 1:
        return leaves[0]
    k = _split(len(leaves))
    return _node_hash(merkle_root(leaves[:k]), merkle_root(leaves[k:]))


def inclusion_path(index: int, leaves: list[bytes]) -> list[bytes]:
    """RFC 6962 §2.1.1 PATH(m, D[n]), from the leaf's sibling upwards."""
    if len(leaves) <= 1:
        return []
    k = _split(len(leaves))
    if index < k:
        return [*inclusion_path(index, leaves[:k]), merkle_root(leaves[k:])]
    return [*inclusion_path(index - k, leaves[k:]), merkle_root(leaves[:k])]


class RekorLog:
    """An append-only Rekor v1 log: entries, Merkle tree, SETs and signed checkpoints."""

    def __init__(self) -> None:
        self.key = ec.generate_private_key(ec.SECP256R1())
        self.log_id = _key_id(self.key.public_key())
        self.tree_id = int.from_bytes(os.urandom(7), "big")
        self.leaves: list[bytes] = []
        self.entries: list[dict[str, Any]] = []
        self.lock = threading.Lock()

    def _sign(self, data: bytes) -> bytes:
        return self.key.sign(data, ec.ECDSA(hashes.SHA256()))

    def checkpoint(self, size: int, root: bytes) -> str:
        note = f"{LOG_NAME} - {self.tree_id}\n{size}\n{_b64(root)}\n"
        signature = _b64(self.log_id[:4] + self._sign(note.encode()))
        return f"{note}\n\u2014 {LOG_NAME} {signature}\n"

    def add(self, body: bytes) -> dict[str, Any]:
        with self.lock:
            leaf = _leaf_hash(body)
            if leaf in self.leaves:
                raise Refused(409, f"an equivalent entry already exists in the log with UUID {leaf.hex()}")
            index, integrated = len(self.leaves), int(time.time())
            promise = {"body": _b64(body), "integratedTime": integrated, "logID": self.log_id.hex(), "logIndex": index}
            entry = {**promise, "verification": {"signedEntryTimestamp": _b64(self._sign(_canonical(promise)))}}
            self.leaves.append(leaf)
            self.entries.append(entry)
            return self.response(index)

    def response(self, index: int) -> dict[str, Any]:
        """`{uuid: LogEntry}` with an inclusion proof against the current tree head."""
        leaves = self.leaves[:]
        root = merkle_root(leaves)
        entry = json.loads(json.dumps(self.entries[index]))
        entry["verification"]["inclusionProof"] = {
            "logIndex": index, "treeSize": len(leaves), "rootHash": root.hex(),
            "hashes": [h.hex() for h in inclusion_path(index, leaves)],
            "checkpoint": self.checkpoint(len(leaves), root),
        }
        return {leaves[index].hex(): entry}

    def find(self, uuid: str) -> int:
        uuid = uuid[-64:]  # accept "<treeID><uuid>" too
        for index, leaf in enumerate(self.leaves):
            if leaf.hex() == uuid:
                return index
        raise Refused(404, f"no entry with UUID {uuid}")


def _load_verifier(b64_pem: str) -> Any:
    """The key of a Rekor `publicKey.content` / dsse verifier: base64 of a PEM certificate (or public key)."""
    try:
        pem = base64.b64decode(b64_pem)
        if b"CERTIFICATE" in pem:
            return x509.load_pem_x509_certificate(pem).public_key()
        return serialization.load_pem_public_key(pem)
    except ValueError as exc:
        raise Refused(400, f"invalid verification material: {exc}") from exc


def _check_signature(public_key: Any, signature: bytes, data: bytes, *, prehashed: bool) -> None:
    if not isinstance(public_key, ec.EllipticCurvePublicKey):
        raise Refused(400, "only ECDSA verification material is supported")
    algorithm: Any = {32: hashes.SHA256(), 48: hashes.SHA384(), 64: hashes.SHA512()}[len(data)] if prehashed else None
    try:
        if prehashed:
            public_key.verify(signature, data, ec.ECDSA(Prehashed(algorithm)))
        else:
            public_key.verify(signature, data, ec.ECDSA(hashes.SHA256()))
    except InvalidSignature as exc:
        raise Refused(400, "signature does not verify with the supplied key") from exc


def canonical_body(proposed: dict[str, Any]) -> bytes:
    """The canonicalized entry Rekor logs for a proposed hashedrekord or dsse 0.0.1 entry, after checking it."""
    kind, version, spec = proposed.get("kind"), proposed.get("apiVersion"), proposed.get("spec") or {}
    if (kind, version) == ("hashedrekord", "0.0.1"):
        try:
            sig_b64 = spec["signature"]["content"]
            key_b64 = spec["signature"]["publicKey"]["content"]
            algorithm, value = spec["data"]["hash"]["algorithm"], spec["data"]["hash"]["value"]
            digest, signature = bytes.fromhex(value), base64.b64decode(sig_b64, validate=True)
        except (KeyError, TypeError, ValueError) as exc:
            raise Refused(400, f"malformed hashedrekord entry: {exc}") from exc
        if {"sha256": 32, "sha384": 48, "sha512": 64}.get(algorithm) != len(digest):
            raise Refused(400, f"unsupported or malformed digest {algorithm}:{value}")
        _check_signature(_load_verifier(key_b64), signature, digest, prehashed=True)
        return _canonical({"apiVersion": "0.0.1", "kind": "hashedrekord", "spec": {
            "data": {"hash": {"algorithm": algorithm, "value": value}},
            "signature": {"content": sig_b64, "publicKey": {"content": key_b64}}}})
    if (kind, version) == ("dsse", "0.0.1"):
        try:
            raw_envelope = spec["proposedContent"]["envelope"]
            verifiers = spec["proposedContent"]["verifiers"]
            envelope = json.loads(raw_envelope)
            payload = base64.b64decode(envelope["payload"])
            payload_type = envelope["payloadType"]
            sigs = [base64.b64decode(s["sig"]) for s in envelope["signatures"]]
        except (KeyError, TypeError, ValueError) as exc:
            raise Refused(400, f"malformed dsse entry: {exc}") from exc
        pae = b"DSSEv1 %d %s %d %s" % (len(payload_type.encode()), payload_type.encode(), len(payload), payload)
        signatures = []
        for sig in sigs:
            for verifier in verifiers:
                try:
                    _check_signature(_load_verifier(verifier), sig, pae, prehashed=False)
                except Refused:
                    continue
                signatures.append({"signature": _b64(sig), "verifier": verifier})
                break
            else:
                raise Refused(400, "a DSSE signature verifies with none of the verifiers")
        return _canonical({"apiVersion": "0.0.1", "kind": "dsse", "spec": {
            "envelopeHash": {"algorithm": "sha256", "value": hashlib.sha256(raw_envelope.encode()).hexdigest()},
            "payloadHash": {"algorithm": "sha256", "value": hashlib.sha256(payload).hexdigest()},
            "signatures": sorted(signatures, key=lambda s: s["signature"])}})
    raise Refused(400, f"unsupported entry type {kind}/{version}")


# --- the CA and its CT log -------------------------------------------------------------------------------------------


def _ca_cert(subject: str, key: Any, issuer: x509.Certificate | None, issuer_key: Any) -> x509.Certificate:
    now = datetime.now(UTC)
    name = x509.Name([x509.NameAttribute(NameOID.ORGANIZATION_NAME, OPERATOR),
                      x509.NameAttribute(NameOID.COMMON_NAME, subject)])
    builder = (
        x509.CertificateBuilder().subject_name(name)
        .issuer_name(issuer.subject if issuer else name).public_key(key.public_key())
        .serial_number(x509.random_serial_number())
        .not_valid_before(now - timedelta(days=1)).not_valid_after(now + timedelta(days=3650))
        .add_extension(x509.BasicConstraints(ca=True, path_length=None if issuer is None else 0), critical=True)
        .add_extension(x509.KeyUsage(digital_signature=False, content_commitment=False, key_encipherment=False,
                                     data_encipherment=False, key_agreement=False, key_cert_sign=True, crl_sign=True,
                                     encipher_only=False, decipher_only=False), critical=True)
        .add_extension(x509.SubjectKeyIdentifier.from_public_key(key.public_key()), critical=False)
    )
    if issuer is not None:
        builder = builder.add_extension(
            x509.AuthorityKeyIdentifier.from_issuer_public_key(issuer_key.public_key()), critical=False)
        builder = builder.add_extension(x509.ExtendedKeyUsage([ExtendedKeyUsageOID.CODE_SIGNING]), critical=False)
    return builder.sign(issuer_key, hashes.SHA384())


class TestCA:
    """The Fulcio stand-in: a root, an intermediate that issues leaves, and the CT log that signs their SCTs."""

    __test__ = False

    def __init__(self) -> None:
        self.root_key = ec.generate_private_key(ec.SECP384R1())
        self.root = _ca_cert("cspm test root", self.root_key, None, self.root_key)
        self.intermediate_key = ec.generate_private_key(ec.SECP384R1())
        self.intermediate = _ca_cert("cspm test intermediate", self.intermediate_key, self.root, self.root_key)
        self.ct_key = ec.generate_private_key(ec.SECP256R1())
        self.ct_log_id = _key_id(self.ct_key.public_key())
        self.issued: list[x509.Certificate] = []

    def sct(self, precert: x509.Certificate) -> bytes:
        """The CT log's SCT for a precertificate, TLS-encoded (RFC 6962 §3.2), over its TBS minus the poison."""
        tbs = _strip_extension(precert.tbs_certificate_bytes, POISON_OID)
        timestamp = int(time.time() * 1000)
        signed = (struct.pack("!BBQH", 0, 0, timestamp, 1) + _key_id(self.intermediate_key.public_key())
                  + len(tbs).to_bytes(3, "big") + tbs + struct.pack("!H", 0))
        signature = self.ct_key.sign(signed, ec.ECDSA(hashes.SHA256()))
        return (struct.pack("!B", 0) + self.ct_log_id + struct.pack("!QH", timestamp, 0)
                + struct.pack("!BBH", 4, 3, len(signature)) + signature)  # sha256, ecdsa

    def issue(self, public_key: Any, claims: dict[str, Any]) -> list[str]:
        if "email" in claims:
            if claims.get("email_verified") is not True:
                raise Refused(400, "the token's email is not verified")
            san: x509.GeneralName = x509.RFC822Name(claims["email"])
        elif "://" in claims["sub"]:
            san = x509.UniformResourceIdentifier(claims["sub"])
        else:
            raise Refused(400, "the token has neither an email nor a URI subject")
        issuer = claims["iss"]
        now = datetime.now(UTC).replace(microsecond=0)
        builder = (
            x509.CertificateBuilder().subject_name(x509.Name([])).issuer_name(self.intermediate.subject)
            .public_key(public_key).serial_number(x509.random_serial_number())
            .not_valid_before(now).not_valid_after(now + CERT_LIFETIME)
            .add_extension(x509.KeyUsage(digital_signature=True, content_commitment=False, key_encipherment=False,
                                         data_encipherment=False, key_agreement=False, key_cert_sign=False,
                                         crl_sign=False, encipher_only=False, decipher_only=False), critical=True)
            .add_extension(x509.ExtendedKeyUsage([ExtendedKeyUsageOID.CODE_SIGNING]), critical=False)
            .add_extension(x509.SubjectKeyIdentifier.from_public_key(public_key), critical=False)
            .add_extension(x509.AuthorityKeyIdentifier.from_issuer_public_key(self.intermediate_key.public_key()),
                           critical=False)
            .add_extension(x509.SubjectAlternativeName([san]), critical=True)
            .add_extension(x509.UnrecognizedExtension(OIDC_ISSUER_OID, issuer.encode()), critical=False)
            .add_extension(x509.UnrecognizedExtension(OIDC_ISSUER_V2_OID, _der(0x0C, issuer.encode())),
                           critical=False)
        )
        precert = builder.add_extension(x509.PrecertPoison(), critical=True).sign(self.intermediate_key,
                                                                                  hashes.SHA384())
        sct = self.sct(precert)
        serialized = struct.pack("!H", len(sct)) + sct  # SignedCertificateTimestampList of one SerializedSCT
        sct_list = _der(0x04, struct.pack("!H", len(serialized)) + serialized)
        leaf = builder.add_extension(x509.UnrecognizedExtension(ObjectIdentifier(SCT_LIST_OID), sct_list),
                                     critical=False).sign(self.intermediate_key, hashes.SHA384())
        assert leaf.tbs_precertificate_bytes == _strip_extension(precert.tbs_certificate_bytes, POISON_OID)
        self.issued.append(leaf)
        return [_pem(leaf), _pem(self.intermediate), _pem(self.root)]


def _requested_key(request: dict[str, Any], claims: dict[str, Any]) -> Any:
    """The key to certify: from a CSR (its self-signature checked), or a v2 publicKeyRequest with its proof."""
    try:
        if "certificateSigningRequest" in request:
            csr = x509.load_pem_x509_csr(base64.b64decode(request["certificateSigningRequest"]))
            if not csr.is_signature_valid:
                raise Refused(400, "the CSR's signature does not verify")
            return csr.public_key()
        key_request = request["publicKeyRequest"]
        key = serialization.load_pem_public_key(key_request["publicKey"]["content"].encode())
        proof = base64.b64decode(key_request["proofOfPossession"])
    except (KeyError, TypeError, ValueError) as exc:
        raise Refused(400, f"malformed signing certificate request: {exc}") from exc
    if not isinstance(key, ec.EllipticCurvePublicKey):
        raise Refused(400, "only ECDSA keys are certified")
    try:
        key.verify(proof, claims.get("email", claims["sub"]).encode(), ec.ECDSA(hashes.SHA256()))
    except InvalidSignature as exc:
        raise Refused(400, "the proof of possession does not verify") from exc
    return key


# --- the server ------------------------------------------------------------------------------------------------------


class _Handler(BaseHTTPRequestHandler):
    protocol_version = "HTTP/1.1"
    stack: ClassVar[SigstoreStack]

    def log_message(self, format: str, *args: Any) -> None:  # quiet
        pass

    def _reply(self, status: int, body: Any, content_type: str = "application/json") -> None:
        data = body.encode() if isinstance(body, str) else json.dumps(body).encode()
        self.send_response(status)
        self.send_header("Content-Type", content_type)
        self.send_header("Content-Length", str(len(data)))
        self.end_headers()
        self.wfile.write(data)

    def _handle(self, method: str) -> None:
        url = urlsplit(self.path)
        body = self.rfile.read(int(self.headers.get("Content-Length") or 0))
        self.stack.seen.append((method, url.path))
        try:
            status, reply = self.stack.route(method, url.path, parse_qs(url.query), body, self.headers)
        except Refused as exc:
            status, reply = exc.code, {"code": exc.code, "message": str(exc)}
        except Exception as exc:  # a bug or a malformed request: still an answer, never a dropped connection
            status, reply = 500, {"code": 500, "message": f"{type(exc).__name__}: {exc}"}
        self._reply(status, reply, "application/x-pem-file" if isinstance(reply, str) else "application/json")

    def do_GET(self) -> None:
        self._handle("GET")

    def do_POST(self) -> None:
        self._handle("POST")


class SigstoreStack:
    """The running stack: its URL, issuers, CA, log, token minter and client trust config."""

    def __init__(self) -> None:
        self.ca = TestCA()
        self.rekor = RekorLog()
        self.seen: list[tuple[str, str]] = []
        self.server = ThreadingHTTPServer(("127.0.0.1", 0), type("Handler", (_Handler,), {"stack": self}))
        self.server.daemon_threads = True
        self.url = f"http://127.0.0.1:{self.server.server_address[1]}"
        self.issuer = f"{self.url}/oidc"  # ES256
        self.other_issuer = f"{self.url}/oidc-rs"  # RS256
        self.issuers = {url: TestIssuer(url, alg, _new_key(alg), f"{alg.lower()}-1")
                        for url, alg in ((self.issuer, "ES256"), (self.other_issuer, "RS256"))}
        self.thread = threading.Thread(target=self.server.serve_forever, name="sigstore-stack", daemon=True)
        self.thread.start()

    def close(self) -> None:
        self.server.shutdown()
        self.server.server_close()
        self.thread.join(timeout=5)

    def mint_token(self, *, email: str | None = None, sub: str | None = None, issuer: str | None = None,
                   audience: str | list[str] = AUDIENCE, lifetime: int = 600, untrusted_key: bool = False,
                   **claims: Any) -> str:
        """An identity token from a test issuer (default: the ES256 one); `untrusted_key` signs it with a fresh key
        under the same kid, a token the CA must refuse."""
        test_issuer = self.issuers[issuer or self.issuer]
        now = int(time.time())
        payload: dict[str, Any] = {"iss": test_issuer.url, "aud": audience, "iat": now, "exp": now + lifetime}
        if email is not None:
            payload.update(email=email, email_verified=True)
        payload["sub"] = sub or email
        if not payload["sub"]:
            raise ValueError("a token needs an email or a sub")
        payload.update(claims)
        key = _new_key(test_issuer.alg) if untrusted_key else test_issuer.key
        return mint_jwt(payload, key, test_issuer.alg, test_issuer.kid)

    # -- trust material --

    def trusted_root(self) -> dict[str, Any]:
        start = {"start": _iso(datetime.now(UTC) - timedelta(days=1))}

        def log(base_url: str, key: Any) -> dict[str, Any]:
            return {"baseUrl": base_url, "hashAlgorithm": "SHA2_256",
                    "publicKey": {"rawBytes": _b64(_spki(key)), "keyDetails": "PKIX_ECDSA_P256_SHA_256",
                                  "validFor": start},
                    "logId": {"keyId": _b64(_key_id(key))}}

        chain = [self.ca.intermediate, self.ca.root]
        return {
            "mediaType": "application/vnd.dev.sigstore.trustedroot+json;version=0.1",
            "tlogs": [log(self.url, self.rekor.key.public_key())],
            "certificateAuthorities": [{
                "subject": {"organization": OPERATOR, "commonName": "cspm test root"}, "uri": self.url,
                "certChain": {"certificates": [
                    {"rawBytes": _b64(c.public_bytes(serialization.Encoding.DER))} for c in chain]},
                "validFor": start}],
            "ctlogs": [log(f"{self.url}/ct", self.ca.ct_key.public_key())],
            "timestampAuthorities": [],
        }

    def signing_config(self) -> dict[str, Any]:
        def service(url: str) -> dict[str, Any]:
            return {"url": url, "majorApiVersion": 1, "operator": OPERATOR,
                    "validFor": {"start": _iso(datetime.now(UTC) - timedelta(days=1))}}

        return {"mediaType": "application/vnd.dev.sigstore.signingconfig.v0.2+json",
                "caUrls": [service(self.url)], "oidcUrls": [service(self.issuer)],
                "rekorTlogUrls": [service(self.url)], "tsaUrls": [],
                "rekorTlogConfig": {"selector": "ANY"}, "tsaConfig": {"selector": "ANY"}}

    @property
    def trust_config_json(self) -> str:
        """A ClientTrustConfig: `sigstore.models.ClientTrustConfig.from_json(stack.trust_config_json)`."""
        return json.dumps({"mediaType": "application/vnd.dev.sigstore.clienttrustconfig.v0.1+json",
                           "trustedRoot": self.trusted_root(), "signingConfig": self.signing_config()})

    # -- routes --

    def route(self, method: str, path: str, query: dict[str, list[str]], body: bytes, headers: Any) -> tuple[int, Any]:
        for test_issuer in self.issuers.values():
            base = urlsplit(test_issuer.url).path
            if (method, path) == ("GET", f"{base}/.well-known/openid-configuration"):
                return 200, {"issuer": test_issuer.url, "jwks_uri": f"{test_issuer.url}/jwks",
                             "authorization_endpoint": f"{test_issuer.url}/auth",
                             "token_endpoint": f"{test_issuer.url}/token",
                             "id_token_signing_alg_values_supported": [test_issuer.alg]}
            if (method, path) == ("GET", f"{base}/jwks"):
                return 200, {"keys": [test_issuer.jwk()]}
        if (method, path) == ("POST", "/api/v2/signingCert"):
            return self.signing_cert(body, headers)
        if (method, path) == ("GET", "/api/v2/trustBundle"):
            return 200, {"chains": [{"certificates": [_pem(self.ca.intermediate), _pem(self.ca.root)]}]}
        if (method, path) == ("GET", "/trust_config.json"):
            return 200, json.loads(self.trust_config_json)
        if (method, path) == ("POST", "/api/v1/log/entries"):
            try:
                proposed = json.loads(body)
            except ValueError as exc:
                raise Refused(400, f"malformed JSON: {exc}") from exc
            return 201, self.rekor.add(canonical_body(proposed))
        if (method, path) == ("GET", "/api/v1/log/entries"):
            try:
                index = int(query["logIndex"][0])
            except (KeyError, ValueError) as exc:
                raise Refused(400, "logIndex is required") from exc
            if not 0 <= index < len(self.rekor.leaves):
                raise Refused(404, f"no entry at index {index}")
            return 200, self.rekor.response(index)
        if method == "GET" and path.startswith("/api/v1/log/entries/"):
            return 200, self.rekor.response(self.rekor.find(path.rsplit("/", 1)[1]))
        if (method, path) == ("GET", "/api/v1/log"):
            leaves = self.rekor.leaves[:]
            root = merkle_root(leaves)
            return 200, {"rootHash": root.hex(), "treeSize": len(leaves), "treeID": str(self.rekor.tree_id),
                         "signedTreeHead": self.rekor.checkpoint(len(leaves), root)}
        if (method, path) == ("GET", "/api/v1/log/publicKey"):
            return 200, self.rekor.key.public_key().public_bytes(
                serialization.Encoding.PEM, serialization.PublicFormat.SubjectPublicKeyInfo).decode()
        raise Refused(404, f"no route for {method} {path}")

    def signing_cert(self, body: bytes, headers: Any) -> tuple[int, Any]:
        try:
            request = json.loads(body)
        except ValueError as exc:
            raise Refused(400, f"malformed JSON: {exc}") from exc
        auth = headers.get("Authorization", "")
        token = auth[len("Bearer "):] if auth.startswith("Bearer ") else \
            (request.get("credentials") or {}).get("oidcIdentityToken", "")
        if not token:
            raise Refused(401, "no identity token")
        claims = verify_jwt(token, self.issuers)
        chain = self.ca.issue(_requested_key(request, claims), claims)
        return 201, {"signedCertificateEmbeddedSct": {"chain": {"certificates": chain}}}


@pytest.fixture(scope="session")
def sigstore_stack() -> Iterator[SigstoreStack]:
    """The local Sigstore stack, started once per session; loopback kept off any configured proxy."""
    patch = pytest.MonkeyPatch()
    for name in ("NO_PROXY", "no_proxy"):
        current = os.environ.get(name, "")
        patch.setenv(name, ",".join(filter(None, [current, "127.0.0.1", "localhost"])))
    stack = SigstoreStack()
    try:
        yield stack
    finally:
        stack.close()
        patch.undo()
