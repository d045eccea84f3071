"""One registry's static layout, read over http(s) or from a folder (`file://`), behind `Source`.

Every kind gives the same answers: `config.json`, `index/<ns>/<name>`, signature bundles, and blobs
under `dl`. `source_for` picks the kind by the registry URL's scheme from one table (SCHEMES).
Over HTTP an index file is revalidated with If-None-Match / If-Modified-Since; when the registry is
down (or `offline`), the cached copy is used and a warning says so. A failing registry is asked
again by `cspm.http_client.RETRY` only when no cached copy can stand in.

Everything a registry serves is untrusted. A folder registry is read only inside its folder (a path
is checked after percent-decoding and resolved, so neither `%2e%2e/` nor a symlink leaves it) and
only from regular files, read up to a limit whatever `stat` says (a FIFO would hang, a device never
end). JSON goes through `bounded_json`, and a body that cannot be decoded is refused, naming the
registry.
"""

from __future__ import annotations

import hashlib
from collections.abc import Callable, Iterator
from contextlib import AbstractContextManager
from dataclasses import dataclass
from pathlib import Path, PurePosixPath
from typing import TYPE_CHECKING, Any, Protocol
from urllib.parse import quote, unquote, urlsplit

from cspm.errors import RegistryUnavailable
from cspm.fetch import NotRegularFile, open_regular, stream_file, stream_http
from cspm.formats import bounded_json
from cspm.formats.names import check_name
from cspm.formats.userconfig import Registry
from cspm.index.cache import Cached, IndexCache
from cspm.protocol.layout import MAX_BUNDLE

if TYPE_CHECKING:  # imported on the first request: a warm run from the cache never needs them (~40 ms)
    import httpx

    from cspm.http_client import GaveUp

MAX_INDEX_FILE = 16 * 1024 * 1024
MAX_CONFIG_FILE = 256 * 1024
TIMEOUT = (10.0, 5.0)  # seconds: each read, write and pool wait; connect
DEFAULT_DL = "blobs/sha256/{hex}"


@dataclass
class Fetched:
    body: bytes | None  # None: the registry has no such file
    from_cache: bool = False
    stale: bool = False  # served from the cache because the registry could not be reached


Warn = Callable[[str], None]


class Source(Protocol):
    """What cspm reads from one registry, whatever it is stored in (a folder, an HTTP server, an OCI
    registry: cspm.index.oci_source). `source_for` picks the implementation by the URL's scheme, from SCHEMES."""

    registry: Registry
    is_local: bool  # nothing to connect to: no client, no prefetch threads
    own_client: bool  # open_blob brings its own client (an OCI registry's, with its login)

    def index_path(self, name: str) -> str: ...

    def read(self, relpath: str, limit: int = MAX_INDEX_FILE) -> Fetched:
        """An index file (`index/<ns>/<name>`, `names`, `config.json`), at most `limit` bytes."""

    def peek(self, relpath: str, limit: int = MAX_INDEX_FILE) -> bytes | None:
        """The file as this machine already has it, never waiting for the network."""

    def config(self) -> dict:
        """The registry's `config.json` ({} when it has none)."""

    def read_bundle(self, path: str, name: str | None = None) -> bytes | None:
        """A signature bundle (`bundles/sha256/…`) of package `name`, None when the registry does not serve it."""

    def blob_location(self, digest: str, name: str | None = None) -> str:
        """Where the blob (of package `name`) is, relative to the registry (or an absolute URL): what a
        lock records."""

    def blob_url(self, digest: str, location: str | None = None, name: str | None = None) -> str:
        """The URL `open_blob` streams the blob from (`location`: a lock's record of it)."""

    def open_blob(self, url: str, client: httpx.Client | None = None) -> AbstractContextManager[Iterator[bytes]]:
        """The blob's bytes in pieces; errors are the transport's (fetch names the package)."""

    def prepare(self) -> None:
        """Make what threads will share (a connection pool) before they race to make their own."""

    def close(self) -> None: ...


def source_for(registry: Registry, **options: Any) -> IndexSource:
    """The source of `registry`, chosen by its URL's scheme through SCHEMES (a bare path is a folder)."""
    return _kind_for(registry)(registry, **options)


def _kind_for(registry: Registry) -> type[IndexSource]:
    scheme = urlsplit(registry.url).scheme.lower()
    if scheme.startswith("oci") and scheme not in SCHEMES:
        import cspm.index.oci_source  # noqa: F401  (registers the oci schemes; a plain run never needs it)
    kind = SCHEMES.get(scheme)
    if kind is None:
        raise RegistryUnavailable(f"registry {registry.name}: {registry.url[:200]!r} has a scheme cspm cannot read "
                                  f"({scheme}://)", hint=f"use one of {', '.join(supported_schemes())}, "
                                                         f"or a folder path (`cspm registry add NAME URL`)")
    return kind


def supported_schemes() -> list[str]:
    return [f"{scheme}://" for scheme in SCHEMES if scheme]


class IndexSource:
    """The index files of one registry. `IndexSource(registry)` is `source_for(registry)`: the class of
    its URL's scheme; FolderSource and HttpSource hold what differs, this class what they share."""

    is_local = False
    own_client = False

    def __new__(cls, registry: Registry, **options: Any) -> IndexSource:
        return super().__new__(_kind_for(registry) if cls is IndexSource else cls)

    def __init__(self, registry: Registry, *, offline: bool = False, client: httpx.Client | None = None,
                 warn: Warn | None = None, cache: IndexCache | None = None, prefer_cache: bool = False) -> None:
        self.registry = registry
        self.offline = offline
        self.prefer_cache = prefer_cache  # use a cached file without asking the registry (`run ns/app`)
        self.warn = warn or (lambda message: None)
        # keyed by URL too: pointing a name at another registry must not reuse the old one's files
        url_key = hashlib.sha256(registry.url.encode()).hexdigest()[:12]
        self.cache = cache or IndexCache(f"{registry.name}-{url_key}")
        self.folder: Path | None = None
        self._client = client
        self._config: dict | None = None
        self._warned = False

    def index_path(self, name: str) -> str:
        namespace, short = check_name(name).split("/")
        return f"index/{namespace}/{short}"

    def read(self, relpath: str, limit: int = MAX_INDEX_FILE) -> Fetched:
        raise NotImplementedError

    def peek(self, relpath: str, limit: int = MAX_INDEX_FILE) -> bytes | None:
        raise NotImplementedError

    def open_blob(self, url: str, client: httpx.Client | None = None) -> AbstractContextManager[Iterator[bytes]]:
        raise NotImplementedError

    def prepare(self) -> None:
        """Nothing to share by default."""

    def close(self) -> None:
        if self._client is not None:
            self._client.close()

    def config(self) -> dict:
        """The registry's `config.json` ({} when it has none)."""
        if self._config is None:
            fetched = self.read("config.json", MAX_CONFIG_FILE)
            try:
                data = bounded_json.loads(fetched.body, max_bytes=MAX_CONFIG_FILE) if fetched.body else {}
            except bounded_json.JsonRejected as exc:
                raise RegistryUnavailable(f"registry {self.registry.name}: config.json is refused: {exc}",
                                          hint="tell the registry's operator") from None
            self._config = data if isinstance(data, dict) else {}
            policy = self._config.get("policy")
            if policy is not None and not _is_policy(policy):
                raise RegistryUnavailable(f"registry {self.registry.name}: config.json has a `policy` that is not "
                                          f"a map of namespace patterns to signer rules",
                                          hint="tell the registry's operator")
        return self._config

    def read_bundle(self, path: str, name: str | None = None) -> bytes | None:
        return self.read(path, MAX_BUNDLE).body

    def blob_location(self, digest: str, name: str | None = None) -> str:
        """`dl` of config.json filled in for `digest`: a path relative to the registry, or an absolute URL.

        `..` is looked for after percent-decoding too (`%2e%2e/` is `../` to whoever decodes the URL).
        """
        template = self.config().get("dl") or DEFAULT_DL
        if not isinstance(template, str) or ".." in template or ".." in unquote(template):
            template = DEFAULT_DL
        return template.replace("{digest}", digest).replace("{hex}", digest.split(":", 1)[1])

    def blob_url(self, digest: str, location: str | None = None, name: str | None = None) -> str:
        """Where a blob is downloaded from: `location` (a lock's record, used when it is a path inside the
        registry that names the digest) or `blob_location`. An absolute URL is only ever taken from the
        registry's own config.json, never from a lock: a lock cannot send a download to another host,
        and a lock whose digest was edited is not sent to the old blob."""
        if location is not None and _is_inside(location) and digest.split(":", 1)[1] in location:
            return self._url_of(location)
        return self._url_of(self.blob_location(digest))

    def _url_of(self, relative: str) -> str:
        if relative.startswith(("http://", "https://")):
            return relative
        return f"{self.registry.url}/{relative.lstrip('/')}"


class FolderSource(IndexSource):
    """A registry in a folder (`file://` or a path): read only inside it, from regular files only."""

    is_local = True

    def __init__(self, registry: Registry, **options: Any) -> None:
        super().__init__(registry, **options)
        parts = urlsplit(registry.url)
        self.folder = Path(unquote(parts.path)) if parts.scheme else Path(registry.url)
        self._base = registry.url if parts.scheme else self.folder.absolute().as_uri()
        self._root: Path | None = None

    def read(self, relpath: str, limit: int = MAX_INDEX_FILE) -> Fetched:
        return self._read_local(relpath, limit)

    def peek(self, relpath: str, limit: int = MAX_INDEX_FILE) -> bytes | None:
        """The folder's file (None when there is none or it cannot be read)."""
        try:
            return self._read_local(relpath, limit).body
        except RegistryUnavailable:
            return None

    def local_path(self, relpath: str) -> Path:
        """`relpath` (decoded: no `%` escapes left) resolved inside the registry folder, or an error.

        `..`, an absolute path, a backslash or a NUL is refused before anything is touched; the resolved
        path (symlinks followed) must still be inside the folder, so a link cannot lead out of it.
        """
        assert self.folder is not None
        parts = PurePosixPath(relpath).parts
        if (not relpath or relpath.startswith("/") or "\\" in relpath or "\0" in relpath or ".." in parts
                or not parts):
            raise RegistryUnavailable(f"registry {self.registry.name}: {relpath[:200]!r} is not a path inside "
                                      f"the registry folder", hint="tell the registry's operator")
        root = self._root
        if root is None:  # resolved once it exists: every path after is checked against this same folder
            root = self.folder.resolve()
            if root.is_dir():
                self._root = root
        path = (root / Path(*parts)).resolve()
        if not path.is_relative_to(root):
            raise RegistryUnavailable(f"registry {self.registry.name}: {relpath} leads out of the registry folder "
                                      f"(to {path})", hint="a folder registry is read only inside its folder: "
                                                           "tell the registry's operator")
        return path

    def _read_local(self, relpath: str, limit: int) -> Fetched:
        assert self.folder is not None
        path = self.local_path(relpath)
        try:
            with open_regular(path) as handle:
                body = handle.read(limit + 1)
        except (FileNotFoundError, NotADirectoryError, IsADirectoryError):
            if not self.folder.is_dir():  # asked only when a file is missing: one stat less per read
                raise RegistryUnavailable(f"registry {self.registry.name}: folder {self.folder} does not exist",
                                          hint="fix its url with `cspm registry add`") from None
            return Fetched(None)
        except NotRegularFile as exc:
            raise RegistryUnavailable(f"registry {self.registry.name}: {relpath} is {exc}, not a regular file",
                                      hint="a folder registry is read from regular files only: tell the "
                                           "registry's operator") from None
        except OSError as exc:
            raise RegistryUnavailable(f"registry {self.registry.name}: {relpath} cannot be read: "
                                      f"{exc.strerror or exc}") from None
        if len(body) > limit:
            raise RegistryUnavailable(f"registry {self.registry.name}: {relpath} is larger than {limit} bytes")
        return Fetched(body)

    def _url_of(self, relative: str) -> str:
        """For a folder, the decoded path must resolve inside the folder, and nothing is elsewhere."""
        if relative.startswith(("http://", "https://")):
            raise RegistryUnavailable(f"registry {self.registry.name}: a folder registry cannot send "
                                      f"downloads elsewhere ({relative[:200]})")
        assert self.folder is not None
        inside = self.local_path(unquote(relative.split("?", 1)[0].split("#", 1)[0]).lstrip("/"))
        return f"{self._base}/{quote(inside.relative_to(self.folder.resolve()).as_posix())}"

    def open_blob(self, url: str, client: httpx.Client | None = None) -> AbstractContextManager[Iterator[bytes]]:
        return stream_file(Path(unquote(urlsplit(url).path)))


class HttpSource(IndexSource):
    """A registry served over http(s): index files revalidated against the cache, blobs streamed."""

    @property
    def client(self) -> httpx.Client:
        from cspm import http_client

        if self._client is None:
            self._client = http_client.build(timeout=http_client.timeout(TIMEOUT), follow_redirects=True,
                                             headers={"Accept-Encoding": "gzip"})
        return self._client

    def prepare(self) -> None:
        if not self.offline:
            _ = self.client

    def read(self, relpath: str, limit: int = MAX_INDEX_FILE) -> Fetched:
        return self._read_http(relpath, limit)

    def peek(self, relpath: str, limit: int = MAX_INDEX_FILE) -> bytes | None:
        """The cached copy (None when there is none)."""
        cached = self.cache.get(relpath)
        return cached.body if cached is not None else None

    def open_blob(self, url: str, client: httpx.Client | None = None) -> AbstractContextManager[Iterator[bytes]]:
        return stream_http(client or self.client, url)

    def _read_http(self, relpath: str, limit: int) -> Fetched:
        cached = self.cache.get(relpath)
        if self.offline or (self.prefer_cache and cached is not None and cached.body is not None):
            return Fetched(cached.body if cached else None, from_cache=True)
        headers = {}
        if cached is not None:
            if cached.etag:
                headers["If-None-Match"] = cached.etag
            if cached.last_modified:
                headers["If-Modified-Since"] = cached.last_modified
        import httpx

        from cspm import http_client

        url = f"{self.registry.url}/{relpath}"
        # a failing registry is asked again when there is no cached copy to fall back on
        policy = http_client.policy() if cached is None else http_client.policy().with_attempts(1)
        try:
            return policy.run(lambda: self._get(relpath, url, headers, cached, limit))
        except http_client.GaveUp as exc:
            return self._unavailable(exc, cached, relpath)
        except (httpx.DecodingError, httpx.TooManyRedirects, httpx.InvalidURL) as exc:
            # the registry answered, but with a body that cannot be decoded (a corrupt gzip) or in a loop:
            # nothing of it is used or cached, and a stale copy would hide a broken registry
            raise RegistryUnavailable(f"registry {self.registry.name} ({self.registry.url}) sent an answer "
                                      f"for {relpath} that cannot be used: {str(exc)[:300] or type(exc).__name__}",
                                      hint="tell the registry's operator (or the proxy's, if one is in the "
                                           "way)") from None

    def _unavailable(self, exc: GaveUp, cached: Cached | None, relpath: str) -> Fetched:
        last = exc.last
        if cached is None:
            failing = last.status is not None
            what = (f"answered {last.reason} for {relpath} ({exc.why})" if failing else
                    f"cannot be reached: {last.reason} ({exc.why})")
            raise RegistryUnavailable(f"registry {self.registry.name} ({self.registry.url}) {what}",
                                      hint=("the registry is failing: try again later" if failing else
                                            "check the network") + " (no cached copy of its index can stand in)")
        if not self._warned:
            self.warn(f"registry {self.registry.name} cannot be reached ({last.reason}): using its cached index")
            self._warned = True
        return Fetched(cached.body, from_cache=True, stale=True)

    def _get(self, relpath: str, url: str, headers: dict[str, str], cached: Cached | None, limit: int) -> Fetched:
        from cspm import http_client

        with http_client.transient_errors(), self.client.stream("GET", url, headers=headers) as response:
            if response.status_code == 304 and cached is not None:
                # a 304 has no body (h11 enforces it): reading its end keeps the connection for the next
                # request; left unread, the stream's close would close it, and 50 revalidations reconnect
                response.read()
                self.cache.touch(relpath, cached)
                return Fetched(cached.body, from_cache=True)
            if response.status_code in (404, 410):
                self.cache.put(relpath, None, None, None)
                return Fetched(None)
            http_client.check_status(response)
            if response.status_code != 200:
                raise RegistryUnavailable(f"registry {self.registry.name} answered HTTP "
                                          f"{response.status_code} for {url}")
            body = bytearray()
            for chunk in response.iter_bytes():
                body += chunk
                if len(body) > limit:
                    raise RegistryUnavailable(f"registry {self.registry.name}: {relpath} is larger than "
                                              f"{limit} bytes")
            self.cache.put(relpath, bytes(body), response.headers.get("ETag"),
                           response.headers.get("Last-Modified"))
            return Fetched(bytes(body))


# The one table of registry kinds (cspm.index.oci_source adds the `oci` schemes when first needed).
SCHEMES: dict[str, type[IndexSource]] = {"": FolderSource, "file": FolderSource, "http": HttpSource,
                                         "https": HttpSource}


def _is_inside(location: str) -> bool:
    """A lock's blob location that stays inside its registry: relative, no `..` even once decoded."""
    decoded = unquote(location)
    return (bool(location) and "://" not in location and not location.startswith("/") and ".." not in decoded
            and "\\" not in decoded and "\0" not in decoded)


def _is_policy(policy: object) -> bool:
    """The shape `verify.signature.rule_for` reads: {pattern: {issuer?, identity?, keys?, require?}}."""
    if not isinstance(policy, dict):
        return False
    for pattern, rule in policy.items():
        if not isinstance(pattern, str) or not isinstance(rule, dict | None):
            return False
        rule = rule or {}
        if any(k in rule and not isinstance(rule[k], str | None) for k in ("issuer", "identity")):
            return False
        keys = rule.get("keys")
        if keys is not None and not (isinstance(keys, list) and all(isinstance(k, str) for k in keys)):
            return False
        if not isinstance(rule.get("require", True), bool):
            return False
    return True
