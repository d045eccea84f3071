"""`cspm inspect oci://host[:port]/repo[:tag|@digest]`: does a module from an OCI registry fit ABI 1?

Reads cspm packages (their `application/wasm` layer), the CNCF Wasm artifact, the older
wasm-to-oci layer, and hyper-mcp-style images (a tar or gzip tar layer holding `plugin.wasm`, the
existing catalogue of Extism plug-ins), so a user can try one before writing an app around it.
Everything is bounded: the manifest, an image index's choice, the layer's size, the tar's members
(only a regular file is read, never a link, and no path is ever written to disk).
"""

from __future__ import annotations

import gzip
import io
import tarfile
from dataclasses import dataclass
from urllib.parse import urlsplit

from cspm.errors import CspmError, InterfaceError
from cspm.formats.userconfig import Registry
from cspm.index.oci_client import Distribution, Missing
from cspm.protocol import oci
from cspm.verify.wasm import Interface, WasmFormatError, read_interface

MAX_LAYER = 256 * 1024 * 1024
WASM_LAYERS = (oci.WASM_LAYER, "application/vnd.wasm.content.layer.v1+wasm")
WASM_NAMES = ("plugin.wasm", "/plugin.wasm")


@dataclass
class Found:
    reference: str
    manifest: str  # the manifest's digest
    layer: str  # the layer's media type
    member: str | None  # the file inside a tar layer
    module: bytes
    package: dict | None  # a cspm package's index line, when it is one


def parse_reference(text: str, known: list[Registry] | None = None) -> tuple[Registry, str, str]:
    """(registry, repository, tag or digest) of `oci://host[:port]/repo[:tag|@digest]` (tag `latest` by default).
    The registry takes the name of a configured one on the same host, so its login is used."""
    parts = urlsplit(text)
    if not parts.scheme.startswith("oci") or not parts.netloc or len(text) > 2048:
        raise CspmError(f"{text[:200]!r} is not an OCI reference", hint="write oci://HOST[:PORT]/REPOSITORY[:TAG]")
    path = parts.path.strip("/")
    if "@" in path:
        repo, reference = path.split("@", 1)
    else:
        head, _, last = path.rpartition("/")
        repo_tail, _, tag = last.partition(":")
        repo, reference = (f"{head}/{repo_tail}" if head else repo_tail), tag or "latest"
    if not oci.REPOSITORY_RE.fullmatch(repo) or not (oci.TAG_RE.fullmatch(reference) or
                                                     oci.DIGEST_RE.fullmatch(reference)):
        raise CspmError(f"{text[:200]!r}: {repo[:100]!r} or {reference[:100]!r} is not a repository and tag or digest")
    same = next((r for r in known or [] if urlsplit(r.url).netloc.lower() == parts.netloc.lower()
                 and r.url.startswith("oci")), None)
    return Registry(same.name if same else "oci", f"{parts.scheme}://{parts.netloc}"), repo, reference


def fetch_module(text: str, known: list[Registry] | None = None) -> Found:
    registry, repo, reference = parse_reference(text, known)
    dist = Distribution(registry)
    try:
        fetched = dist.manifest(repo, reference)
        manifest = _parse(fetched.body, text)
        digest = fetched.digest
        if manifest.manifests:  # an image index: the Wasm platform, else the only entry
            choice = _choose(manifest.manifests, text)
            fetched = dist.manifest(repo, choice.digest)
            manifest, digest = _parse(fetched.body, text), fetched.digest
        package = None
        if oci.INDEX_LINE in manifest.annotations:
            try:
                package = oci.index_line_of(manifest, text)
            except oci.OciFormatError as exc:
                raise CspmError(str(exc)) from None
        for layer in manifest.layers:
            if layer.media_type in WASM_LAYERS and layer.size <= MAX_LAYER:
                return Found(text, digest, layer.media_type, None, dist.blob(repo, layer.digest, MAX_LAYER), package)
        for layer in manifest.layers:
            if layer.media_type in oci.TAR_LAYERS and layer.size <= MAX_LAYER:
                member, module = _from_tar(dist.blob(repo, layer.digest, MAX_LAYER), text)
                if module is not None:
                    return Found(text, digest, layer.media_type, member, module, package)
        kinds = ", ".join(sorted({layer.media_type for layer in manifest.layers})) or "none"
        raise CspmError(f"{text}: no Wasm module in it (layers: {kinds[:400]})",
                        hint="cspm reads an application/wasm layer, or a tar layer holding plugin.wasm")
    except Missing:
        raise CspmError(f"{text}: the registry has no such repository, tag or digest") from None
    finally:
        dist.close()


def fit(found: Found) -> dict:
    """The report of `cspm inspect oci://…`: whether the module fits ABI 1, and why not."""
    try:
        interface = read_interface(found.module)
    except WasmFormatError as exc:
        raise InterfaceError(f"{found.reference}: the module is not a usable wasm module: {exc}") from None
    problems = interface.problems(allow_wasi=True)
    import hashlib

    return {"reference": found.reference, "manifest": found.manifest, "layer": found.layer, "member": found.member,
            "digest": "sha256:" + hashlib.sha256(found.module).hexdigest(), "size": len(found.module),
            "package": found.package, "fits_abi1": not problems, "problems": problems,
            "exports": sorted(n for n, kind in interface.exports.items() if kind == "func"),
            "imports": sorted({f"{module}::{name}" for module, name, _ in interface.imports}),
            "wasi": interface.uses_wasi, "advice": _advice(interface, problems)}


def _advice(interface: Interface, problems: list[str]) -> str:
    if not problems:
        return "it fits ABI 1: use it from app.yaml with `plugin: ./path.wasm` (pull it with `oras pull`), or " \
               "publish it as a cspm package"
    exports = set(interface.exports)
    if {"call", "describe"} <= exports:
        return "an MCP-style Extism plug-in (hyper-mcp: `describe` and `call` with MCP JSON): it does not speak " \
               "ABI 1's request and answer shapes, so it cannot be a Chainsocket tool as it is"
    return "it is not a Chainsocket plug-in as it is: see the problems"


def _parse(body: bytes, where: str) -> oci.Manifest:
    try:
        return oci.parse_manifest(body, where)
    except oci.OciFormatError as exc:
        raise CspmError(str(exc)) from None


def _choose(entries: tuple[oci.Descriptor, ...], where: str) -> oci.Descriptor:
    if len(entries) == 1:
        return entries[0]
    raise CspmError(f"{where} is an image index of {len(entries)} manifests",
                    hint="name one of them by digest: oci://HOST/REPOSITORY@sha256:…")


def _from_tar(data: bytes, where: str) -> tuple[str | None, bytes | None]:
    """`plugin.wasm` (else the only `.wasm`) of a tar or gzip tar layer, read in memory, regular files only."""
    if data[:2] == b"\x1f\x8b":
        try:
            data = _gunzip(data)
        except (OSError, EOFError) as exc:
            raise CspmError(f"{where}: the layer is not a readable gzip file ({exc})") from None
    try:
        with tarfile.open(fileobj=io.BytesIO(data), mode="r:") as archive:
            members = [m for m in archive.getmembers()[:10_000] if m.isfile() and m.name.endswith(".wasm")]
            chosen = next((m for m in members if m.name.lstrip("./") in ("plugin.wasm",)), None)
            if chosen is None and len(members) == 1:
                chosen = members[0]
            if chosen is None or chosen.size > MAX_LAYER:
                return None, None
            handle = archive.extractfile(chosen)
            return (chosen.name, handle.read(MAX_LAYER + 1)) if handle is not None else (None, None)
    except tarfile.TarError as exc:
        raise CspmError(f"{where}: the layer is not a readable tar file ({exc})") from None


def _gunzip(data: bytes) -> bytes:
    """Bounded: a small gzip that inflates past MAX_LAYER (a bomb) is refused."""
    out = bytearray()
    with gzip.GzipFile(fileobj=io.BytesIO(data)) as stream:
        while chunk := stream.read(1 << 20):
            out += chunk
            if len(out) > MAX_LAYER:
                raise OSError(f"it inflates past {MAX_LAYER} bytes")
    return bytes(out)
