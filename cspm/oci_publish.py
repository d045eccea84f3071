"""`cspm publish`, `cspm yank` and `cspm login` for an OCI registry (`oci://host/prefix`, docs/registry.md).

A publish pushes, in an order that never shows a reader half a version: the config and the layer
blobs, the manifest by its digest (untagged: invisible to resolution), the signature artifact
(whose `subject` is that manifest) and, on a registry without the referrers API, the referrers
index at the fallback tag; only then the version tag. A reader that sees the tag sees everything.

A version is immutable: a tag that exists is refused before anything is pushed (two publishers
racing can still both tag: an OCI registry has no compare-and-swap on tags, which is why a lock
pins digests and reports a re-pushed tag instead of following it).
"""

from __future__ import annotations

import time
from typing import Any
from urllib.parse import urlsplit

from cspm.errors import CspmError, PublishError
from cspm.formats.names import parse_version
from cspm.formats.userconfig import Registry
from cspm.index.oci_client import Distribution, Missing
from cspm.protocol import oci

OCI_SCHEMES = ("oci", "oci+http", "oci+https")
OCI_URLS = tuple(f"{scheme}://" for scheme in OCI_SCHEMES)
ADHOC_NAME = "oci"  # `--registry oci://…` not in the config: its login is CSPM_TOKEN_OCI or Docker's


def is_oci(registry: Registry) -> bool:
    return urlsplit(registry.url).scheme.lower() in OCI_SCHEMES


def publish(line: dict[str, Any], blob: bytes, registry: Registry, *, bundle: bytes = b"",
            signature_kind: str | None = None) -> dict[str, Any]:
    """Push one version; returns {digest, manifest, repository, tag, published, signer}."""
    name, version, kind = line["name"], line["version"], line["kind"]
    try:
        tag = oci.tag_of(version)
    except oci.OciFormatError as exc:
        raise PublishError(f"{name} {version}: {exc}", hint="publish a version without `+local` or `!` to an "
                                                            "OCI registry") from None
    dist = Distribution(registry)
    try:
        repo = dist.repository(name)
        if dist.head_manifest(repo, tag) is not None:
            raise PublishError(f"{name} {version} is already published in registry {registry.name} "
                               f"({repo}:{tag}); a version is never replaced",
                               hint="raise the version in plugin.yaml and publish again")
        created = time.strftime("%Y-%m-%dT%H:%M:%SZ", time.gmtime())
        config_body = oci.wasm_config(created) if oci.config_type(kind) == oci.WASM_CONFIG else oci.EMPTY_BLOB
        config = dist.push_blob(repo, config_body)
        layer = dist.push_blob(repo, blob)
        if layer.digest != line["digest"]:
            raise PublishError(f"{name} {version}: the layer's digest {layer.digest} is not the line's "
                               f"{line['digest']}")
        body = oci.package_manifest(line, oci.Descriptor(oci.config_type(kind), config.digest, config.size),
                                    oci.Descriptor(oci.layer_type(kind), layer.digest, layer.size), created)
        manifest, _ = dist.push_manifest(repo, _digest_of(body), body, oci.IMAGE_MANIFEST)
        signer = None
        if bundle and signature_kind:
            signer = claimed_signer(bundle, signature_kind)
            _push_referrer(dist, repo, oci.SIGNATURE_TYPES[signature_kind], bundle,
                           oci.Descriptor(oci.IMAGE_MANIFEST, manifest, len(body)),
                           {oci.SIGNER: _json(signer)} if signer else {})
        dist.push_manifest(repo, tag, body, oci.IMAGE_MANIFEST)
    finally:
        dist.close()
    return {"digest": layer.digest, "manifest": manifest, "repository": repo, "tag": tag, "published": created,
            "signer": signer.get("identity") if signer else None}


def yank(name: str, version: str, registry: Registry, *, undo: bool = False, reason: str | None = None
         ) -> dict[str, Any]:
    """Yank: the tag `<version>.yanked` names an artifact whose subject is the version's manifest (its
    annotation carries the reason). Undo deletes that artifact (the registry must allow deletes)."""
    tag = oci.tag_of(str(parse_version(version)))
    dist = Distribution(registry)
    try:
        repo = dist.repository(name)
        if undo:
            current = dist.head_manifest(repo, oci.yank_tag(tag))
            if current is not None:
                try:
                    dist.delete_manifest(repo, current)
                except CspmError as exc:
                    raise PublishError(f"registry {registry.name} refused to delete {repo}:{oci.yank_tag(tag)}: "
                                       f"{exc.message}", hint="the registry must allow deletes (distribution: "
                                                              "storage.delete.enabled)") from None
            return {"name": name, "version": tag, "yanked": False}
        try:
            target = dist.manifest(repo, tag, (oci.IMAGE_MANIFEST,))
        except Missing:
            raise PublishError(f"{name} {version} is not in registry {registry.name} ({repo}:{tag})") from None
        note = reason or ""
        _push_referrer(dist, repo, oci.YANK, note.encode() or b"yanked",
                       oci.Descriptor(oci.IMAGE_MANIFEST, target.digest, len(target.body)),
                       {oci.YANK_REASON: note[:1024]} if note else {}, tag=oci.yank_tag(tag), index=False)
    finally:
        dist.close()
    return {"name": name, "version": tag, "yanked": reason or True}


def check_login(registry: Registry, username: str, password: str) -> None:
    """Ask the registry for `/v2/` with this login before it is saved (RegistryAuthError when refused)."""
    dist = Distribution(registry, login=(username, password))
    try:
        dist.check_login(dist.prefix or "cspm")
    finally:
        dist.close()


def claimed_signer(bundle: bytes, kind: str) -> dict[str, str] | None:
    """Who signed, as the bundle says (readers verify it before trusting it): a Fulcio certificate's
    issuer and identity, or the DSSE envelope's key id."""
    from cspm.formats import bounded_json
    from cspm.verify import signature

    try:
        if kind == "sigstore":
            from sigstore.models import Bundle

            found = signature.cert_signer(Bundle.from_json(bundle).signing_certificate)
            return found.to_dict()
        data = bounded_json.loads(bundle, max_bytes=signature.MAX_BUNDLE)
        keyid = data["signatures"][0]["keyid"]
        return {"issuer": signature.KEY_ISSUER, "identity": str(keyid)}
    except Exception:  # a bundle we cannot read is still pushed; readers verify it or refuse it
        return None


def _push_referrer(dist: Distribution, repo: str, artifact_type: str, payload: bytes, subject: oci.Descriptor,
                   annotations: dict[str, str], *, tag: str | None = None, index: bool = True) -> str:
    """Push an artifact that refers to `subject`; where the registry did not process `subject` (no
    referrers API), add it to the fallback index at `sha256-<hex>` (read, extend, put back)."""
    layer = dist.push_blob(repo, payload)
    dist.push_blob(repo, oci.EMPTY_BLOB)
    body = oci.referrer_manifest(artifact_type, oci.Descriptor(artifact_type, layer.digest, layer.size), subject,
                                 annotations)
    digest, processed = dist.push_manifest(repo, tag or _digest_of(body), body, oci.IMAGE_MANIFEST)
    if index and not processed:
        entries = [e for e in dist.referrers_by_tag(repo, subject.digest) if e.digest != digest]
        entries.append(oci.Descriptor(oci.IMAGE_MANIFEST, digest, len(body), artifact_type, annotations or None))
        dist.push_manifest(repo, oci.fallback_tag(subject.digest), oci.referrers_index(entries), oci.IMAGE_INDEX)
    return digest


def _digest_of(body: bytes) -> str:
    import hashlib

    return "sha256:" + hashlib.sha256(body).hexdigest()


def _json(value: Any) -> str:
    import json

    return json.dumps(value, sort_keys=True, separators=(",", ":"))
