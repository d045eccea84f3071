"""One registry's static layout, read over http(s) or from a folder (`file://`).

Both give the same answers: `config.json`, `index/<ns>/<name>`, and blobs under `dl`. Over HTTP an
index file is revalidated with If-None-Match / If-Modified-Since; when the registry is down (or
`offline`), the cached copy is used and a warning says so.

Everything a registry serves is untrusted. A folder registry is read only inside its folder (a path
is checked after percent-decoding and resolved, so neither `%2e%2e/` nor a symlink leaves it) and
only from regular files, read up to a limit whatever `stat` says (a FIFO would hang, a device never
end). JSON goes through `bounded_json`, and a body that cannot be decoded is refused, naming the
registry.
"""

from __future__ import annotations

import hashlib
import time
from collections.abc import Callable
from dataclasses import dataclass
from pathlib import Path, PurePosixPath
from typing import TYPE_CHECKING
from urllib.parse import quote, unquote, urlsplit

from cspm.errors import CspmError
from cspm.fetch import NotRegularFile, http_timeout, open_regular
from cspm.formats import bounded_json
from cspm.formats.names import check_name
from cspm.formats.userconfig import Registry
from cspm.index.cache import Cached, IndexCache

if TYPE_CHECKING:  # imported on the first request: a warm run from the cache never needs it (~40 ms)
    import httpx

MAX_INDEX_FILE = 16 * 1024 * 1024
MAX_CONFIG_FILE = 256 * 1024
TIMEOUT = (10.0, 5.0)  # seconds: each read, write and pool wait; connect
INDEX_ATTEMPTS = 3  # 5xx and 429 are asked again (after 0.25 s, 0.5 s) when nothing is cached
INDEX_BACKOFF_S = 0.25
DEFAULT_DL = "blobs/sha256/{hex}"


class RegistryUnavailable(CspmError):
    pass


@dataclass
class Fetched:
    body: bytes | None  # None: the registry has no such file
    from_cache: bool = False
    stale: bool = False  # served from the cache because the registry could not be reached


Warn = Callable[[str], None]


class IndexSource:
    """The index files of one registry."""

    def __init__(self, registry: Registry, *, offline: bool = False, client: httpx.Client | None = None,
                 warn: Warn | None = None, cache: IndexCache | None = None, prefer_cache: bool = False) -> None:
        self.registry = registry
        self.offline = offline
        self.prefer_cache = prefer_cache  # use a cached file without asking the registry (`run ns/app`)
        self.warn = warn or (lambda message: None)
        # keyed by URL too: pointing a name at another registry must not reuse the old one's files
        url_key = hashlib.sha256(registry.url.encode()).hexdigest()[:12]
        self.cache = cache or IndexCache(f"{registry.name}-{url_key}")
        parts = urlsplit(registry.url)
        self.is_local = parts.scheme == "file"
        self.folder = Path(unquote(parts.path)) if self.is_local else None
        self._client = client
        self._config: dict | None = None
        self._warned = False

    @property
    def client(self) -> httpx.Client:
        import httpx

        if self._client is None:
            self._client = httpx.Client(timeout=http_timeout(TIMEOUT), follow_redirects=True, trust_env=False,
                                        headers={"User-Agent": "cspm", "Accept-Encoding": "gzip"})
        return self._client

    def index_path(self, name: str) -> str:
        namespace, short = check_name(name).split("/")
        return f"index/{namespace}/{short}"

    def read(self, relpath: str, limit: int = MAX_INDEX_FILE) -> Fetched:
        if self.folder is not None:
            return self._read_local(relpath, limit)
        return self._read_http(relpath, limit)

    def peek(self, relpath: str, limit: int = MAX_INDEX_FILE) -> bytes | None:
        """The file as this machine already has it, never asking the network: a folder registry's
        file, or an HTTP registry's cached copy (None when there is none or it cannot be read).
        For warnings on a warm path, which must not wait for a registry."""
        if self.folder is None:
            cached = self.cache.get(relpath)
            return cached.body if cached is not None else None
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
        root = self.folder.resolve()
        path = (root / Path(*parts)).resolve()
        if not path.is_relative_to(root):
            raise RegistryUnavailable(f"registry {self.registry.name}: {relpath} leads out of the registry folder "
                                      f"(to {path})", hint="a folder registry is read only inside its folder: "
                                                           "tell the registry's operator")
        return path

    def _read_local(self, relpath: str, limit: int) -> Fetched:
        assert self.folder is not None
        if not self.folder.is_dir():
            raise RegistryUnavailable(f"registry {self.registry.name}: folder {self.folder} does not exist",
                                      hint="fix its url with `cspm registry add`")
        path = self.local_path(relpath)
        try:
            with open_regular(path) as handle:
                body = handle.read(limit + 1)
        except (FileNotFoundError, NotADirectoryError, IsADirectoryError):
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

        url = f"{self.registry.url}/{relpath}"
        for attempt in range(1, INDEX_ATTEMPTS + 1):
            try:
                return self._get(relpath, url, headers, cached, limit)
            except httpx.HTTPStatusError as exc:
                # a registry that answers is worth asking again, when there is no cached copy to fall back on
                if cached is not None or attempt == INDEX_ATTEMPTS:
                    return self._unavailable(exc, cached, f"answered {exc} for {relpath} (after {attempt} "
                                             f"attempt{'s' if attempt > 1 else ''})")
                time.sleep(INDEX_BACKOFF_S * 2 ** (attempt - 1))
            except httpx.TransportError as exc:
                return self._unavailable(exc, cached, f"cannot be reached: {str(exc) or type(exc).__name__}")
            except (httpx.DecodingError, httpx.TooManyRedirects, httpx.InvalidURL) as exc:
                # the registry answered, but with a body that cannot be decoded (a corrupt gzip) or in a loop:
                # nothing of it is used or cached, and a stale copy would hide a broken registry
                raise RegistryUnavailable(f"registry {self.registry.name} ({self.registry.url}) sent an answer "
                                          f"for {relpath} that cannot be used: {str(exc)[:300] or type(exc).__name__}",
                                          hint="tell the registry's operator (or the proxy's, if one is in the "
                                               "way)") from None
        raise AssertionError("unreachable")

    def _unavailable(self, exc: Exception, cached: Cached | None, what: str) -> Fetched:
        import httpx

        reason = str(exc) or type(exc).__name__
        if cached is None:
            failing = isinstance(exc, httpx.HTTPStatusError)
            raise RegistryUnavailable(f"registry {self.registry.name} ({self.registry.url}) {what}",
                                      hint=("the registry is failing: try again later" if failing else
                                            "check the network") + " (no cached copy of its index can stand in)")
        if not self._warned:
            self.warn(f"registry {self.registry.name} cannot be reached ({reason}): using its cached index")
            self._warned = True
        return Fetched(cached.body, from_cache=True, stale=True)

    def _get(self, relpath: str, url: str, headers: dict[str, str], cached: Cached | None, limit: int) -> Fetched:
        import httpx

        with self.client.stream("GET", url, headers=headers) as response:
            if response.status_code == 304 and cached is not None:
                self.cache.touch(relpath)
                return Fetched(cached.body, from_cache=True)
            if response.status_code in (404, 410):
                self.cache.put(relpath, None, None, None)
                return Fetched(None)
            if response.status_code >= 500 or response.status_code == 429:
                raise httpx.HTTPStatusError(f"HTTP {response.status_code}", request=response.request,
                                            response=response)
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

    def blob_url(self, digest: str) -> str:
        """Where a blob is downloaded from: `dl` of config.json (relative to the registry, or absolute).

        `..` is looked for after percent-decoding too (`%2e%2e/` is `../` to whoever decodes the URL);
        for a folder registry the decoded path must resolve inside the folder.
        """
        template = self.config().get("dl") or DEFAULT_DL
        if not isinstance(template, str) or ".." in template or ".." in unquote(template):
            template = DEFAULT_DL
        relative = template.replace("{digest}", digest).replace("{hex}", digest.split(":", 1)[1])
        if relative.startswith(("http://", "https://")):
            if self.is_local:
                raise RegistryUnavailable(f"registry {self.registry.name}: a folder registry cannot send "
                                          f"downloads elsewhere ({template})")
            return relative
        if self.folder is not None:
            inside = self.local_path(unquote(relative.split("?", 1)[0].split("#", 1)[0]).lstrip("/"))
            return f"{self.registry.url}/{quote(inside.relative_to(self.folder.resolve()).as_posix())}"
        return f"{self.registry.url}/{relative.lstrip('/')}"


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
