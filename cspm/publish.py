"""`cspm publish`, `cspm yank` and `cspm login`: pack, check locally, upload to a registry's write API.

Everything the server will check is checked here first (manifest, module interface, app lock, and
for --dry-run whether the version is already in the registry's index), so a mistake is reported
before any upload, with the same words. `cspm login` asks the registry who a token is before it is
saved. The wire format is docs/registry.md.
"""

from __future__ import annotations

from collections.abc import Callable
from dataclasses import dataclass
from pathlib import Path
from typing import Any
from urllib.parse import urljoin

import httpx
from packaging.version import Version

from cspm import apppkg, credentials, http_client, oci_publish
from cspm.errors import CannotCheck, CspmError, PublishError, Refused
from cspm.formats import app as app_format
from cspm.formats import bounded_json
from cspm.formats import lock as lock_format
from cspm.formats import manifest as manifest_format
from cspm.formats.index_line import parse_file
from cspm.formats.manifest import Manifest
from cspm.formats.names import parse_requirement, parse_version
from cspm.formats.userconfig import Registry, UserConfig
from cspm.index.source import IndexSource
from cspm.install import stale_reasons
from cspm.package_line import line_of
from cspm.protocol import api_errors, kinds
from cspm.verify import signature

TIMEOUT = httpx.Timeout(120.0, connect=10.0)
MAX_ANSWER = 1 << 20  # a publish answer is one index line (at most 256 KiB) and a few fields
MAX_REDIRECTS = 5
REDIRECTS = (301, 302, 303, 307, 308)


@dataclass
class Package:
    manifest: Manifest
    blob: bytes
    line: dict[str, Any]  # what the registry should end up with (but `published` and `signature`)
    bundle: bytes = b""
    signature_kind: str | None = None
    signer: str | None = None  # who signed, for messages


def sign(package: Package, *, key: Path | None = None, identity_token: str | None = None,
         interactive: bool = False) -> None:
    """Sign the blob's digest: with an ed25519 key file, or keyless through Sigstore.

    The identity token comes from --identity-token, the CI's ambient credential (GitHub Actions and
    the others sigstore detects), or, at a terminal, the browser flow of the trust config's issuer.
    """
    name, version, digest = package.line["name"], package.line["version"], package.line["digest"]
    if key is not None:
        try:
            private = key.read_bytes()
        except OSError as exc:
            raise PublishError(f"cannot read the key {key}: {exc.strerror or exc}") from None
        package.bundle, public = signature.sign_keyed(private, name, version, digest)
        package.signature_kind, package.signer = "dsse-ed25519", f"key {signature.key_id(public)}"
        return
    token = identity_token or _ambient_token()
    if token is None and interactive:
        from sigstore.oidc import Issuer

        token = str(Issuer(signature.trust_config().signing_config.get_oidc_url()).identity_token())
    if token is None:
        raise PublishError("cannot sign: there is no identity to sign with",
                           hint="in CI, allow OIDC tokens (GitHub: `permissions: id-token: write`); else pass "
                                "--identity-token, or --key FILE (`cspm keygen`), or --no-sign")
    try:
        package.bundle = signature.sign_sigstore(package.blob, token)
    except Exception as exc:  # sigstore's errors (token, CA, log) all end the publish the same way
        cause = exc.__cause__ or exc.__context__
        detail = str(exc) or type(exc).__name__
        if cause is not None and str(cause):
            detail += f" ({cause})"
        raise PublishError(f"signing {name} {version} failed: {detail}"[:2000]) from None
    package.signature_kind = "sigstore"


def _ambient_token() -> str | None:
    from sigstore.oidc import IdentityError, detect_credential

    try:
        return detect_credential()
    except IdentityError:
        return None


def pack(folder: Path) -> Package:
    """The manifest and blob of a plug-in or app folder, checked as the registry will check them."""
    manifest = manifest_format.load(folder)
    if not manifest.raw.get("publish", True):
        raise PublishError(f"{folder}: plugin.yaml says `publish: false`")
    if kinds.of(manifest.kind).payload == "app":
        app = app_format.load(manifest.wasm)
        lock_file = lock_format.lock_path(manifest.wasm)
        if not lock_file.exists():
            raise PublishError(f"{manifest.name}: {lock_file} does not exist", hint=f"run `cspm lock {manifest.wasm}`")
        lock = lock_format.load(lock_file)
        reasons = stale_reasons(app, lock)
        if reasons:
            raise PublishError(f"{lock_file} is out of date: " + "; ".join(reasons),
                               hint=f"run `cspm lock {manifest.wasm}`")
        blob = apppkg.pack(app, lock)
        return Package(manifest, blob, line_of(manifest, blob))
    try:
        blob = manifest.wasm.read_bytes()
    except FileNotFoundError:
        hint = ("fix `file:` in plugin.yaml" if not kinds.is_module(manifest.kind)
                else f"build it first ({folder / 'build.sh'})")
        raise PublishError(f"{manifest.name}: {manifest.wasm} does not exist", hint=hint) from None
    return Package(manifest, blob, line_of(manifest, blob))


def frame(manifest: dict[str, Any], blob: bytes, bundle: bytes = b"", kind: str | None = None) -> bytes:
    """The publish body (cspm.protocol.publish_body, docs/registry.md): the server parses it with the same module."""
    from cspm.protocol import publish_body

    return publish_body.encode(publish_body.head(manifest, kind if bundle else None), blob, bundle)


def pick_registry(config: UserConfig, name: str, chosen: str | None) -> Registry:
    """--registry (a configured name, or an `oci://` URL), else the one registry bound to the package's namespace."""
    if chosen and chosen.startswith(oci_publish.OCI_URLS):
        url = chosen.rstrip("/")
        same = next((r for r in config.registries if r.url == url), None)
        return same or Registry(oci_publish.ADHOC_NAME, url)  # its login: CSPM_TOKEN_OCI, or Docker's config
    if chosen:
        registry = config.registry(chosen)
        if registry is None:
            known = ", ".join(r.name for r in config.registries) or "none"
            raise PublishError(f"there is no registry called {chosen!r} (configured: {known})",
                               hint=f"add it with `cspm registry add {chosen} URL`")
        return registry
    namespace = name.split("/")[0]
    bound = [r for r in config.registries if namespace in r.namespaces]
    if len(bound) == 1:
        return bound[0]
    raise PublishError(f"which registry should {name} go to?",
                       hint="pass --registry NAME (`cspm registry list` shows them)")


def api_url(registry: Registry) -> str:
    """The write API's base URL, from `api` of the registry's config.json: on the registry's own origin.

    `api` is a document the registry serves; if it could name another host, whoever controls
    config.json (or a mirror of it) would receive the token. Another origin is refused, naming both.
    """
    if registry.url.startswith("file:"):
        raise PublishError(f"registry {registry.name} is a folder; publish to it with `cspm index build`")
    source = IndexSource(registry)
    try:
        api = source.config().get("api")
    finally:
        if source._client is not None:
            source._client.close()
    if not api or not isinstance(api, str):
        raise PublishError(f"registry {registry.name} has no write API (its config.json says `api: null`): it is "
                           f"a static copy", hint="publish to the registry server it was exported from")
    url = urljoin(registry.url.rstrip("/") + "/", api.rstrip("/") + "/")
    credentials.check_origin(registry, url, "its config.json names the write API")
    return url


def require_token(registry: Registry) -> str:
    token = credentials.token_for(registry.name)
    if not token:
        raise PublishError(f"no token for registry {registry.name}",
                           hint=f"run `cspm login {registry.name}` (or set CSPM_TOKEN)")
    return token


def _send(registry: Registry, method: str, url: str, *, token: str | None = None, **kwargs: Any) -> dict[str, Any]:
    """One authenticated request. Redirects are followed by hand, and only 307/308 ones (which keep the
    method and body) on the registry's own origin: `credentials.authorization` decides every hop.
    `token`: one not saved yet (login); by default the registry's own."""
    if token is None:
        require_token(registry)
    came_from = "the write API is at"
    with http_client.build(timeout=TIMEOUT, follow_redirects=False) as client:
        for _ in range(MAX_REDIRECTS + 1):
            headers = credentials.authorization(registry, url, came_from, token)
            status, location, retry_after, body = _retried(client, registry, method, url, headers, kwargs)
            if status not in REDIRECTS:
                return _answer(registry, status, retry_after, body)
            if location is None or status not in (307, 308):
                raise PublishError(f"registry {registry.name} answered HTTP {status} (a redirect"
                                   f"{f' to {location[:300]}' if location else ''}) to {method} {url}; cspm "
                                   f"repeats a write only for a 307 or 308 redirect on the same origin",
                                   hint="fix the registry's URL (`cspm registry add NAME URL`)")
            url, came_from = location, f"its write API redirected {method} to"
    raise PublishError(f"registry {registry.name} redirected {method} more than {MAX_REDIRECTS} times",
                       hint="fix the registry's URL (`cspm registry add NAME URL`)")


def _exchange(client: httpx.Client, registry: Registry, method: str, url: str, headers: dict[str, str],
              kwargs: dict[str, Any]) -> tuple[int, str | None, str | None, bytes]:
    """Status, absolute redirect target, Retry-After and (at most MAX_ANSWER bytes of) the body."""
    try:
        with client.stream(method, url, headers=headers, **kwargs) as response:
            location = response.headers.get("Location")
            target = str(response.url.join(location)) if location and response.is_redirect else None
            body = bytearray()
            for chunk in response.iter_bytes():
                body += chunk
                if len(body) > MAX_ANSWER:
                    raise PublishError(f"registry {registry.name} answered more than {MAX_ANSWER:,} bytes to "
                                       f"{method} {url}", hint="tell the registry's operator")
            return response.status_code, target, response.headers.get("Retry-After"), bytes(body)
    except (httpx.ConnectError, httpx.ConnectTimeout) as exc:  # nothing was sent: safe to ask again
        raise http_client.Retryable(str(exc) or type(exc).__name__, sent=False) from None
    except httpx.TransportError as exc:
        raise PublishError(f"registry {registry.name} cannot be reached: {exc or type(exc).__name__}",
                           hint="check the URL (`cspm registry list`) and that the server runs") from None


class _Unprocessed(http_client.Retryable):
    """An answer saying the registry did not act on the request (429, 503): the write may be repeated."""

    def __init__(self, answer: tuple[int, str | None, str | None, bytes]) -> None:
        super().__init__(f"HTTP {answer[0]}", status=answer[0], retry_after=answer[2])
        self.answer = answer


def _retried(client: httpx.Client, registry: Registry, method: str, url: str, headers: dict[str, str],
             kwargs: dict[str, Any]) -> tuple[int, str | None, str | None, bytes]:
    """`_exchange` under `http_client.RETRY` as a write: asked again only when the registry cannot have
    acted on it (the connection was refused, or it answered 429 or 503); the last answer is returned."""
    def attempt() -> tuple[int, str | None, str | None, bytes]:
        answer = _exchange(client, registry, method, url, headers, kwargs)
        if http_client.policy().retries_status(answer[0], idempotent=False):
            raise _Unprocessed(answer)
        return answer

    try:
        return http_client.policy().run(attempt, idempotent=False)
    except http_client.GaveUp as exc:
        if isinstance(exc.last, _Unprocessed):
            return exc.last.answer
        raise PublishError(f"registry {registry.name} cannot be reached: {exc.last.reason} ({exc.why})",
                           hint="check the URL (`cspm registry list`) and that the server runs") from None
    except (httpx.DecodingError, httpx.InvalidURL) as exc:
        raise PublishError(f"registry {registry.name} sent an answer that cannot be read ({exc})",
                           hint="tell the registry's operator") from None


def _answer(registry: Registry, status: int, retry_after: str | None, body: bytes) -> dict[str, Any]:
    """The JSON object of a 2xx answer, or the error it carries, as a PublishError naming the registry."""
    try:
        data = bounded_json.loads(body, max_bytes=MAX_ANSWER) if body else None
        problem = None
    except bounded_json.JsonRejected as exc:
        data, problem = None, str(exc)
    if status >= 400:
        error = data.get("error") if isinstance(data, dict) else None
        code = error.get("code") if isinstance(error, dict) else None
        message = error.get("message") if isinstance(error, dict) else None
        said = message if isinstance(message, str) and message else f"HTTP {status}"
        text = f"registry {registry.name} refused: {said}"
        if status == 429 and retry_after:
            text += f" (retry after {retry_after[:20]} s)"
        raise Refused(text[:2000], api_errors.hint(code, registry.name), status,  # the code's hint (protocol)
                      code if isinstance(code, str) else None)
    if not isinstance(data, dict):
        found = problem or ("no body" if not body else "not a JSON object")
        raise PublishError(f"registry {registry.name} answered HTTP {status} with something that is not a JSON "
                           f"object ({found})", hint="tell the registry's operator")
    return data


def publish(package: Package, registry: Registry) -> dict[str, Any]:
    body = frame(package.manifest.raw, package.blob, package.bundle, package.signature_kind)
    answer = _send(registry, "PUT", urljoin(api_url(registry), "publish"), content=body)
    if answer.get("digest") != package.line["digest"]:
        raise PublishError(f"registry {registry.name} recorded digest {str(answer.get('digest'))[:80]!r}, but the "
                           f"upload was {package.line['digest']}", hint="tell the registry's operator")
    line = answer.get("line")
    answer["line"] = line if isinstance(line, dict) else {}
    return answer


def check_unpublished(registry: Registry, name: str, version: str, warn: Callable[[str], None]) -> None:
    """What a publish of a version the registry already has would get (409 `exists`), for --dry-run: the
    registry's index for `name` is read (versions are immutable, so one listed there stays)."""
    source = IndexSource(registry, warn=warn)
    try:
        fetched = source.read(source.index_path(name))
    finally:
        if source._client is not None:
            source._client.close()
    if fetched.body is None:
        return
    entries, _ = parse_file(fetched.body, name, f"registry {registry.name}: {source.index_path(name)}")
    wanted = parse_version(version)
    if any(entry.version == wanted for entry in entries):
        raise PublishError(f"{name} {version} is already published in registry {registry.name} (its index lists "
                           f"it; this dry run uploaded nothing)", hint=api_errors.CODES[api_errors.Code.EXISTS].hint)


def check_login(registry: Registry, token: str) -> dict[str, Any]:
    """Who `token` is to the registry (`GET api/v1/whoami`: id, namespaces, publish, admin), before it is saved.

    A token the registry refuses is a `Refused` in the registry's words. A registry that cannot be
    asked (a folder, a static copy, unreachable, a server without `whoami`) is `CannotCheck`, whose
    hint names --no-check: saving a token nobody checked is the user's explicit choice.
    """
    unchecked = f"or save the token without checking it: `cspm login {registry.name} --no-check`"
    if registry.url.startswith("file:"):
        raise CannotCheck(f"cannot check the token with registry {registry.name}: it is a folder, with no write API "
                          f"to ask", hint=f"a folder registry needs no token; {unchecked}")
    try:
        url = api_url(registry)
    except credentials.TokenOriginError:
        raise
    except CspmError as exc:  # a folder or static registry, or config.json cannot be read
        raise CannotCheck(f"cannot check the token with registry {registry.name}: {exc.message}",
                          hint=f"{exc.hint}; {unchecked}" if exc.hint else unchecked) from None
    try:
        answer = _send(registry, "GET", urljoin(url, "whoami"), token=token)
    except Refused as exc:
        if exc.status == 401:  # HINTS' "log in with `cspm login`" would send the user round in a circle
            raise Refused(exc.message, "nothing was saved; check that the token was copied whole", exc.status,
                          exc.api_code) from None
        if exc.status in (403, 429):
            raise
        if exc.status in (404, 405):
            raise CannotCheck(f"cannot check the token with registry {registry.name}: its write API has no `whoami` "
                              f"(HTTP {exc.status} to GET {urljoin(url, 'whoami')}: a cspm-registry older than "
                              f"`whoami`, or another server)", hint=unchecked) from None
        raise CannotCheck(f"cannot check the token with registry {registry.name}: {exc.message}",
                          hint=f"{exc.hint}; {unchecked}" if exc.hint else unchecked) from None
    except PublishError as exc:  # unreachable, an answer that is not JSON
        raise CannotCheck(exc.message, hint=f"{exc.hint}; {unchecked}" if exc.hint else unchecked) from None
    namespaces = answer.get("namespaces")
    return {"id": answer.get("id") if isinstance(answer.get("id"), int) else None,
            "namespaces": [n for n in namespaces if isinstance(n, str)] if isinstance(namespaces, list) else [],
            "publish": answer.get("publish") is True, "admin": answer.get("admin") is True}


def yank_target(reference: str) -> tuple[str, Version]:
    """`NAMESPACE/NAME@VERSION`, checked before anything else (a registry is picked by its namespace)."""
    name, _, version = reference.partition("@")
    requirement = parse_requirement(name)
    if not version:
        raise PublishError("name the version to yank: NAMESPACE/NAME@VERSION")
    return requirement.name, parse_version(version.lstrip("="))


def yank(reference: str, registry: Registry, *, undo: bool = False, reason: str | None = None) -> dict[str, Any]:
    name, version = yank_target(reference)
    if oci_publish.is_oci(registry):
        return oci_publish.yank(name, str(version), registry, undo=undo, reason=reason)
    value: bool | str = False if undo else (reason or True)
    return _send(registry, "POST", urljoin(api_url(registry), "yank"),
                 json={"name": name, "version": str(version), "yanked": value})


def publish_folder(folder: Path, config: UserConfig, *, registry: str | None = None, dry_run: bool = False,
                   sign_it: bool = True, key: Path | None = None, identity_token: str | None = None,
                   interactive: bool = False, warn: Callable[[str], None] = lambda _: None) -> dict[str, Any]:
    """`cspm publish` start to end, in the order that fails cheapest first: pack and check the folder,
    pick the registry, make sure it can take the upload (a write API, a token; or, for a dry run, that
    it lacks this version), and only then sign (which may open a browser) and upload. Returns the
    summary the CLI prints: name, version, kind, digest, size, registry, dry_run, signature, and after
    an upload `published` and `signer` as the registry recorded them."""
    package = pack(folder)
    line = package.line
    target = pick_registry(config, package.manifest.name, registry)
    oci = oci_publish.is_oci(target)
    if dry_run:  # a version the registry has would be refused (409): say so now, as the upload would
        check_unpublished(target, line["name"], line["version"], warn)
    elif not oci:
        api_url(target)  # a static or folder registry, or no token: said before signing
        require_token(target)
    if sign_it and not dry_run:
        sign(package, key=key, identity_token=identity_token, interactive=interactive)
    summary: dict[str, Any] = {
        "name": line["name"], "version": line["version"], "kind": line["kind"], "digest": line["digest"],
        "size": line["size"], "registry": target.name, "dry_run": dry_run, "signature": package.signature_kind}
    if not dry_run and oci:
        pushed = oci_publish.publish(line, package.blob, target, bundle=package.bundle,
                                     signature_kind=package.signature_kind)
        summary.update(published=pushed["published"], signer=pushed["signer"], manifest=pushed["manifest"],
                       repository=pushed["repository"])
    elif not dry_run:
        answer = publish(package, target)
        published, signed = answer["line"].get("published"), answer["line"].get("signature")
        summary["published"] = published if isinstance(published, str) else None
        summary["signer"] = signed.get("identity") if isinstance(signed, dict) else None
    return summary
