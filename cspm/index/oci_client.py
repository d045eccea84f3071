"""A client of the OCI distribution API (`/v2/…`), on httpx: what cspm reads from and pushes to OCI registries.

Why httpx and not the `oras` package: cspm must see the raw bytes of a manifest to check its digest
(oras hands back parsed JSON), must check every blob's digest and size as it streams (oras does
not), must bound every answer, and must fail fast with its own retry policy (oras retries on its
own and, against a stopped registry, hangs for tens of seconds). The protocol is small: tags, a
manifest, a blob, a monolithic upload, the referrers API.

Auth follows Docker's: a request goes anonymous first; a 401 names the scheme in WWW-Authenticate:
`Basic` gets the login of `credentials.oci_login`, `Bearer` a token from the realm it names (with
the login, or anonymous), cached per scope. The login goes only to the registry's own origin and
to a realm on https (or loopback); httpx drops `Authorization` on a redirect to another origin
(blob storage), so presigned URLs never see it. Plain HTTP is used for a registry on loopback (as
Docker allows for localhost) or an `oci+http://` URL, the explicit opt-in; any other registry is
https.

Everything a registry answers is untrusted: a manifest fetched by digest must hash to it (and one
fetched by tag is pinned by the hash of its bytes, never by a header), a blob is read up to its
expected size and its digest checked, and every body is bounded.
"""

from __future__ import annotations

import base64
import hashlib
import ipaddress
import re
import threading
from collections.abc import Iterator
from contextlib import contextmanager
from dataclasses import dataclass
from typing import TYPE_CHECKING, Any
from urllib.parse import quote, urlsplit

from cspm import credentials
from cspm.errors import RegistryAuthError, RegistryUnavailable
from cspm.formats.userconfig import Registry
from cspm.protocol import oci

if TYPE_CHECKING:
    import httpx

TIMEOUT = (30.0, 5.0)
CHUNK = 256 * 1024
MAX_TOKEN_ANSWER = 64 * 1024
MAX_ERROR_BODY = 16 * 1024
SCHEMES = {"oci": None, "oci+http": "http", "oci+https": "https"}
_CHALLENGE_RE = re.compile(r'(\w+)="([^"]*)"')
_BEARER_RE = re.compile(r"[\x21-\x7e]{1,8192}")  # what may go in a header: printable, no space


class Missing(Exception):
    """The registry has no such manifest, blob or repository (404)."""


@dataclass(frozen=True)
class Fetched:
    body: bytes
    digest: str  # sha256 of the body: what a manifest is pinned by
    media_type: str


def endpoint(url: str) -> tuple[str, str]:
    """(base URL `http(s)://host[:port]`, repository prefix) of an `oci://host[:port]/prefix` registry URL."""
    parts = urlsplit(url)
    scheme = parts.scheme.lower()
    if scheme not in SCHEMES or not parts.hostname:
        raise RegistryUnavailable(f"{url[:200]!r} is not an OCI registry URL",
                                  hint="write it as oci://HOST[:PORT]/PREFIX (oci+http:// for plain HTTP off "
                                       "this machine)")
    transport = SCHEMES[scheme] or ("http" if is_loopback(parts.hostname) else "https")
    prefix = parts.path.strip("/")
    if prefix and not oci.REPOSITORY_RE.fullmatch(prefix):
        raise RegistryUnavailable(f"{url[:200]!r}: {prefix[:100]!r} is not a repository prefix (lower-case "
                                  f"letters, digits, `.`, `_`, `-`, `/`)")
    return f"{transport}://{parts.netloc}", prefix


def is_loopback(host: str) -> bool:
    if host.lower() == "localhost":
        return True
    try:
        return ipaddress.ip_address(host.strip("[]")).is_loopback
    except ValueError:
        return False


class Distribution:
    """One registry's `/v2/` API. Thread-safe: downloads share it."""

    def __init__(self, registry: Registry, client: httpx.Client | None = None,
                 login: tuple[str, str] | None = None) -> None:
        self.registry = registry
        self._given_login = login  # a login not saved yet (`cspm login` checks it first)
        self.base, self.prefix = endpoint(registry.url)
        self._client = client
        self._tokens: dict[str, str] = {}  # scope -> bearer token
        self._basic: str | None = None  # the Basic header, once the registry asked for it
        self._lock = threading.Lock()

    @property
    def name(self) -> str:
        return self.registry.name

    @property
    def client(self) -> httpx.Client:
        from cspm import http_client

        with self._lock:
            if self._client is None:
                self._client = http_client.build(timeout=http_client.timeout(TIMEOUT), follow_redirects=True)
            return self._client

    def close(self) -> None:
        if self._client is not None:
            self._client.close()

    def repository(self, name: str) -> str:
        try:
            return oci.repository(self.prefix, name)
        except oci.OciFormatError as exc:
            raise RegistryUnavailable(f"registry {self.name}: {exc}") from None

    def url(self, repo: str, kind: str, reference: str = "") -> str:
        return f"{self.base}/v2/{repo}/{kind}/{quote(reference, safe=':')}" if reference else \
            f"{self.base}/v2/{repo}/{kind}"

    # -- reads

    def tags(self, repo: str) -> list[str]:
        """Every tag of `repo` ([] when the repository does not exist), following `Link` pages."""
        found: list[str] = []
        url: str | None = self.url(repo, "tags/list") + f"?n={oci.MAX_TAGS}"
        pages = 0
        while url is not None and pages < 20:
            pages += 1
            try:
                with self.request("GET", url, repo) as response:
                    body = self._body(response, oci.MAX_TAGS * 160, url)
                    link = response.headers.get("Link")
            except Missing:
                return []
            try:
                found += oci.parse_tags(body, f"registry {self.name}: {repo}")
            except oci.OciFormatError as exc:
                raise RegistryUnavailable(str(exc), hint="tell the registry's operator") from None
            url = self._next_page(link)
            if len(found) > oci.MAX_TAGS:
                raise RegistryUnavailable(f"registry {self.name}: {repo} has more than {oci.MAX_TAGS} tags")
        return found

    def _next_page(self, link: str | None) -> str | None:
        if not link or 'rel="next"' not in link:
            return None
        target = link.split(";", 1)[0].strip().strip("<>")
        if not target.startswith("/v2/"):  # a page elsewhere is not followed
            return None
        return self.base + target

    def manifest(self, repo: str, reference: str, accept: tuple[str, ...] = oci.MANIFEST_TYPES) -> Fetched:
        """A manifest by tag or digest; by digest, its bytes must hash to it. Missing when absent."""
        url = self.url(repo, "manifests", reference)
        with self.request("GET", url, repo, headers={"Accept": ", ".join(accept)}) as response:
            body = self._body(response, oci.MAX_MANIFEST, url)
            media_type = response.headers.get("Content-Type", "").split(";")[0].strip()
        digest = "sha256:" + hashlib.sha256(body).hexdigest()
        if oci.DIGEST_RE.fullmatch(reference) and digest != reference:
            raise RegistryUnavailable(f"registry {self.name} answered {repo}@{reference} with a manifest whose "
                                      f"digest is {digest}: refused", hint="the registry or a proxy altered it; "
                                                                           "tell the registry's operator")
        return Fetched(body, digest, media_type)

    def head_manifest(self, repo: str, reference: str) -> str | None:
        """The digest the registry says `reference` names (None when absent or not said): only a hint
        for the cache; what is used is always checked against the bytes."""
        url = self.url(repo, "manifests", reference)
        try:
            with self.request("HEAD", url, repo, headers={"Accept": ", ".join(oci.MANIFEST_TYPES)}) as response:
                digest = response.headers.get("Docker-Content-Digest", "")
        except Missing:
            return None
        return digest if oci.DIGEST_RE.fullmatch(digest) else None

    def blob(self, repo: str, digest: str, limit: int) -> bytes:
        """A whole (small) blob, checked against `digest`."""
        body = bytearray()
        with self.open_blob(repo, digest) as chunks:
            for chunk in chunks:
                body += chunk
                if len(body) > limit:
                    raise RegistryUnavailable(f"registry {self.name}: blob {digest} of {repo} is larger than "
                                              f"{limit} bytes")
        if "sha256:" + hashlib.sha256(body).hexdigest() != digest:
            raise RegistryUnavailable(f"registry {self.name} answered blob {digest} of {repo} with other bytes: "
                                      f"refused", hint="the registry or a proxy altered it; tell its operator")
        return bytes(body)

    @contextmanager
    def open_blob(self, repo: str, digest: str, *, retryable: bool = False) -> Iterator[Iterator[bytes]]:
        """The blob's bytes in pieces (the caller checks the digest: fetch does, as it writes the store).
        `retryable`: a failure that may pass is `http_client.Retryable`, for the caller's retry policy."""
        url = self.url(repo, "blobs", digest)
        with self.request("GET", url, repo, retryable=retryable) as response:
            yield response.iter_bytes(CHUNK)

    def referrers(self, repo: str, digest: str) -> list[oci.Descriptor] | None:
        """The referrers of a manifest by the OCI 1.1 API; None when the registry has no such API."""
        url = self.url(repo, "referrers", digest)
        try:
            with self.request("GET", url, repo, headers={"Accept": oci.IMAGE_INDEX}) as response:
                body = self._body(response, oci.MAX_MANIFEST, url)
                media_type = response.headers.get("Content-Type", "").split(";")[0].strip()
        except Missing:
            return None
        if media_type != oci.IMAGE_INDEX:
            return None
        try:
            return list(oci.parse_manifest(body, f"registry {self.name}: referrers of {digest}").manifests)
        except oci.OciFormatError as exc:
            raise RegistryUnavailable(str(exc), hint="tell the registry's operator") from None

    def referrers_by_tag(self, repo: str, digest: str) -> list[oci.Descriptor]:
        """The referrers tag schema (the fallback where the API is missing): the index at `sha256-<hex>`."""
        try:
            fetched = self.manifest(repo, oci.fallback_tag(digest), (oci.IMAGE_INDEX,))
        except Missing:
            return []
        try:
            return list(oci.parse_manifest(fetched.body, f"registry {self.name}: {repo}:"
                                                         f"{oci.fallback_tag(digest)}").manifests)
        except oci.OciFormatError as exc:
            raise RegistryUnavailable(str(exc), hint="tell the registry's operator") from None

    def all_referrers(self, repo: str, digest: str) -> list[oci.Descriptor]:
        found = self.referrers(repo, digest)
        return found if found is not None else self.referrers_by_tag(repo, digest)

    # -- writes

    def has_blob(self, repo: str, digest: str) -> bool:
        try:
            with self.request("HEAD", self.url(repo, "blobs", digest), repo, push=True):
                return True
        except Missing:
            return False

    def push_blob(self, repo: str, data: bytes) -> oci.Descriptor:
        """Upload `data` unless the repository has it (POST an upload session, then one PUT with the digest)."""
        digest = "sha256:" + hashlib.sha256(data).hexdigest()
        if not self.has_blob(repo, digest):
            import httpx

            start = self.url(repo, "blobs/uploads") + "/"
            with self.request("POST", start, repo, push=True) as response:
                location = response.headers.get("Location")
            if not location:
                raise RegistryUnavailable(f"registry {self.name} started an upload to {repo} without a Location")
            target = httpx.URL(self.base).join(location).copy_merge_params({"digest": digest})
            if (target.scheme, target.host, target.port) != (httpx.URL(self.base).scheme, httpx.URL(self.base).host,
                                                             httpx.URL(self.base).port):
                raise RegistryUnavailable(f"registry {self.name} sent an upload to another origin "
                                          f"({str(target)[:200]}): refused")
            with self.request("PUT", str(target), repo, push=True, content=data,
                              headers={"Content-Type": "application/octet-stream"}):
                pass
        return oci.Descriptor("application/octet-stream", digest, len(data))

    def push_manifest(self, repo: str, reference: str, body: bytes, media_type: str) -> tuple[str, bool]:
        """PUT a manifest under a tag or its digest; (its digest, whether the registry processed its
        `subject`: the OCI-Subject header of a registry with the referrers API)."""
        digest = "sha256:" + hashlib.sha256(body).hexdigest()
        with self.request("PUT", self.url(repo, "manifests", reference), repo, push=True, content=body,
                          headers={"Content-Type": media_type}) as response:
            said = response.headers.get("Docker-Content-Digest")
            subject = bool(response.headers.get("OCI-Subject"))
        if said and said != digest:
            raise RegistryUnavailable(f"registry {self.name} recorded {repo}:{reference} as {said[:80]}, but cspm "
                                      f"sent {digest}", hint="tell the registry's operator")
        return digest, subject

    def delete_manifest(self, repo: str, digest: str) -> None:
        with self.request("DELETE", self.url(repo, "manifests", digest), repo, push=True):
            pass

    def check_login(self, repo: str) -> None:
        """Ask `/v2/` with the login: RegistryAuthError when the registry refuses it. (Whether it may push
        is only known at the first push: a token service grants `/v2/` to any valid login.)"""
        with self.request("GET", f"{self.base}/v2/", repo, push=True):
            pass

    # -- the one request path: auth, errors, bounds

    @contextmanager
    def request(self, method: str, url: str, repo: str, *, push: bool = False, headers: dict[str, str] | None = None,
                retryable: bool = False, **kwargs: Any) -> Iterator[httpx.Response]:
        """One request with the registry's auth; Missing for 404, RegistryAuthError for 401/403 after
        the login was tried, RegistryUnavailable for other failures (said in the registry's words), or,
        with `retryable`, `http_client.Retryable` for a failure that may pass (fetch's policy asks again)."""
        import httpx

        from cspm import http_client

        scope = f"repository:{repo}:{'pull,push' if push else 'pull'}"
        for attempt in range(2):
            auth = self._auth_header(scope)
            sent = {**(headers or {}), **auth}
            try:
                with http_client.transient_errors(), self.client.stream(method, url, headers=sent,
                                                                        **kwargs) as response:
                    if response.status_code == 401 and attempt == 0 and self._answer_challenge(
                            response, scope, auth.get("Authorization")):
                        continue
                    if retryable:
                        http_client.check_status(response)
                    self._check(response, method, url, push)
                    yield response
                    return
            except http_client.Retryable as exc:
                if retryable:
                    raise
                raise RegistryUnavailable(f"registry {self.name} ({self.base}) cannot be reached: {exc.reason}",
                                          hint="check that the registry runs and the URL (`cspm registry list`)"
                                          ) from None
            except httpx.HTTPError as exc:
                raise RegistryUnavailable(f"registry {self.name} ({self.base}): {method} failed: "
                                          f"{str(exc)[:300] or type(exc).__name__}") from None

    def _check(self, response: httpx.Response, method: str, url: str, push: bool) -> None:
        status = response.status_code
        if status < 300 or (status == 304):
            return
        if status == 404:
            raise Missing(url)
        detail = self._error_words(response)
        where = f"{method} {url.split('?')[0][len(self.base):][:200]}"
        if status in (401, 403):
            login, came_from = self._login()
            if login is None:
                raise RegistryAuthError(f"registry {self.name} needs a login for {where} (HTTP {status}{detail})",
                                        hint=f"log in: `cspm login {self.name} --username USER` (or set "
                                             f"CSPM_TOKEN_{self.name.upper().replace('-', '_')} and CSPM_USERNAME, "
                                             f"or `docker login`)")
            raise RegistryAuthError(f"registry {self.name} refused the login from {came_from} for {where} "
                                    f"(HTTP {status}{detail})",
                                    hint=("check that this login may push to it" if push else
                                          "check the username and password") + f": `cspm login {self.name}`")
        raise RegistryUnavailable(f"registry {self.name} answered HTTP {status} to {where}{detail}",
                                  hint="the registry is failing: try again later" if status >= 500 else
                                  "tell the registry's operator")

    def _error_words(self, response: httpx.Response) -> str:
        """`: CODE: message` from the distribution error body, if there is one (bounded)."""
        from cspm.formats import bounded_json

        body = bytearray()
        for chunk in response.iter_bytes():
            body += chunk
            if len(body) > MAX_ERROR_BODY:
                return ""
        try:
            data = bounded_json.loads(bytes(body), max_bytes=MAX_ERROR_BODY)
        except bounded_json.JsonRejected:
            return ""
        errors = data.get("errors") if isinstance(data, dict) else None
        if not isinstance(errors, list) or not errors or not isinstance(errors[0], dict):
            return ""
        code, message = errors[0].get("code"), errors[0].get("message")
        said = ": ".join(str(v)[:200] for v in (code, message) if isinstance(v, str) and v)
        return f": {said}" if said else ""

    def _body(self, response: httpx.Response, limit: int, url: str) -> bytes:
        body = bytearray()
        for chunk in response.iter_bytes():
            body += chunk
            if len(body) > limit:
                raise RegistryUnavailable(f"registry {self.name}: the answer to {url[:200]} is larger than {limit} "
                                          f"bytes")
        return bytes(body)

    def _login(self) -> tuple[tuple[str, str] | None, str]:
        if self._given_login is not None:
            return self._given_login, "the login given"
        return credentials.oci_login(self.registry)

    def _auth_header(self, scope: str) -> dict[str, str]:
        with self._lock:
            token = self._tokens.get(scope)
            if token is None and scope.endswith(":pull"):  # a push token may pull too
                token = self._tokens.get(scope[:-len("pull")] + "pull,push")
            if token is not None:
                return {"Authorization": f"Bearer {token}"}
            return {"Authorization": self._basic} if self._basic else {}

    def _answer_challenge(self, response: httpx.Response, scope: str, sent: str | None) -> bool:
        """Set up the auth a 401 asks for; False when there is nothing new to try. `sent` is the header the
        refused request carried: when another thread has set up auth since, the request is simply
        tried again with it (parallel first requests all meet the same 401)."""
        challenge = response.headers.get("WWW-Authenticate", "")
        scheme = challenge.split(" ", 1)[0].lower()
        if self._auth_header(scope).get("Authorization") != sent:
            return True
        login, _ = self._login()
        if scheme == "basic":
            with self._lock:
                if login is None or self._basic is not None:
                    return self._basic is not None and self._basic != sent
                self._basic = "Basic " + base64.b64encode(f"{login[0]}:{login[1]}".encode()).decode()
            return True
        if scheme == "bearer":
            params = dict(_CHALLENGE_RE.findall(challenge))
            token = self._fetch_token(params, scope, login)
            with self._lock:
                self._tokens[scope] = token
            return True
        return False

    def _fetch_token(self, params: dict[str, str], scope: str, login: tuple[str, str] | None) -> str:
        import httpx

        from cspm.formats import bounded_json

        realm = params.get("realm", "")
        parts = urlsplit(realm)
        same_host = parts.netloc.lower() == urlsplit(self.base).netloc.lower()
        if parts.scheme != "https" and not (parts.scheme == "http" and (is_loopback(parts.hostname or "") or
                                                                         same_host)):
            raise RegistryAuthError(f"registry {self.name} names a token service cspm does not trust: "
                                    f"{realm[:200]!r} (the login goes only to https, loopback, or the registry's "
                                    f"own host)")
        # what this request needs (a push asks pull,push at once) and what the challenge names (`delete`,
        # another repository): each its own `scope` parameter, as the token spec has it
        wanted = [scope, *(s for s in (params.get("scope") or "").split() if s != scope)]
        query: list[tuple[str, str | int | float | bool | None]] = [("scope", s) for s in wanted]
        if params.get("service"):
            query.append(("service", params["service"]))
        auth = httpx.BasicAuth(*login) if login is not None else None
        try:
            with self.client.stream("GET", realm, params=query, auth=auth) as answer:
                status = answer.status_code
                body = bytearray()
                for chunk in answer.iter_bytes():
                    body += chunk
                    if len(body) > MAX_TOKEN_ANSWER:
                        break
        except httpx.HTTPError as exc:
            raise RegistryUnavailable(f"registry {self.name}: its token service cannot be reached: {exc}") from None
        if status in (401, 403):
            raise RegistryAuthError(f"registry {self.name}: its token service refused "
                                    f"{'the login' if login else 'an anonymous token'} (HTTP {status})",
                                    hint=f"log in: `cspm login {self.name} --username USER`")
        try:
            data = bounded_json.loads(bytes(body), max_bytes=MAX_TOKEN_ANSWER)
        except bounded_json.JsonRejected:
            data = None
        token = (data.get("token") or data.get("access_token")) if isinstance(data, dict) else None
        if status != 200 or not isinstance(token, str) or not _BEARER_RE.fullmatch(token):
            raise RegistryUnavailable(f"registry {self.name}: its token service answered HTTP {status} "
                                      f"without a usable token")
        return token
