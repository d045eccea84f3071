"""An OCI registry as a cspm registry: `oci://host[:port]/prefix`, read through the distribution API.

The rest of cspm reads registries as index files (`cspm.index.source.Source`), so this source
answers `index/<ns>/<name>` by listing the tags of `prefix/ns/name` and reading the manifest of each
version tag (`cspm.protocol.oci`: the index line is a manifest annotation), its signature (a
referrer) and its yank (the tag `<version>.yanked`). The synthesized file goes through the same
parser and checks as any registry's. Manifests are cached by digest (they never change), so
revalidating costs one tag list and one HEAD per version; a signature found is cached by the
manifest's digest (cspm publishes it before the version tag, so a tagged version is never seen
unsigned and signed later).

What a lock pins is never a tag: `blob` is `<repository>@<manifest digest>` and `digest` the layer's,
so a re-pushed tag changes nothing that is installed; blobs are fetched by digest and checked.
"""

from __future__ import annotations

import json
from collections.abc import Iterator
from concurrent.futures import ThreadPoolExecutor
from contextlib import AbstractContextManager, contextmanager
from typing import TYPE_CHECKING, Any

from cspm.errors import RegistryAuthError, RegistryUnavailable
from cspm.fetch import BlobStatus
from cspm.formats import bounded_json
from cspm.formats.index_line import MAX_LINE_BYTES, to_line
from cspm.formats.names import NameInvalid, check_name, parse_version
from cspm.formats.userconfig import Registry
from cspm.index.oci_client import Distribution, Missing
from cspm.index.source import MAX_INDEX_FILE, SCHEMES, Fetched, IndexSource
from cspm.protocol import layout, oci

if TYPE_CHECKING:
    import httpx

WORKERS = 8
PIN = "oci"  # the field of a synthesized line that records {repository, manifest}: dropped by the line parser


class OciSource(IndexSource):
    """A registry in an OCI registry (`oci://`, `oci+http://`)."""

    own_client = True  # blobs come through `dist`, with the registry's login: fetch needs no client for them

    def __init__(self, registry: Registry, **options: Any) -> None:
        super().__init__(registry, **options)
        self.dist = Distribution(registry, options.get("client"))
        self._pins: dict[tuple[str, str], str] = {}  # (name, layer digest) -> manifest digest

    def prepare(self) -> None:
        if not self.offline:
            _ = self.dist.client

    def close(self) -> None:
        self.dist.close()

    def config(self) -> dict:
        """An OCI registry has no config.json: its trust policy is the user's (`trust` in the config)."""
        return {}

    def read(self, relpath: str, limit: int = MAX_INDEX_FILE) -> Fetched:
        if not relpath.startswith(layout.INDEX_DIR + "/"):
            return Fetched(None)  # config.json, names: an OCI registry has neither
        cached = self.cache.get(relpath)
        if self.offline or (self.prefer_cache and cached is not None and cached.body is not None):
            return Fetched(cached.body if cached else None, from_cache=True)
        name = relpath[len(layout.INDEX_DIR) + 1:]
        try:
            body = self._synthesize(check_name(name))
        except RegistryAuthError:
            raise
        except RegistryUnavailable as exc:
            if cached is None:
                raise
            if not self._warned:
                self.warn(f"registry {self.registry.name} cannot be read ({exc.message}): using its cached index")
                self._warned = True
            return Fetched(cached.body, from_cache=True, stale=True)
        self.cache.put(relpath, body, None, None)
        return Fetched(body)

    def peek(self, relpath: str, limit: int = MAX_INDEX_FILE) -> bytes | None:
        cached = self.cache.get(relpath)
        return cached.body if cached is not None else None

    # -- index files from tags and manifests

    def _synthesize(self, name: str) -> bytes | None:
        repo = self.dist.repository(name)
        tags = self.dist.tags(repo)
        versions = [t for t in tags if _is_version(t)]
        if not versions:
            return None
        yanked = {t[:-len(oci.YANK_SUFFIX)] for t in tags if t.endswith(oci.YANK_SUFFIX)}
        if len(versions) == 1:
            lines = [self._line(name, repo, versions[0], versions[0] in yanked)]
        else:
            self.prepare()
            with ThreadPoolExecutor(max_workers=min(WORKERS, len(versions))) as pool:
                lines = list(pool.map(lambda tag: self._line(name, repo, tag, tag in yanked), versions))
        found = [line for line in lines if line is not None]
        return ("\n".join(found) + "\n").encode() if found else b""

    def _line(self, name: str, repo: str, tag: str, yanked: bool) -> str | None:
        """The index line of one version tag (None, with a warning, when its manifest is not a cspm package)."""
        where = f"registry {self.registry.name}: {repo}:{tag}"
        try:
            manifest_digest, manifest = self._manifest(repo, tag)
            line = oci.index_line_of(manifest, where)
            if line.get("name") != name or not _same_version(str(line.get("version")), tag):
                raise oci.OciFormatError(f"{where}: the manifest is of {str(line.get('name'))[:130]} "
                                         f"{str(line.get('version'))[:64]}, not of this tag")
            line["signature"] = self._signature(repo, manifest_digest)
            if yanked:
                line["yanked"] = self._yank_reason(repo, tag)
        except Missing:
            return None  # deleted between the tag list and now
        except oci.OciFormatError as exc:
            self.warn(f"skipped {repo}:{tag}: {exc}")
            return None
        line[PIN] = {"repository": repo, "manifest": manifest_digest}
        self._pins[(name, str(line.get("digest")))] = manifest_digest
        text = to_line(line)
        return text if len(text) <= MAX_LINE_BYTES else None

    def _manifest(self, repo: str, reference: str) -> tuple[str, oci.Manifest]:
        """(digest, parsed manifest): from the cache when the registry says the tag still names a cached one."""
        said = self.dist.head_manifest(repo, reference) if not oci.DIGEST_RE.fullmatch(reference) else reference
        if said is None and not oci.DIGEST_RE.fullmatch(reference):
            raise Missing(reference)
        key = f"oci/manifests/{said.split(':', 1)[1]}" if said else None
        cached = self.cache.get(key) if key else None
        if cached is not None and cached.body is not None and said is not None:
            import hashlib

            if "sha256:" + hashlib.sha256(cached.body).hexdigest() == said:
                return said, oci.parse_manifest(cached.body, f"registry {self.registry.name}: {repo}@{said}")
        fetched = self.dist.manifest(repo, reference, (oci.IMAGE_MANIFEST,))
        self.cache.put(f"oci/manifests/{fetched.digest.split(':', 1)[1]}", fetched.body, None, None)
        return fetched.digest, oci.parse_manifest(fetched.body, f"registry {self.registry.name}: {repo}:{reference}")

    def _signature(self, repo: str, manifest_digest: str) -> dict[str, str] | None:
        """The signature referrer of a package manifest, as an index line's `signature` (the signer its
        publisher claims; the bundle proves it or refuses the blob when it is installed)."""
        key = f"oci/signatures/{manifest_digest.split(':', 1)[1]}"
        cached = self.cache.get(key)
        if cached is not None and cached.body:
            try:
                return dict(json.loads(cached.body))
            except (ValueError, TypeError):
                pass
        kinds = {media: kind for kind, media in oci.SIGNATURE_TYPES.items()}
        for referrer in self.dist.all_referrers(repo, manifest_digest):
            if referrer.artifact_type not in kinds:
                continue
            try:
                _, artifact = self._manifest(repo, referrer.digest)
            except Missing:
                continue
            if artifact.subject is None or artifact.subject.digest != manifest_digest:
                continue
            layers = [layer for layer in artifact.layers if layer.media_type == referrer.artifact_type]
            if len(layers) != 1:
                continue
            kind = kinds[referrer.artifact_type]
            signature = {"kind": kind, "bundle": f"{layout.BUNDLES_DIR}/{layers[0].digest.split(':', 1)[1]}."
                                                 f"{layout.BUNDLE_SUFFIX[kind]}.json"}
            signature.update(_claimed_signer(artifact.annotations.get(oci.SIGNER)))
            self.cache.put(key, json.dumps(signature).encode(), None, None)
            return signature
        return None

    def _yank_reason(self, repo: str, tag: str) -> bool | str:
        try:
            _, yank = self._manifest(repo, tag + oci.YANK_SUFFIX)
        except (Missing, oci.OciFormatError):
            return True
        reason = yank.annotations.get(oci.YANK_REASON, "")
        return reason[:1024] or True

    # -- blobs and bundles: by digest, in the package's repository

    def read_bundle(self, path: str, name: str | None = None) -> bytes | None:
        if name is None or not path.startswith(layout.BUNDLES_DIR + "/"):
            return None
        filename = path[len(layout.BUNDLES_DIR) + 1:]
        if not layout.BUNDLE_FILE_RE.fullmatch(filename):
            return None
        cached = self.cache.get(path)
        if cached is not None and cached.body is not None:
            return cached.body
        if self.offline:
            return None
        try:
            body = self.dist.blob(self.dist.repository(check_name(name)), "sha256:" + filename[:64], layout.MAX_BUNDLE)
        except Missing:
            return None
        self.cache.put(path, body, None, None)
        return body

    def blob_location(self, digest: str, name: str | None = None) -> str:
        """`<repository>@<manifest digest>`: the lock's pin of the manifest (the layer is `digest`)."""
        if name is None:
            raise RegistryUnavailable(f"registry {self.registry.name}: an OCI blob is found by its package's name")
        repo = self.dist.repository(name)
        manifest = self._pins.get((name, digest)) or self._pin_from_cache(name, digest)
        return f"{repo}@{manifest}" if manifest else repo

    def _pin_from_cache(self, name: str, digest: str) -> str | None:
        body = self.peek(self.index_path(name))
        for raw in (body or b"").splitlines():
            if digest.encode() not in raw:
                continue
            try:
                data = bounded_json.loads(raw, max_bytes=MAX_LINE_BYTES)
            except bounded_json.JsonRejected:
                continue
            pin = data.get(PIN) if isinstance(data, dict) and data.get("digest") == digest else None
            manifest = pin.get("manifest") if isinstance(pin, dict) else None
            if isinstance(manifest, str) and oci.DIGEST_RE.fullmatch(manifest):
                return manifest
        return None

    def blob_url(self, digest: str, location: str | None = None, name: str | None = None) -> str:
        """The blob's URL in the repository the name maps to now (`location`, the lock's record of the
        manifest, is not needed to fetch by digest, and a lock cannot send a download elsewhere)."""
        if name is None:
            raise RegistryUnavailable(f"registry {self.registry.name}: an OCI blob is found by its package's name")
        repo = self.dist.repository(name)
        return self.dist.url(repo, "blobs", digest)

    def open_blob(self, url: str, client: httpx.Client | None = None) -> AbstractContextManager[Iterator[bytes]]:
        return self._open(url)

    @contextmanager
    def _open(self, url: str) -> Iterator[Iterator[bytes]]:
        prefix = f"{self.dist.base}/v2/"
        if not url.startswith(prefix) or "/blobs/" not in url:
            raise RegistryUnavailable(f"registry {self.registry.name}: {url[:200]} is not a blob of this registry")
        repo, _, digest = url[len(prefix):].rpartition("/blobs/")
        try:
            with self.dist.open_blob(repo, digest, retryable=True) as chunks:
                yield chunks
        except Missing:
            raise BlobStatus(404) from None


def _is_version(tag: str) -> bool:
    try:
        return str(parse_version(tag)) == tag
    except NameInvalid:
        return False


def _same_version(a: str, b: str) -> bool:
    try:
        return parse_version(a) == parse_version(b)
    except NameInvalid:
        return False


def _claimed_signer(text: str | None) -> dict[str, str]:
    if not text:
        return {}
    try:
        data = bounded_json.loads(text.encode(), max_bytes=4096)
    except bounded_json.JsonRejected:
        return {}
    if not isinstance(data, dict):
        return {}
    return {k: str(data[k])[:1024] for k in ("issuer", "identity") if isinstance(data.get(k), str)}


SCHEMES.update({scheme: OciSource for scheme in ("oci", "oci+http", "oci+https")})
