"""An OCI registry behind a token service, as GHCR, Docker Hub and Harbor are: Debian's `docker-registry`
(CNCF distribution 2.8) with `auth: token`, and a small token service of ours on loopback.

The registry answers an unauthenticated request with `401` and `WWW-Authenticate: Bearer realm=…,
service=…,scope=…`; the client asks the realm for a JWT and retries with `Authorization: Bearer`.
Distribution 2.8 verifies the JWT itself (registry/auth/token/token.go at v2.8.2): `iss` must be the
configured issuer, `aud` (one string) the service, `exp`/`nbf` within 60 s of leeway, and the
signature by the key of the leaf of the header's `x5c` chain, which must verify up to a certificate
in `rootcertbundle`. Here the signing certificate is self-signed and is the whole bundle; tokens are
ES256 (JWS: the raw r||s signature), signed by hand with `cryptography`.

The service's policy: with the right Basic login, any repository, pull and push (and delete; the
`reader` login pull only);
anonymous, pull of repositories under `public/` and nothing else (a token with no access, which the
registry then refuses with `insufficient_scope`, as Docker Hub does); a wrong login, `401`. Every
request is recorded (who, service, scopes) for the tests to check what the client asked for.
"""

from __future__ import annotations

import base64
import contextlib
import datetime
import json
import secrets
import subprocess
import threading
import time
from collections.abc import Iterator
from dataclasses import dataclass, field
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer
from pathlib import Path
from urllib.parse import parse_qs, urlsplit

import pytest
from cryptography import x509
from cryptography.hazmat.primitives import hashes, serialization
from cryptography.hazmat.primitives.asymmetric import ec
from cryptography.hazmat.primitives.asymmetric.utils import decode_dss_signature
from cryptography.x509.oid import NameOID

from tests.oci_support import BINARY, free_port, start_distribution, stop_process

USERNAME = "robot"
PASSWORD = "token-s3cret-password"
READER, READER_PASSWORD = "reader", "reader-s3cret-password"  # a login that may pull anything, push nothing
LOGINS = {USERNAME: PASSWORD, READER: READER_PASSWORD}
SERVICE = "cspm-test-registry"
ISSUER = "cspm-test-token-service"
PUBLIC = "public/"  # repositories anyone may pull
GRANTED = ("pull", "push", "delete")  # what a logged-in user may do anywhere


def _b64url(data: bytes) -> str:
    return base64.urlsafe_b64encode(data).rstrip(b"=").decode()


@dataclass
class Signer:
    """An EC P-256 key and its self-signed certificate (the registry's whole `rootcertbundle`)."""

    key: ec.EllipticCurvePrivateKey
    cert: x509.Certificate

    @classmethod
    def new(cls) -> Signer:
        key = ec.generate_private_key(ec.SECP256R1())
        name = x509.Name([x509.NameAttribute(NameOID.COMMON_NAME, ISSUER)])
        now = datetime.datetime.now(datetime.UTC)
        cert = (x509.CertificateBuilder().subject_name(name).issuer_name(name).public_key(key.public_key())
                .serial_number(x509.random_serial_number())
                .not_valid_before(now - datetime.timedelta(hours=1)).not_valid_after(now + datetime.timedelta(days=1))
                .add_extension(x509.BasicConstraints(ca=True, path_length=None), critical=True)
                .sign(key, hashes.SHA256()))
        return cls(key, cert)

    def pem(self) -> bytes:
        return self.cert.public_bytes(serialization.Encoding.PEM)

    def token(self, subject: str, access: list[dict], lifetime: int = 300) -> str:
        """A compact JWS (ES256) that distribution 2.8 accepts: the leaf certificate in `x5c`."""
        now = int(time.time())
        header = {"typ": "JWT", "alg": "ES256",
                  "x5c": [base64.b64encode(self.cert.public_bytes(serialization.Encoding.DER)).decode()]}
        claims = {"iss": ISSUER, "sub": subject, "aud": SERVICE, "exp": now + lifetime, "nbf": now - 5, "iat": now,
                  "jti": secrets.token_hex(8), "access": access}
        signing_input = ".".join(_b64url(json.dumps(part, separators=(",", ":")).encode()) for part in (header, claims))
        r, s = decode_dss_signature(self.key.sign(signing_input.encode(), ec.ECDSA(hashes.SHA256())))
        return f"{signing_input}.{_b64url(r.to_bytes(32, 'big') + s.to_bytes(32, 'big'))}"


@dataclass(frozen=True)
class Asked:
    """One request to the token service: who (None: anonymous; '!bad' a refused login), what."""

    user: str | None
    service: str
    scopes: tuple[str, ...]
    granted: tuple[str, ...]  # the scopes as granted, `repository:NAME:ACTIONS` ('' actions: nothing)


@dataclass
class TokenService:
    signer: Signer
    port: int = field(default_factory=free_port)
    asked: list[Asked] = field(default_factory=list)
    answer: bytes | None = None  # set: every /token request gets these bytes (200) instead of a token
    _server: ThreadingHTTPServer | None = None

    @property
    def realm(self) -> str:
        return f"http://127.0.0.1:{self.port}/token"

    def grant(self, user: str | None, scope: str) -> dict | None:
        """The access entry for one `repository:NAME:ACTIONS` scope under the policy (None: not a repository scope)."""
        kind, _, rest = scope.partition(":")
        name, _, actions = rest.rpartition(":")
        if kind != "repository" or not name:
            return None
        wanted = [a for a in actions.split(",") if a]
        if user == READER:
            allowed = [a for a in wanted if a == "pull"]
        elif user is not None:
            allowed = [a for a in wanted if a in GRANTED]
        else:
            allowed = [a for a in wanted if a == "pull" and name.startswith(PUBLIC)]
        return {"type": "repository", "name": name, "actions": allowed}

    def start(self) -> None:
        service = self

        class Handler(BaseHTTPRequestHandler):
            def do_GET(self) -> None:
                url = urlsplit(self.path)
                query = parse_qs(url.query)
                scopes = tuple(s for value in query.get("scope", []) for s in value.split(" ") if s)
                user = self._user()
                if service.answer is not None:
                    service.asked.append(Asked(user, query.get("service", [""])[0], scopes, ()))
                    self._raw(200, service.answer)
                    return
                if url.path != "/token" or user == "!bad":
                    service.asked.append(Asked(user, query.get("service", [""])[0], scopes, ()))
                    self._answer(401, {"errors": [{"code": "UNAUTHORIZED", "message": "bad login"}]},
                                 {"WWW-Authenticate": 'Basic realm="cspm-test-tokens"'})
                    return
                if query.get("service", [""])[0] != SERVICE:
                    service.asked.append(Asked(user, query.get("service", [""])[0], scopes, ()))
                    self._answer(400, {"errors": [{"code": "DENIED", "message": "unknown service"}]})
                    return
                access = [a for a in (service.grant(user, s) for s in scopes) if a is not None]
                granted = tuple(f"repository:{a['name']}:{','.join(a['actions'])}" for a in access)
                service.asked.append(Asked(user, SERVICE, scopes, granted))
                token = service.signer.token(user or "", access)
                self._answer(200, {"token": token, "access_token": token, "expires_in": 300,
                                   "issued_at": datetime.datetime.now(datetime.UTC).isoformat()})

            def _user(self) -> str | None:
                header = self.headers.get("Authorization", "")
                if not header:
                    return None
                scheme, _, value = header.partition(" ")
                try:
                    username, _, password = base64.b64decode(value).decode().partition(":")
                except ValueError:
                    return "!bad"
                return username if scheme.lower() == "basic" and LOGINS.get(username) == password else "!bad"

            def _answer(self, status: int, body: dict, headers: dict[str, str] | None = None) -> None:
                self._raw(status, json.dumps(body).encode(), headers)

            def _raw(self, status: int, data: bytes, headers: dict[str, str] | None = None) -> None:
                self.send_response(status)
                self.send_header("Content-Type", "application/json")
                self.send_header("Content-Length", str(len(data)))
                for name, value in (headers or {}).items():
                    self.send_header(name, value)
                self.end_headers()
                with contextlib.suppress(OSError):  # a client that stops reading a huge answer
                    self.wfile.write(data)

            def log_message(self, format: str, *args: object) -> None:  # quiet
                pass

        self._server = ThreadingHTTPServer(("127.0.0.1", self.port), Handler)
        self._server.daemon_threads = True
        threading.Thread(target=self._server.serve_forever, daemon=True).start()

    def stop(self) -> None:
        if self._server is not None:
            self._server.shutdown()
            self._server.server_close()
            self._server = None


@dataclass
class TokenRegistry:
    """docker-registry on loopback that trusts only tokens from `tokens`."""

    root: Path
    tokens: TokenService
    port: int = field(default_factory=free_port)
    process: subprocess.Popen[bytes] | None = None
    realm: str = ""  # the realm the registry names (default: the token service's)

    @property
    def host(self) -> str:
        return f"127.0.0.1:{self.port}"

    def url(self, prefix: str) -> str:
        return f"oci://{self.host}/{prefix}"

    def start(self) -> None:
        bundle = self.root / "token-root.pem"
        bundle.parent.mkdir(parents=True, exist_ok=True)
        bundle.write_bytes(self.tokens.signer.pem())
        self.process = start_distribution(self.root, self.port,
                                          f"token:\n    realm: {self.realm or self.tokens.realm}\n"
                                          f"    service: {SERVICE}\n    issuer: {ISSUER}\n"
                                          f"    rootcertbundle: {bundle}\n")

    def stop(self) -> None:
        stop_process(self.process)
        self.process = None


@contextlib.contextmanager
def token_registry(root: Path) -> Iterator[TokenRegistry]:
    """The token service and the registry that trusts it, both stopped at the end."""
    if not Path(BINARY).exists():
        pytest.skip("no `docker-registry` (Debian's CNCF distribution): .ci/setup installs it")
    tokens = TokenService(Signer.new())
    tokens.start()
    registry = TokenRegistry(root, tokens)
    try:
        registry.start()
        yield registry
    finally:
        registry.stop()
        tokens.stop()
