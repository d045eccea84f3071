"""cspm packages as OCI artifacts: media types, annotations, tags, and the manifests cspm writes and reads.

One module for both directions (docs/registry.md, "OCI registries"): `cspm publish` builds manifests
here and the OCI source parses them here, so the layout has one definition. A package is the CNCF
Wasm OCI artifact (image manifest, config `application/vnd.wasm.config.v0+json` with `os: wasip1`,
one `application/wasm` layer); models, data and app packages use cspm's own media types. cspm's
metadata is the package's index line, in the manifest annotation `dev.chainsocket.index-line`, so
one manifest read gives everything resolution needs. A version is a tag; a yank is the tag
`<version>.yanked`; a signature is an artifact whose `subject` is the package manifest, found by the
OCI 1.1 referrers API or its tag fallback `sha256-<hex>` (an image index of referrers).

Everything read from a registry is untrusted: a manifest is parsed with `bounded_json`, bounded in
size, and its digest is checked by the client before this module sees it; a wrong shape is an
`OciFormatError` naming what is wrong.
"""

from __future__ import annotations

import json
import re
from dataclasses import dataclass
from typing import Any

from cspm.formats import bounded_json
from cspm.formats.index_line import to_line

IMAGE_MANIFEST = "application/vnd.oci.image.manifest.v1+json"
IMAGE_INDEX = "application/vnd.oci.image.index.v1+json"
DOCKER_MANIFEST = "application/vnd.docker.distribution.manifest.v2+json"
DOCKER_LIST = "application/vnd.docker.distribution.manifest.list.v2+json"
MANIFEST_TYPES = (IMAGE_MANIFEST, IMAGE_INDEX, DOCKER_MANIFEST, DOCKER_LIST)

WASM_CONFIG = "application/vnd.wasm.config.v0+json"
WASM_LAYER = "application/wasm"
EMPTY_CONFIG = "application/vnd.oci.empty.v1+json"
EMPTY_BLOB = b"{}"
SIGSTORE_BUNDLE = "application/vnd.dev.sigstore.bundle.v0.3+json"
DSSE_ENVELOPE = "application/vnd.dev.chainsocket.dsse.v1+json"
YANK = "application/vnd.dev.chainsocket.yank.v1+json"
# the layer of each package kind that is not a Wasm module (its config is the empty config)
LAYER_OF_KIND = {"model": "application/vnd.dev.chainsocket.model.gguf",
                 "data": "application/vnd.dev.chainsocket.data",
                 "app": "application/vnd.dev.chainsocket.app.v1.tar"}
ARTIFACT_OF_KIND = {"model": "application/vnd.dev.chainsocket.model.v1",
                    "data": "application/vnd.dev.chainsocket.data.v1",
                    "app": "application/vnd.dev.chainsocket.app.v1"}
SIGNATURE_TYPES = {"sigstore": SIGSTORE_BUNDLE, "dsse-ed25519": DSSE_ENVELOPE}
# hyper-mcp and other Extism catalogues: an image whose layer is a (gzip) tar holding plugin.wasm
TAR_LAYERS = ("application/vnd.oci.image.layer.v1.tar+gzip", "application/vnd.oci.image.layer.v1.tar",
              "application/vnd.docker.image.rootfs.diff.tar.gzip")

INDEX_LINE = "dev.chainsocket.index-line"  # the package's index line (JSON), without signature and yanked
SIGNER = "dev.chainsocket.signer"  # on a signature artifact: the signer the publisher claims (verified on use)
YANK_REASON = "dev.chainsocket.yank.reason"
VERSION = "org.opencontainers.image.version"
TITLE = "org.opencontainers.image.title"
DESCRIPTION = "org.opencontainers.image.description"
CREATED = "org.opencontainers.image.created"

MAX_MANIFEST = 4 * 1024 * 1024  # as distribution's own limit
MAX_TAGS = 10_000
TAG_RE = re.compile(r"[A-Za-z0-9_][A-Za-z0-9._-]{0,127}")
REPOSITORY_RE = re.compile(r"[a-z0-9]+(?:(?:\.|_|__|-+)[a-z0-9]+)*(?:/[a-z0-9]+(?:(?:\.|_|__|-+)[a-z0-9]+)*)*")
DIGEST_RE = re.compile(r"sha256:[0-9a-f]{64}")
YANK_SUFFIX = ".yanked"


class OciFormatError(ValueError):
    """A manifest, index or tag list that is not what cspm reads."""


@dataclass(frozen=True)
class Descriptor:
    media_type: str
    digest: str
    size: int
    artifact_type: str | None = None
    annotations: dict[str, str] | None = None

    def to_dict(self) -> dict[str, Any]:
        out: dict[str, Any] = {"mediaType": self.media_type, "digest": self.digest, "size": self.size}
        if self.artifact_type:
            out["artifactType"] = self.artifact_type
        if self.annotations:
            out["annotations"] = self.annotations
        return out


@dataclass(frozen=True)
class Manifest:
    media_type: str
    config: Descriptor | None
    layers: tuple[Descriptor, ...]
    annotations: dict[str, str]
    artifact_type: str | None = None
    subject: Descriptor | None = None
    manifests: tuple[Descriptor, ...] = ()  # an image index's entries


def tag_of(version: str) -> str:
    """The tag of a version: the version itself. A version a tag cannot spell (`+local`, `1!2`) is refused."""
    if not TAG_RE.fullmatch(version):
        raise OciFormatError(f"version {version!r} cannot be an OCI tag (letters, digits, `.`, `_`, `-`; at most 128)")
    return version


def yank_tag(version: str) -> str:
    return tag_of(version) + YANK_SUFFIX


def fallback_tag(digest: str) -> str:
    """The referrers tag schema of OCI 1.1: `sha256-<hex>` names the index of a manifest's referrers."""
    return digest.replace(":", "-")


def repository(prefix: str, name: str) -> str:
    """`prefix/ns/name` (no prefix: `ns/name`), checked against the distribution spec's grammar."""
    repo = f"{prefix.strip('/')}/{name}" if prefix.strip("/") else name
    if len(repo) > 255 or not REPOSITORY_RE.fullmatch(repo):
        raise OciFormatError(f"{repo[:300]!r} is not an OCI repository name")
    return repo


def dumps(document: dict[str, Any]) -> bytes:
    """Canonical bytes: the same manifest always has the same digest."""
    return json.dumps(document, sort_keys=True, separators=(",", ":"), ensure_ascii=False).encode()


def wasm_config(created: str) -> bytes:
    """The CNCF Wasm artifact's config (`os: wasip1`, `architecture: wasm`)."""
    return dumps({"architecture": "wasm", "os": "wasip1", "created": created, "layerDigests": []})


def package_manifest(line: dict[str, Any], config: Descriptor, layer: Descriptor, created: str) -> bytes:
    """The manifest of one published version: its index line goes in an annotation (minus what changes
    after publishing: `signature` is a referrer, `yanked` a tag)."""
    recorded = {k: v for k, v in line.items() if k not in ("signature", "yanked", "published")}
    annotations = {INDEX_LINE: to_line(recorded), VERSION: line["version"], TITLE: line["name"], CREATED: created}
    if line.get("description"):
        annotations[DESCRIPTION] = str(line["description"])[:4096]
    document: dict[str, Any] = {"schemaVersion": 2, "mediaType": IMAGE_MANIFEST, "config": config.to_dict(),
                                "layers": [layer.to_dict()], "annotations": annotations}
    if line["kind"] in ARTIFACT_OF_KIND:
        document["artifactType"] = ARTIFACT_OF_KIND[line["kind"]]
    return dumps(document)


def layer_type(kind: str) -> str:
    return LAYER_OF_KIND.get(kind, WASM_LAYER)


def config_type(kind: str) -> str:
    return EMPTY_CONFIG if kind in LAYER_OF_KIND else WASM_CONFIG


def referrer_manifest(artifact_type: str, layer: Descriptor, subject: Descriptor,
                      annotations: dict[str, str]) -> bytes:
    """A signature or yank: an artifact with the empty config, whose `subject` is the package manifest."""
    empty = Descriptor(EMPTY_CONFIG, empty_digest(), len(EMPTY_BLOB))
    return dumps({"schemaVersion": 2, "mediaType": IMAGE_MANIFEST, "artifactType": artifact_type,
                  "config": empty.to_dict(), "layers": [layer.to_dict()], "subject": subject.to_dict(),
                  "annotations": annotations})


def referrers_index(entries: list[Descriptor]) -> bytes:
    return dumps({"schemaVersion": 2, "mediaType": IMAGE_INDEX, "manifests": [e.to_dict() for e in entries]})


def empty_digest() -> str:
    import hashlib

    return "sha256:" + hashlib.sha256(EMPTY_BLOB).hexdigest()


def parse_manifest(body: bytes, where: str) -> Manifest:
    """An image manifest or image index (OCI or Docker v2), checked for the fields cspm uses."""
    try:
        data = bounded_json.loads(body, max_bytes=MAX_MANIFEST)
    except bounded_json.JsonRejected as exc:
        raise OciFormatError(f"{where}: the manifest is not JSON cspm reads: {exc}") from None
    if not isinstance(data, dict) or data.get("schemaVersion") != 2:
        raise OciFormatError(f"{where}: not an OCI manifest (schemaVersion 2)")
    media_type = data.get("mediaType")
    if media_type is None:  # OCI allows it absent: tell by the shape
        media_type = IMAGE_INDEX if "manifests" in data else IMAGE_MANIFEST
    if media_type not in MANIFEST_TYPES:
        raise OciFormatError(f"{where}: manifest media type {str(media_type)[:100]!r} is not one cspm reads")
    annotations = _annotations(data.get("annotations"), where)
    artifact_type = data.get("artifactType")
    if artifact_type is not None and not isinstance(artifact_type, str):
        raise OciFormatError(f"{where}: artifactType is not a string")
    subject = _descriptor(data["subject"], f"{where}: subject") if data.get("subject") is not None else None
    if media_type in (IMAGE_INDEX, DOCKER_LIST):
        manifests = data.get("manifests")
        if not isinstance(manifests, list) or len(manifests) > 4096:
            raise OciFormatError(f"{where}: an image index needs a list of manifests")
        return Manifest(media_type, None, (), annotations, artifact_type, subject,
                        tuple(_descriptor(m, f"{where}: manifests[{i}]") for i, m in enumerate(manifests)))
    layers = data.get("layers")
    if not isinstance(layers, list) or len(layers) > 1024:
        raise OciFormatError(f"{where}: a manifest needs a list of layers")
    config = _descriptor(data.get("config"), f"{where}: config")
    return Manifest(media_type, config, tuple(_descriptor(layer, f"{where}: layers[{i}]")
                                              for i, layer in enumerate(layers)), annotations, artifact_type, subject)


def _descriptor(raw: Any, where: str) -> Descriptor:
    if not isinstance(raw, dict):
        raise OciFormatError(f"{where}: not a descriptor")
    media_type, digest, size = raw.get("mediaType"), raw.get("digest"), raw.get("size")
    if not isinstance(media_type, str) or len(media_type) > 255:
        raise OciFormatError(f"{where}: mediaType is missing")
    if not isinstance(digest, str) or not DIGEST_RE.fullmatch(digest):
        raise OciFormatError(f"{where}: digest {str(digest)[:100]!r} is not a sha256 digest")
    if type(size) is not int or not 0 <= size <= 1 << 40:
        raise OciFormatError(f"{where}: size is not a byte count")
    artifact_type = raw.get("artifactType")
    return Descriptor(media_type, digest, size, artifact_type if isinstance(artifact_type, str) else None,
                      _annotations(raw.get("annotations"), where))


def _annotations(raw: Any, where: str) -> dict[str, str]:
    if raw is None:
        return {}
    if not isinstance(raw, dict) or not all(isinstance(k, str) and isinstance(v, str) for k, v in raw.items()):
        raise OciFormatError(f"{where}: annotations must map strings to strings")
    return dict(raw)


def index_line_of(manifest: Manifest, where: str) -> dict[str, Any]:
    """The index line a package manifest carries, its digest and size checked against its one layer
    (the line is then checked like any registry's, by `index_line.from_dict`)."""
    text = manifest.annotations.get(INDEX_LINE)
    if text is None:
        raise OciFormatError(f"{where}: not a cspm package (no {INDEX_LINE} annotation)")
    try:
        line = bounded_json.loads(text.encode(), max_bytes=256 * 1024)
    except bounded_json.JsonRejected as exc:
        raise OciFormatError(f"{where}: {INDEX_LINE} is not JSON cspm reads: {exc}") from None
    if not isinstance(line, dict):
        raise OciFormatError(f"{where}: {INDEX_LINE} is not a JSON object")
    payload = [layer for layer in manifest.layers if layer.media_type == layer_type(str(line.get("kind")))]
    if len(payload) != 1:
        raise OciFormatError(f"{where}: a cspm package has exactly one {layer_type(str(line.get('kind')))} layer")
    if line.get("digest") != payload[0].digest or line.get("size") != payload[0].size:
        raise OciFormatError(f"{where}: the index line names {str(line.get('digest'))[:80]} "
                             f"({line.get('size')!s:.20} bytes), but the layer is {payload[0].digest} "
                             f"({payload[0].size} bytes)")
    return line


def parse_tags(body: bytes, where: str) -> list[str]:
    """`GET /v2/<name>/tags/list`: the tags, each checked against the tag grammar."""
    try:
        data = bounded_json.loads(body, max_bytes=MAX_TAGS * 160)
    except bounded_json.JsonRejected as exc:
        raise OciFormatError(f"{where}: the tag list is not JSON cspm reads: {exc}") from None
    tags = data.get("tags") if isinstance(data, dict) else None
    if tags is None:
        return []
    if not isinstance(tags, list) or len(tags) > MAX_TAGS:
        raise OciFormatError(f"{where}: the tag list is not a list of at most {MAX_TAGS} tags")
    return [t for t in tags if isinstance(t, str) and TAG_RE.fullmatch(t)]
