"""A hostile OCI registry: a loopback server that answers the distribution API with crafted bodies.

Each answer is something a compromised registry or proxy could send; cspm must refuse it, naming the
registry, or skip the version with a warning, and never use what it sent.
"""

from __future__ import annotations

import hashlib
import json
import threading
from collections.abc import Callable, Iterator
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer

import pytest

from cspm.errors import RegistryAuthError, RegistryUnavailable
from cspm.formats.userconfig import Registry
from cspm.index.oci_client import Distribution
from cspm.index.oci_source import OciSource
from cspm.index.source import source_for
from cspm.protocol import oci

Answer = tuple[int, dict[str, str], bytes]


@pytest.fixture
def registry() -> Iterator[tuple[dict[str, Callable[[], Answer]], str]]:
    """Routes (path -> answer) of a server on loopback, and its oci:// URL."""
    routes: dict[str, Callable[[], Answer]] = {}

    class Handler(BaseHTTPRequestHandler):
        def log_message(self, *args: object) -> None:
            pass

        def _answer(self, body: bool) -> None:
            status, headers, data = routes.get(self.path.split("?")[0], lambda: (404, {}, b"{}"))()
            self.send_response(status)
            for key, value in headers.items():
                self.send_header(key, value)
            self.send_header("Content-Length", str(len(data)))
            self.end_headers()
            if body:
                self.wfile.write(data)

        def do_GET(self) -> None:
            self._answer(True)

        def do_HEAD(self) -> None:
            self._answer(False)

    server = ThreadingHTTPServer(("127.0.0.1", 0), Handler)
    threading.Thread(target=server.serve_forever, daemon=True).start()
    try:
        yield routes, f"oci://127.0.0.1:{server.server_address[1]}/p"
    finally:
        server.shutdown()


def _manifest(line: dict, layer_bytes: bytes) -> bytes:
    layer = oci.Descriptor(oci.WASM_LAYER, "sha256:" + hashlib.sha256(layer_bytes).hexdigest(), len(layer_bytes))
    config = oci.Descriptor(oci.WASM_CONFIG, "sha256:" + "0" * 64, 2)
    return oci.package_manifest(line, config, layer, "2026-01-01T00:00:00Z")


def _line(name: str = "t/echo", version: str = "1.0.0", module: bytes = b"\0asm\1\0\0\0") -> dict:
    return {"name": name, "version": version, "kind": "tool", "abi": 1, "exports": ["call"], "imports": [],
            "capabilities": {}, "digest": "sha256:" + hashlib.sha256(module).hexdigest(), "size": len(module)}


def _serve_manifest(routes: dict, repo: str, tag: str, body: bytes) -> None:
    digest = "sha256:" + hashlib.sha256(body).hexdigest()
    headers = {"Content-Type": oci.IMAGE_MANIFEST, "Docker-Content-Digest": digest}
    routes[f"/v2/{repo}/manifests/{tag}"] = lambda: (200, headers, body)
    routes[f"/v2/{repo}/manifests/{digest}"] = lambda: (200, headers, body)


def test_a_manifest_fetched_by_digest_must_hash_to_it(registry) -> None:  # type: ignore[no-untyped-def]
    routes, url = registry
    wanted = "sha256:" + "a" * 64
    routes[f"/v2/p/t/echo/manifests/{wanted}"] = lambda: (200, {"Content-Type": oci.IMAGE_MANIFEST}, b"{}")
    dist = Distribution(Registry("evil", url))
    with pytest.raises(RegistryUnavailable, match="with a manifest whose digest is sha256:"):
        dist.manifest("p/t/echo", wanted)


def test_a_version_whose_manifest_lies_is_skipped_with_a_warning(registry) -> None:  # type: ignore[no-untyped-def]
    routes, url = registry
    tags = {"name": "p/t/echo", "tags": ["1.0.0", "1.1.0", "2.0.0", "latest", "sha256-" + "b" * 64]}
    routes["/v2/p/t/echo/tags/list"] = lambda: (200, {"Content-Type": "application/json"}, json.dumps(tags).encode())
    _serve_manifest(routes, "p/t/echo", "1.0.0", _manifest(_line(), b"\0asm\1\0\0\0"))
    _serve_manifest(routes, "p/t/echo", "1.1.0", _manifest(_line(name="t/other", version="1.1.0"), b"\0asm\1\0\0\0"))
    lying = json.loads(_manifest(_line(version="2.0.0"), b"\0asm\1\0\0\0"))
    lying["layers"][0]["size"] = 99  # the annotation's size no longer matches the layer
    _serve_manifest(routes, "p/t/echo", "2.0.0", oci.dumps(lying))
    warnings: list[str] = []
    source = source_for(Registry("evil", url), warn=warnings.append)
    assert isinstance(source, OciSource)
    body = source.read("index/t/echo").body
    assert body is not None
    versions = [json.loads(line)["version"] for line in body.splitlines()]
    assert versions == ["1.0.0"]
    assert any("the manifest is of t/other 1.1.0, not of this tag" in w for w in warnings)
    assert any("but the layer is" in w for w in warnings)


@pytest.mark.parametrize(("status", "body", "match"), [
    (200, b"[" * 100_000, "not JSON cspm reads"),
    (200, json.dumps({"tags": ["x"] * (oci.MAX_TAGS + 1)}).encode(), "larger than|at most"),
    (500, b'{"errors": [{"code": "UNKNOWN", "message": "disk on fire"}]}', "HTTP 500.*disk on fire"),
])
def test_bad_tag_lists_are_refused(registry, status: int, body: bytes, match: str) -> None:  # type: ignore[no-untyped-def]
    routes, url = registry
    routes["/v2/p/t/echo/tags/list"] = lambda: (status, {"Content-Type": "application/json"}, body)
    with pytest.raises(RegistryUnavailable, match=match):
        Distribution(Registry("evil", url)).tags("p/t/echo")


def test_a_token_realm_on_plain_http_elsewhere_is_refused(registry) -> None:  # type: ignore[no-untyped-def]
    routes, url = registry
    routes["/v2/p/t/echo/tags/list"] = lambda: (401, {"WWW-Authenticate": 'Bearer realm="http://evil.example/token",'
                                                                           'service="x"'}, b"{}")
    with pytest.raises(RegistryAuthError, match="token service cspm does not trust"):
        Distribution(Registry("evil", url)).tags("p/t/echo")


def test_a_huge_blob_is_cut_off(registry) -> None:  # type: ignore[no-untyped-def]
    routes, url = registry
    routes["/v2/p/t/echo/blobs/sha256:" + "c" * 64] = lambda: (200, {}, b"x" * 5000)
    with pytest.raises(RegistryUnavailable, match="larger than 1000 bytes"):
        Distribution(Registry("evil", url)).blob("p/t/echo", "sha256:" + "c" * 64, 1000)


def test_a_blob_with_other_bytes_is_refused(registry) -> None:  # type: ignore[no-untyped-def]
    routes, url = registry
    routes["/v2/p/t/echo/blobs/sha256:" + "d" * 64] = lambda: (200, {}, b"not it")
    with pytest.raises(RegistryUnavailable, match="with other bytes: refused"):
        Distribution(Registry("evil", url)).blob("p/t/echo", "sha256:" + "d" * 64, 1000)


@pytest.mark.parametrize("body", [
    b"{}", b'{"schemaVersion": 2, "layers": "x", "config": {}}',
    b'{"schemaVersion": 2, "mediaType": "text/html", "layers": []}',
    b'{"schemaVersion": 2, "config": {"mediaType": "a", "digest": "md5:x", "size": 1}, "layers": []}',
    b'{"schemaVersion": 2, "config": {"mediaType": "a", "digest": "sha256:' + b"0" * 64 + b'", "size": -1}, '
    b'"layers": []}',
    b'{"schemaVersion": 2, "annotations": {"a": 1}, "layers": []}',
])
def test_malformed_manifests_are_refused(body: bytes) -> None:
    with pytest.raises(oci.OciFormatError):
        oci.parse_manifest(body, "test")


def test_a_signature_is_found_through_the_referrers_api(registry) -> None:  # type: ignore[no-untyped-def]
    """Where a registry has the OCI 1.1 referrers API (distribution 2.8 has not: test_oci.py covers the tag
    fallback), the signature referrer comes from it; one whose subject is another manifest is ignored."""
    routes, url = registry
    routes["/v2/p/t/echo/tags/list"] = lambda: (200, {}, json.dumps({"tags": ["1.0.0"]}).encode())
    package = _manifest(_line(), b"\0asm\1\0\0\0")
    _serve_manifest(routes, "p/t/echo", "1.0.0", package)
    package_digest = "sha256:" + hashlib.sha256(package).hexdigest()
    bundle = b'{"a sigstore bundle": true}'
    bundle_digest = "sha256:" + hashlib.sha256(bundle).hexdigest()
    subject = oci.Descriptor(oci.IMAGE_MANIFEST, package_digest, len(package))
    signature = oci.referrer_manifest(oci.SIGSTORE_BUNDLE, oci.Descriptor(oci.SIGSTORE_BUNDLE, bundle_digest,
                                                                          len(bundle)),
                                      subject, {oci.SIGNER: '{"issuer": "https://issuer", "identity": "a@b"}'})
    stray = oci.referrer_manifest(oci.SIGSTORE_BUNDLE, oci.Descriptor(oci.SIGSTORE_BUNDLE, "sha256:" + "e" * 64, 9),
                                  oci.Descriptor(oci.IMAGE_MANIFEST, "sha256:" + "f" * 64, 9), {})
    entries = []
    for body in (stray, signature):
        digest = "sha256:" + hashlib.sha256(body).hexdigest()
        _serve_manifest(routes, "p/t/echo", digest, body)
        entries.append(oci.Descriptor(oci.IMAGE_MANIFEST, digest, len(body), oci.SIGSTORE_BUNDLE))
    routes[f"/v2/p/t/echo/referrers/{package_digest}"] = lambda: (
        200, {"Content-Type": oci.IMAGE_INDEX}, oci.referrers_index(entries))
    routes[f"/v2/p/t/echo/blobs/{bundle_digest}"] = lambda: (200, {}, bundle)
    source = source_for(Registry("good", url))
    body = source.read("index/t/echo").body
    assert body is not None
    line = json.loads(body)
    assert line["signature"] == {"kind": "sigstore", "bundle": f"bundles/sha256/{bundle_digest[7:]}.sigstore.json",
                                 "issuer": "https://issuer", "identity": "a@b"}
    assert line["oci"] == {"repository": "p/t/echo", "manifest": package_digest}
    assert source.read_bundle(line["signature"]["bundle"], "t/echo") == bundle
