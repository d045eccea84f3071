"""The HTTP side: the static index layout (reads, no auth) and the write API (docs/registry.md).

Reads are rendered from the database and answered like a good static host would: strong ETags,
Last-Modified, 304s, gzip as its own representation. Everything in a path goes through cspm's own
name and digest checks before it touches the database or the disk, so no path escapes the data dir.
Writes check everything (token, framing, manifest, signature, module) before anything becomes visible;
a signature is verified with cspm's own `cspm.verify.signature.verify` against the namespace's
trusted publishers (`cspm-registry trust set`), the policy `config.json` publishes.

Every refused write (publish, yank, a token check) is logged at warning level, one line with the
reason code, the package and version when known, the token's id (never the token) and the client
address: an operator sees who tried what, not only what succeeded.

With shared stores (PostgreSQL, S3: replicas), a store that cannot be reached is 503 `unavailable`
with `Retry-After` for reads and writes alike (nothing of a write was committed); blob and bundle
routes redirect to the bucket (its public base, or a presigned URL) instead of sending the file.
"""

from __future__ import annotations

import asyncio
import gzip
import hashlib
import json
import logging
import re
import threading
from collections.abc import Awaitable, Callable
from dataclasses import dataclass
from email.utils import formatdate, parsedate_to_datetime
from typing import Any, TypeVar

from starlette.applications import Starlette
from starlette.concurrency import run_in_threadpool
from starlette.exceptions import HTTPException
from starlette.middleware import Middleware
from starlette.requests import ClientDisconnect, Request
from starlette.responses import FileResponse, JSONResponse, RedirectResponse, Response
from starlette.routing import Route
from starlette.types import ASGIApp, Receive, Scope, Send

from cspm import apppkg
from cspm.errors import CspmError
from cspm.formats import bounded_json
from cspm.formats import manifest as manifest_format
from cspm.formats.names import check_name, parse_version
from cspm.package_line import line_of
from cspm.protocol import api_errors, kinds, layout
from cspm.protocol import publish_body as framing
from cspm.protocol.api_errors import Code
from cspm.store import check_digest
from cspm.verify.signature import Rule, SignatureError, Signer, rule_for, verify
from cspm_registry import auth, limits
from cspm_registry.storage import (
    API,
    BUNDLE_SUFFIX,
    Exists,
    NotFound,
    Rendered,
    Storage,
    Token,
    Unavailable,
    bundle_name,
    published_now,
)

log = logging.getLogger("cspm_registry")

NO_CACHE = "no-cache"
IMMUTABLE = "public, max-age=31536000, immutable"
MAX_YANK_BODY = 64 * 1024
BUNDLE_RE = layout.BUNDLE_FILE_RE  # fullmatch: `$` would let a final newline by
UNPRINTABLE = re.compile(r"[\x00-\x20\x7f]")  # in no path the registry serves (see PathGuard)
MAX_RENDERINGS = 4096
UPLOAD_TIMEOUT_S = 30.0
T = TypeVar("T")
RETRY_AFTER_S = "2"
LOGGED = re.compile(r"[^A-Za-z0-9_.:%\[\]-]")  # a client address is logged with only these (one line, no spoofing)


class ApiError(Exception):
    """An answer of the write API: `{"error": {"code", "message"}}` with its code's status (api_errors)."""

    def __init__(self, code: Code, message: str, headers: dict[str, str] | None = None) -> None:
        super().__init__(message)
        self.status, self.code, self.message, self.headers = api_errors.status(code), code, message, headers or {}


def _error(code: Code, message: str, headers: dict[str, str] | None = None, status: int | None = None
           ) -> JSONResponse:
    return JSONResponse(api_errors.body(code, message), status or api_errors.status(code), headers=headers)


@dataclass
class Attempt:
    """What is known of one write request as it is checked, for the log line if it is refused."""

    action: str  # publish, yank, whoami
    client: str
    token: str = "none"  # "#3" once authenticated; "none" (no token sent), "unknown", "unchecked" (429)
    name: str | None = None  # set once the name passed check_name
    version: str | None = None  # and the version parse_version

    def refused(self, status: int, code: str, message: str) -> None:
        """One warning line: `refused ACTION: reason=CODE status=N package=NS/NAME version=V token=#ID client=ADDR
        message="..."` (the message JSON-quoted, so it stays one line whatever it quotes)."""
        package = f" package={self.name}" if self.name else ""
        version = f" version={self.version}" if self.version else ""
        log.warning("refused %s: reason=%s status=%d%s%s token=%s client=%s message=%s", self.action, code, status,
                    package, version, self.token, self.client, json.dumps(message[:500]))


@dataclass(frozen=True)
class Variant:
    """One representation of a file: identity or gzip, each with its own strong ETag."""

    body: bytes
    etag: str
    encoding: str | None
    modified: float | None


def _variants(body: bytes, modified: float | None) -> tuple[Variant, Variant]:
    digest = hashlib.sha256(body).hexdigest()
    return (Variant(body, f'"{digest}"', None, modified),
            Variant(gzip.compress(body, compresslevel=6, mtime=0), f'"{digest}-gzip"', "gzip", modified))


def accepts_gzip(header: str | None) -> bool:
    for item in (header or "").split(","):
        coding, _, params = item.strip().partition(";")
        if coding.strip().lower() in ("gzip", "x-gzip", "*"):
            quality = params.strip().lower()
            if quality.startswith("q="):
                try:
                    return float(quality[2:]) > 0
                except ValueError:
                    return False
            return True
    return False


def etag_matches(header: str, etag: str) -> bool:
    """If-None-Match uses the weak comparison: `W/"x"` matches `"x"`."""
    if header.strip() == "*":
        return True
    return any(tag.strip().removeprefix("W/") == etag for tag in header.split(","))


def not_modified(request: Request, etag: str, modified: float | None) -> bool:
    """If-None-Match decides when present; If-Modified-Since only without it (RFC 9110 13.2.2)."""
    if_none_match = request.headers.get("if-none-match")
    if if_none_match is not None:
        return etag_matches(if_none_match, etag)
    since = request.headers.get("if-modified-since")
    if since and modified is not None:
        try:
            return int(modified) <= parsedate_to_datetime(since).timestamp()
        except (TypeError, ValueError, IndexError):
            return False
    return False


class Registry:
    def __init__(self, storage: Storage, *, name: str, max_blob_bytes: int,
                 limiter: auth.FailureLimiter | None = None, upload_timeout: float = UPLOAD_TIMEOUT_S) -> None:
        self.storage = storage
        self.upload_timeout = upload_timeout
        self.limits = framing.Limits(blob=max_blob_bytes)
        self.limiter = limiter or auth.FailureLimiter()
        self.name = name
        self._renderings: dict[str, tuple[Variant, Variant] | None] = {}
        self._generation = -1
        self._lock = threading.Lock()

    # -- reads

    async def _call(self, function: Callable[..., T], *args: Any) -> T:
        """A read's storage call: inline on the local stores (SQLite answers in microseconds), in the thread
        pool on shared ones (a database or bucket across the network must not stall the event loop)."""
        if self.storage.data is not None:
            return function(*args)
        return await run_in_threadpool(function, *args)

    def _rendered(self, key: str, render: Any) -> tuple[Variant, Variant] | None:
        """Renderings (and their gzip) are kept until the next publish or yank changes the generation."""
        generation = self.storage.generation()
        with self._lock:
            if generation != self._generation or len(self._renderings) > MAX_RENDERINGS:
                self._renderings, self._generation = {}, generation
            if key in self._renderings:
                return self._renderings[key]
        found = render()
        value = None if found is None else _variants(found.body, found.modified)
        with self._lock:
            if generation == self._generation:
                self._renderings[key] = value
        return value

    def _serve(self, request: Request, variants: tuple[Variant, Variant] | None, media_type: str) -> Response:
        if variants is None:
            return _error(Code.NOT_FOUND, f"{request.url.path} does not exist")
        variant = variants[1] if accepts_gzip(request.headers.get("accept-encoding")) else variants[0]
        headers = {"ETag": variant.etag, "Cache-Control": NO_CACHE, "Vary": "Accept-Encoding"}
        if variant.modified is not None:
            headers["Last-Modified"] = formatdate(int(variant.modified), usegmt=True)
        if not_modified(request, variant.etag, variant.modified):
            return Response(status_code=304, headers=headers)
        if variant.encoding:
            headers["Content-Encoding"] = variant.encoding
        return Response(variant.body, headers=headers, media_type=media_type)

    async def config_json(self, request: Request) -> Response:
        """Rendered again after a trust change (it bumps the generation, as publishes do)."""
        config = await self._call(self._rendered, layout.CONFIG_FILE,
                                  lambda: Rendered(self.storage.config_file(self.name), None))
        return self._serve(request, config, "application/json")

    async def index_file(self, request: Request) -> Response:
        try:
            path = layout.index_path(f"{request.path_params['namespace']}/{request.path_params['name']}")
        except CspmError:
            return _error(Code.NOT_FOUND, "no such package")
        name = path.split("/", 1)[1]
        rendered = await self._call(self._rendered, path, lambda: self.storage.index_file(name))
        return self._serve(request, rendered, "text/plain")

    async def names(self, request: Request) -> Response:
        rendered = await self._call(self._rendered, layout.NAMES_FILE, self.storage.names_file)
        return self._serve(request, rendered, "text/plain")

    async def blob(self, request: Request) -> Response:
        hexdigest = request.path_params["hex"]
        try:
            check_digest(f"sha256:{hexdigest}")
        except CspmError:
            return _error(Code.NOT_FOUND, "no such blob")
        path = await self._call(self.storage.blob_path, hexdigest)
        if path is None:
            return _error(Code.NOT_FOUND, "no such blob")
        if isinstance(path, str):
            return _redirect(path)
        headers = {"ETag": f'"{hexdigest}"', "Cache-Control": IMMUTABLE}
        if etag_matches(request.headers.get("if-none-match") or "", headers["ETag"]):
            return Response(status_code=304, headers=headers)
        return FileResponse(path, headers=headers, media_type="application/octet-stream")

    async def bundle(self, request: Request) -> Response:
        filename = request.path_params["file"]
        path = await self._call(self.storage.bundle_path, filename) if BUNDLE_RE.fullmatch(filename) else None
        if path is None:
            return _error(Code.NOT_FOUND, "no such bundle")
        if isinstance(path, str):
            return _redirect(path)
        headers = {"ETag": f'"{filename.split(".", 1)[0]}"', "Cache-Control": IMMUTABLE}  # named by its sha256
        if etag_matches(request.headers.get("if-none-match") or "", headers["ETag"]):
            return Response(status_code=304, headers=headers)
        return FileResponse(path, headers=headers, media_type="application/json")

    # -- writes

    async def _audited(self, request: Request, action: str,
                       handle: Callable[[Request, Attempt], Awaitable[Response]]) -> Response:
        """Run a write handler; any refusal it raises is logged (`Attempt.refused`) and answered."""
        client = request.client.host if request.client else "unknown"
        attempt = Attempt(action, LOGGED.sub("?", client)[:100])
        try:
            response = await handle(request, attempt)
        except ApiError as exc:
            attempt.refused(exc.status, exc.code, exc.message)
            raise
        if response.status_code >= 400:
            attempt.refused(response.status_code, "disconnected", "the client went away before its body arrived")
        return response

    async def _authorize(self, request: Request, attempt: Attempt) -> Token:
        client = request.client.host if request.client else "unknown"
        wait = self.limiter.retry_after(client)
        if wait:
            attempt.token = "unchecked"
            raise ApiError(Code.RATE_LIMITED, f"too many failed authentications from this address: try again "
                                              f"in {wait} s", {"Retry-After": str(wait)})
        presented = auth.bearer(request.headers.get("authorization"))
        token = await run_in_threadpool(auth.authenticate, self.storage, presented)
        if token is None:
            self.limiter.failed(client)
            attempt.token = "unknown" if presented else "none"
            message = ("this registry does not know that token: check it, or ask the registry's operator for one"
                       if presented else f"{attempt.action} needs a token: send `Authorization: Bearer <token>`")
            raise ApiError(Code.UNAUTHORIZED, message, {"WWW-Authenticate": "Bearer"})
        attempt.token = f"#{token.id}"
        return token

    async def whoami(self, request: Request) -> Response:
        return await self._audited(request, "whoami", self._whoami)

    async def _whoami(self, request: Request, attempt: Attempt) -> Response:
        """Who a token is (`cspm login` checks a token here before saving it): its id and scope, never itself."""
        token = await self._authorize(request, attempt)
        log.info("token #%d checked (whoami) from %s", token.id, attempt.client)
        return JSONResponse({"id": token.id, "namespaces": sorted(token.namespaces), "publish": token.publish,
                             "admin": token.admin})

    async def _body(self, read: Awaitable[T]) -> T:
        """A request body must arrive within `upload_timeout` seconds in all: a client that trickles
        it (slowloris) would otherwise hold a connection and its buffer for as long as it likes."""
        try:
            async with asyncio.timeout(self.upload_timeout):
                return await read
        except TimeoutError:
            raise ApiError(Code.TIMEOUT, f"the request body did not arrive within {self.upload_timeout:g} s: "
                                         f"retry over a faster connection, or ask the registry's operator to "
                                         f"raise --upload-timeout", {"Connection": "close"}) from None

    async def publish(self, request: Request) -> Response:
        return await self._audited(request, "publish", self._publish_request)

    async def _publish_request(self, request: Request, attempt: Attempt) -> Response:
        token = await self._authorize(request, attempt)
        try:
            body = await self._body(framing.read(request.stream(), self.limits, request.headers.get("content-length")))
        except framing.FramingError as exc:
            raise ApiError(Code.TOO_LARGE if exc.status == 413 else Code.BAD_REQUEST, exc.message) from None
        except ClientDisconnect:
            return Response(status_code=400)
        answer = await run_in_threadpool(self._publish, token, body, attempt)
        return JSONResponse(answer, 201)

    def _publish(self, token: Token, body: framing.PublishBody, attempt: Attempt) -> dict[str, Any]:
        """Scope, manifest, signature, module, then storage: nothing is written before all of them pass."""
        data = _json(body.json, framing.MAX_JSON, "the JSON part (1)")
        if not isinstance(data, dict) or not isinstance(data.get("manifest"), dict):
            raise ApiError(Code.BAD_REQUEST, 'the JSON part (1) must be an object {"manifest": {...}}')
        kind = _signature_kind(data.get("signature"), body.bundle)
        raw = data["manifest"]
        name = attempt.name = _checked(lambda: check_name(raw.get("name")))
        self._check_scope(token, name)
        manifest = _checked(lambda: manifest_format.from_dict(raw, "plugin.yaml"))
        attempt.version = str(manifest.version)
        if raw.get("publish") is False:
            raise ApiError(Code.INVALID, f"{name} is marked `publish: false` in its plugin.yaml")
        if not body.blob:
            raise ApiError(Code.INVALID, "the module part (2) is empty")
        version = str(manifest.version)
        if self.storage.exists(name, version):
            raise _exists(name, version)
        if kind is not None and kind not in BUNDLE_SUFFIX:
            raise ApiError(Code.SIGNATURE, f"unknown signature kind {kind[:100]!r} (this registry accepts "
                                           f"{' and '.join(repr(k) for k in BUNDLE_SUFFIX)})")
        if kind is not None:  # JSON, read within cspm's limits before any verifier sees it
            try:
                bounded_json.loads(body.bundle, max_bytes=limits.MAX_BUNDLE)
            except bounded_json.JsonRejected as exc:
                shown = "a Sigstore bundle" if kind == "sigstore" else "a DSSE envelope"
                raise ApiError(Code.SIGNATURE, f"{name} {version}: the signature is not {shown} ({exc})") from None
        # the signature before the module: nothing from an untrusted publisher is even parsed
        digest = "sha256:" + hashlib.sha256(body.blob).hexdigest()
        what = f"{name} {version}"
        namespace = name.split("/")[0]
        policy = self.storage.policy(namespace)

        def check_signature(policy: dict[str, Any]) -> Signer | None:
            rule = rule_for(name, policy)
            try:
                return verify(body.bundle or None, kind, name=name, digest=digest, what=what, rule=rule)
            except SignatureError as exc:
                raise ApiError(Code.SIGNATURE, exc.message + _signature_hint(namespace, kind, rule)) from None

        signer = check_signature(policy)
        signature = None if signer is None or kind is None else {
            "kind": kind, "bundle": bundle_name(body.bundle, kind), "issuer": signer.issuer,
            "identity": signer.identity}
        published = published_now()
        _client_limit(lambda: limits.check_module(manifest.kind, len(body.blob), what))
        if kinds.of(manifest.kind).payload == "app" and len(body.blob) <= apppkg.MAX_BUNDLE:
            try:  # (a larger bundle apppkg refuses for its size, unread)
                bounded_json.loads(body.blob, max_bytes=apppkg.MAX_BUNDLE)
            except bounded_json.JsonRejected as exc:
                raise ApiError(Code.INVALID, f"{what}: the app package is not JSON cspm reads ({exc})") from None
        line = _checked(lambda: line_of(manifest, body.blob, published=published))
        line["signature"] = signature
        _client_limit(lambda: limits.check_line(line, what))  # early; the files' limits are checked when storing
        try:
            self.storage.publish(line, body.blob, token, bundle=body.bundle, policy=policy,
                                 recheck=check_signature)  # the policy may change while this one was checked
        except Exists:
            raise _exists(name, version) from None
        except limits.ClientLimit as exc:
            raise ApiError(Code.CLIENT_LIMIT, exc.message) from None
        log.info("published %s %s (%s, %d bytes, %s) with token #%d", name, version, line["digest"], line["size"],
                 f"signed by {signer}" if signer else "unsigned", token.id)
        return {"name": name, "version": version, "digest": line["digest"], "line": line}

    async def yank(self, request: Request) -> Response:
        return await self._audited(request, "yank", self._yank_request)

    async def _yank_request(self, request: Request, attempt: Attempt) -> Response:
        token = await self._authorize(request, attempt)

        async def read() -> bytes:
            chunks = bytearray()
            async for chunk in request.stream():
                chunks += chunk
                if len(chunks) > MAX_YANK_BODY:
                    raise ApiError(Code.TOO_LARGE, f"a yank request is at most {MAX_YANK_BODY} bytes")
            return bytes(chunks)

        try:
            body = await self._body(read())
        except ClientDisconnect:
            return Response(status_code=400)
        answer = await run_in_threadpool(self._yank, token, body, attempt)
        return JSONResponse(answer, 200)

    def _yank(self, token: Token, body: bytes, attempt: Attempt) -> dict[str, Any]:
        data = _json(body, MAX_YANK_BODY, "the body")
        if not isinstance(data, dict) or not {"name", "version", "yanked"} <= set(data):
            raise ApiError(Code.BAD_REQUEST, 'expected {"name": "ns/name", "version": "1.2.0", '
                                             '"yanked": true | false | "reason"}')
        name = attempt.name = _checked(lambda: check_name(data["name"]))
        version = attempt.version = str(_checked(lambda: parse_version(data["version"])))
        yanked = data["yanked"]
        if not (isinstance(yanked, bool) or (isinstance(yanked, str) and 0 < len(yanked) <= 1024)):
            raise ApiError(Code.INVALID, "`yanked` is true, false, or a reason (1-1024 characters)")
        self._check_scope(token, name, "yank")
        try:
            line = self.storage.set_yanked(name, version, yanked)
        except NotFound:
            raise ApiError(Code.NOT_FOUND, f"{name} {version} is not published here") from None
        except limits.ClientLimit as exc:
            raise ApiError(Code.CLIENT_LIMIT, exc.message) from None
        log.info("%s %s yanked=%r by token #%d", name, line["version"], yanked, token.id)
        return {"name": name, "version": line["version"], "yanked": line["yanked"]}

    @staticmethod
    def _check_scope(token: Token, name: str, action: str = "publish") -> None:
        namespace = name.split("/")[0]
        if token.may_publish(namespace):
            return
        if not (token.publish or token.admin):
            raise ApiError(Code.FORBIDDEN, f"this token may not {action}: ask for one created with --publish")
        raise ApiError(Code.FORBIDDEN, f"this token may not {action} in namespace {namespace!r} (it may in: "
                                       f"{', '.join(sorted(token.namespaces)) or 'none'})")


def _json(data: bytes, max_bytes: int, what: str) -> Any:
    """A JSON body, read as untrusted: past a limit (depth, digits, size) or not text is 400, never a 500.

    A lone surrogate (`"\\ud800"`) parses but is not Unicode text: it could not be written as UTF-8 (an
    index line, the database), so it is refused here too.
    """
    try:
        value = bounded_json.loads(data, max_bytes=max_bytes)
        json.dumps(value, ensure_ascii=False).encode()
    except bounded_json.JsonRejected as exc:
        raise ApiError(Code.BAD_REQUEST, f"{what} is not JSON this registry reads: {exc}") from None
    except UnicodeEncodeError:
        raise ApiError(Code.BAD_REQUEST, f"{what} holds a string that is not Unicode text (a lone surrogate "
                                         f"escape such as \\ud800)") from None
    return value


def _client_limit(check: Any) -> Any:
    """Run one of `limits`' checks: what cspm clients would refuse to read is 400 `client_limit`."""
    try:
        return check()
    except limits.ClientLimit as exc:
        raise ApiError(Code.CLIENT_LIMIT, exc.message) from None


def _checked(check: Any) -> Any:
    """Run one of cspm's checks; its error (which says what is wrong) becomes a 422."""
    try:
        return check()
    except CspmError as exc:
        message = f"{exc.message} ({exc.hint})" if exc.hint else exc.message
        raise ApiError(Code.INVALID, message) from None


def _signature_kind(signature: Any, bundle: bytes) -> str | None:
    """Part 1's `signature: {"kind": ...}` is there exactly when part 3 (the bundle) is not empty."""
    if signature is None:
        if bundle:
            raise ApiError(Code.BAD_REQUEST, 'part 3 carries a signature bundle, but the JSON part (1) has no '
                                             '"signature": {"kind": "sigstore" | "dsse-ed25519"}')
        return None
    if not isinstance(signature, dict) or not isinstance(signature.get("kind"), str):
        raise ApiError(Code.BAD_REQUEST, 'the JSON part (1): "signature" must be {"kind": "sigstore" | '
                                         '"dsse-ed25519"}')
    if not bundle:
        raise ApiError(Code.BAD_REQUEST, f"the JSON part (1) names a {signature['kind'][:100]!r} signature, but "
                                         f"the signature bundle part (3) is empty")
    return str(signature["kind"])


def _signature_hint(namespace: str, kind: str | None, rule: Rule | None) -> str:
    """What to do, from the registry's side (cspm's own hints speak of the user's config)."""
    if kind == "dsse-ed25519" and (rule is None or not rule.keys):
        return (f" (this registry trusts no key for namespace {namespace!r}: its operator adds the publisher's "
                f"public key with `cspm-registry trust set --namespace {namespace} --key ed25519:<hex>`)")
    return ""


def _exists(name: str, version: str) -> ApiError:
    return ApiError(Code.EXISTS, f"{name} {version} is already published, and published versions are immutable: "
                                 f"bump the version in plugin.yaml and publish again")


def _redirect(url: str) -> Response:
    """A blob or bundle in a bucket: to its public URL (cacheable for good), or a presigned one (which expires)."""
    cache = IMMUTABLE if "X-Amz-Signature=" not in url else "no-store"
    return RedirectResponse(url, 302, headers={"Cache-Control": cache})


async def _unavailable(request: Request, exc: Exception) -> Response:
    """503: the database or the bucket failed; nothing of a write was committed, so a client may retry."""
    log.error("503 on %s %s: %s", request.method, request.url.path, exc)
    return _error(Code.UNAVAILABLE, f"{exc} (nothing was changed: retry later)", {"Retry-After": RETRY_AFTER_S})


async def _api_error(request: Request, exc: Exception) -> Response:
    assert isinstance(exc, ApiError)
    return _error(exc.code, exc.message, exc.headers)


async def _http_error(request: Request, exc: Exception) -> Response:
    assert isinstance(exc, HTTPException)
    code = {404: Code.NOT_FOUND, 405: Code.METHOD_NOT_ALLOWED}.get(exc.status_code, Code.BAD_REQUEST)
    return _error(code, str(exc.detail), dict(exc.headers or {}), status=exc.status_code)


async def _internal_error(request: Request, exc: Exception) -> Response:
    log.error("internal error on %s %s: %s", request.method, request.url.path, type(exc).__name__)
    return _error(Code.INTERNAL, "the registry failed on this request; its log says why")


class PathGuard:
    """404 for a path with a space or control character, before any route sees it: Starlette's route
    patterns end in `$`, which matches before a final newline, so `/names%0A` would be `/names`."""

    def __init__(self, app: ASGIApp) -> None:
        self.app = app

    async def __call__(self, scope: Scope, receive: Receive, send: Send) -> None:
        if scope["type"] == "http" and UNPRINTABLE.search(scope["path"]):
            await _error(Code.NOT_FOUND, "no such path (it has a space or control character)")(scope, receive, send)
            return
        await self.app(scope, receive, send)


def create_app(storage: Storage, *, name: str, max_blob_bytes: int,
               limiter: auth.FailureLimiter | None = None, upload_timeout: float = UPLOAD_TIMEOUT_S) -> Starlette:
    registry = Registry(storage, name=name, max_blob_bytes=max_blob_bytes, limiter=limiter,
                        upload_timeout=upload_timeout)
    routes = [
        Route(f"/{layout.CONFIG_FILE}", registry.config_json, methods=["GET"]),
        Route(f"/{layout.INDEX_DIR}/{{namespace}}/{{name}}", registry.index_file, methods=["GET"]),
        Route(f"/{layout.NAMES_FILE}", registry.names, methods=["GET"]),
        Route(f"/{layout.BLOBS_DIR}/{{hex}}", registry.blob, methods=["GET"]),
        Route(f"/{layout.BUNDLES_DIR}/{{file}}", registry.bundle, methods=["GET"]),
        Route(f"/{API}/publish", registry.publish, methods=["PUT"]),
        Route(f"/{API}/yank", registry.yank, methods=["POST"]),
        Route(f"/{API}/whoami", registry.whoami, methods=["GET"]),
    ]
    handlers = {ApiError: _api_error, HTTPException: _http_error, Unavailable: _unavailable, Exception: _internal_error}
    return Starlette(routes=routes, exception_handlers=handlers,  # type: ignore[arg-type]
                     middleware=[Middleware(PathGuard)])
