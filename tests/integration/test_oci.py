"""OCI registries as cspm registries, against a real CNCF distribution registry on loopback (tests/oci_support.py).

Publish (signed through the local Sigstore stack, with the unmodified sigstore-python), resolve, lock,
install, run; then what an attacker or an accident can do to a registry: a tampered layer, a
re-pushed tag, no login, a signature from the wrong identity; and `oras`, a client no one here wrote,
reading what cspm pushed.
"""

from __future__ import annotations

import gzip
import hashlib
import io
import json
import tarfile
from pathlib import Path

import pytest
import yaml

from cspm.formats.userconfig import Registry
from cspm.index.oci_client import Distribution, endpoint
from cspm.protocol import oci
from tests.conftest import conformance_wasm
from tests.integration.test_cli import cspm
from tests.integration.test_cli_pm import source
from tests.oci_support import PASSWORD, USERNAME, OciRegistry, oci_registry  # noqa: F401

APP = """\
entry: boss
tools:
  - {name: echo, plugin: "test/echo@>=1", config: {kind: tool}}
agents:
  - {name: boss, plugin: "test/boss@^1", config: {kind: agent}, tools: [echo]}
"""
LOGIN = {"CSPM_TOKEN_OCI": PASSWORD, "CSPM_USERNAME_OCI": USERNAME}


def run(args: list[str], env: dict[str, str] | None = None) -> dict:
    result = cspm(*args, "--json", env=env)
    assert result.returncode == 0, result.stdout + result.stderr
    return json.loads(result.stdout)


def refused(args: list[str], env: dict[str, str] | None = None) -> str:
    result = cspm(*args, env=env)
    assert result.returncode != 0, result.stdout
    return result.stderr


@pytest.fixture
def world(sigstore_stack, oci_registry: OciRegistry, tmp_path: Path,  # type: ignore[no-untyped-def]  # noqa: F811
          monkeypatch: pytest.MonkeyPatch):
    """test/echo 1.0.0 (alice), 1.1.0 (bob) and test/boss 1.0.0 (alice), published to the OCI registry."""
    trust = tmp_path / "sigstore-trust.json"
    trust.write_text(sigstore_stack.trust_config_json)
    monkeypatch.setenv("CSPM_SIGSTORE_TRUST_CONFIG", str(trust))
    monkeypatch.setenv("CSPM_CONFIG_DIR", str(tmp_path / "publisher"))
    monkeypatch.setenv("CSPM_CACHE_DIR", str(tmp_path / "publisher-cache"))
    monkeypatch.setenv("DOCKER_CONFIG", str(tmp_path / "no-docker"))
    for name in ("CSPM_TOKEN", "CSPM_USERNAME"):
        monkeypatch.delenv(name, raising=False)
    run(["registry", "add", "oci", oci_registry.url, "--namespace", "test"])
    run(["login", "oci", "--username", USERNAME, "--token", PASSWORD])
    src = tmp_path / "src"
    alice = sigstore_stack.mint_token(email="alice@acme.example")
    bob = sigstore_stack.mint_token(email="bob@acme.example")
    for name, version, lang, token in (("test/echo", "1.0.0", "c", alice), ("test/echo", "1.1.0", "zig", bob),
                                       ("test/boss", "1.0.0", "rust", alice)):
        published = run(["publish", str(source(src, name, version, "agent" if "boss" in name else "tool", lang)),
                         "--identity-token", token])
        assert published["signature"] == "sigstore" and published["signer"].endswith("@acme.example")
        assert published["repository"] == f"cspm/{name}" and published["manifest"].startswith("sha256:")
    return sigstore_stack, oci_registry, tmp_path


def consumer(tmp_path: Path, label: str, registry: OciRegistry, trust: dict | None, spec: str = "~1.0",
             login: bool = True) -> tuple[dict, Path]:
    env = {"CSPM_CONFIG_DIR": str(tmp_path / f"{label}-config"), "CSPM_CACHE_DIR": str(tmp_path / f"{label}-cache"),
           **(LOGIN if login else {})}
    run(["registry", "add", "oci", registry.url, "--namespace", "test"], env=env)
    if trust is not None:
        config = Path(env["CSPM_CONFIG_DIR"]) / "config.yaml"
        data = yaml.safe_load(config.read_text())
        data["trust"] = trust
        config.write_text(yaml.safe_dump(data))
    app = tmp_path / label / "app.yaml"
    app.parent.mkdir()
    app.write_text(APP.replace(">=1", spec))
    return env, app


def test_publish_resolve_lock_install_run(world) -> None:  # type: ignore[no-untyped-def]
    stack, registry, tmp_path = world
    env, app = consumer(tmp_path, "good", registry, {"test/*": {"issuer": stack.issuer,
                                                                 "identity": "alice@acme.example"}})
    installed = run(["install", str(app)], env=env)
    assert {(s["name"], s["signer"]["identity"]) for s in installed["signatures"]} == {
        ("test/echo", "alice@acme.example"), ("test/boss", "alice@acme.example")}
    lock = yaml.safe_load(app.with_suffix(".lock").read_text())
    echo = next(p for p in lock["plugins"] if p["name"] == "test/echo")
    assert echo["version"] == "1.0.0" and echo["registry"] == "oci"
    assert echo["digest"] == "sha256:" + hashlib.sha256(conformance_wasm("c").read_bytes()).hexdigest()
    repo, _, manifest = echo["blob"].partition("@")  # the manifest is pinned, never the tag
    assert repo == "cspm/test/echo" and oci.DIGEST_RE.fullmatch(manifest)
    assert echo["signature"]["kind"] == "sigstore"
    assert run(["run", str(app), "-i", "from oci"], env=env)["output"] == "from oci"
    verified = run(["verify", "test/echo@1.0.0"], env=env)  # the bundle read from its referrer
    assert verified["signer"]["identity"] == "alice@acme.example" and verified["kind"] == "sigstore"

    # `cspm info` and an upgrade across signers work as with any registry
    info = run(["info", "test/echo"], env=env)
    assert [v["version"] for v in info["versions"]][-2:] == ["1.0.0", "1.1.0"]

    # offline from the warm cache: nothing asks the registry
    registry.stop()
    assert run(["run", str(app), "-i", "offline", "--offline"], env=env)["output"] == "offline"


def test_missing_login_and_wrong_identity_are_refused(world) -> None:  # type: ignore[no-untyped-def]
    stack, registry, tmp_path = world
    env, app = consumer(tmp_path, "anonymous", registry, None, login=False)
    stderr = refused(["install", str(app)], env=env)
    assert "registry oci needs a login" in stderr and "cspm login oci --username" in stderr

    env, app = consumer(tmp_path, "carol", registry, {"test/*": {"issuer": stack.issuer,
                                                                  "identity": "carol@acme.example"}})
    stderr = refused(["install", str(app)], env=env)
    assert "is signed by alice@acme.example" in stderr and "expects carol@acme.example" in stderr
    assert [p for p in Path(env["CSPM_CACHE_DIR"], "store", "blobs").rglob("*") if p.is_file()] == []

    bad = dict(env, CSPM_TOKEN_OCI="wrong-password")
    assert "refused the login" in refused(["install", str(app)], env=bad)


def test_a_tampered_layer_is_refused(world) -> None:  # type: ignore[no-untyped-def]
    stack, registry, tmp_path = world
    digest = "sha256:" + hashlib.sha256(conformance_wasm("c").read_bytes()).hexdigest()
    layer = registry.blob_file(digest)
    data = bytearray(layer.read_bytes())
    data[len(data) // 2] ^= 0xFF
    layer.write_bytes(bytes(data))  # the registry serves whatever is on its disk
    env, app = consumer(tmp_path, "tampered", registry, {"test/*": {"issuer": stack.issuer,
                                                                     "identity": "*@acme.example"}})
    stderr = refused(["install", str(app)], env=env)
    assert "test/echo 1.0.0" in stderr and digest in stderr
    assert not any(p.name == digest.split(":")[1] for p in Path(env["CSPM_CACHE_DIR"]).rglob("*"))


def test_a_repushed_tag_keeps_the_locked_digest_and_is_reported(world) -> None:  # type: ignore[no-untyped-def]
    stack, registry, tmp_path = world
    env, app = consumer(tmp_path, "locked", registry, {"test/*": {"issuer": stack.issuer,
                                                                   "identity": "*@acme.example"}})
    run(["install", str(app)], env=env)
    before = app.with_suffix(".lock").read_text()
    pinned = next(p for p in yaml.safe_load(before)["plugins"] if p["name"] == "test/echo")

    # someone pushes another module under the tag 1.0.0 (as `docker push` of a moved tag would)
    other = conformance_wasm("go").read_bytes()
    dist = Distribution(Registry("oci", registry.url), login=(USERNAME, PASSWORD))
    repo = "cspm/test/echo"
    line = {"name": "test/echo", "version": "1.0.0", "kind": "tool", "abi": 1, "size": len(other),
            "digest": "sha256:" + hashlib.sha256(other).hexdigest(), "exports": ["call"], "imports": [],
            "capabilities": {}}
    config = dist.push_blob(repo, oci.wasm_config("2026-01-01T00:00:00Z"))
    layer = dist.push_blob(repo, other)
    body = oci.package_manifest(line, oci.Descriptor(oci.WASM_CONFIG, config.digest, config.size),
                                oci.Descriptor(oci.WASM_LAYER, layer.digest, layer.size), "2026-01-01T00:00:00Z")
    dist.push_manifest(repo, "1.0.0", body, oci.IMAGE_MANIFEST)
    dist.close()

    app.write_text(app.read_text() + "# touched\n")
    locked = cspm("lock", str(app), "--upgrade-package", "test/boss", env=env)
    assert locked.returncode == 0, locked.stderr
    assert f"now has test/echo 1.0.0 as {line['digest']}" in locked.stderr and pinned["digest"] in locked.stderr
    after = next(p for p in yaml.safe_load(app.with_suffix(".lock").read_text())["plugins"]
                 if p["name"] == "test/echo")
    assert after["digest"] == pinned["digest"] and after["blob"] == pinned["blob"]

    fresh = dict(env, CSPM_CACHE_DIR=str(tmp_path / "fresh-cache"))  # the old blob, by digest, still installs
    result = cspm("install", str(app), env=fresh)
    assert result.returncode == 0, result.stderr
    assert "re-published under the same tag" in result.stderr
    assert run(["run", str(app), "-i", "pinned"], env=fresh)["output"] == "pinned"


def test_yank_and_unyank(world) -> None:  # type: ignore[no-untyped-def]
    _, registry, tmp_path = world
    run(["yank", "test/echo@1.1.0", "--reason", "broken on zig"])
    env, app = consumer(tmp_path, "yank", registry, None, spec=">=1")
    locked = run(["lock", str(app)], env=env)
    echo = next(p for p in yaml.safe_load(app.with_suffix(".lock").read_text())["plugins"] if p["name"] == "test/echo")
    assert echo["version"] == "1.0.0", locked
    info = run(["info", "test/echo"], env=env)
    assert next(v for v in info["versions"] if v["version"] == "1.1.0")["yanked"] == "broken on zig"
    run(["yank", "test/echo@1.1.0", "--undo"])
    run(["lock", str(app), "--upgrade", "--allow-signer-change"], env=env)  # 1.1.0 is bob's
    echo = next(p for p in yaml.safe_load(app.with_suffix(".lock").read_text())["plugins"] if p["name"] == "test/echo")
    assert echo["version"] == "1.1.0"


def test_a_version_is_never_replaced_by_publish(world, tmp_path: Path) -> None:  # type: ignore[no-untyped-def]
    _, registry, _ = world
    folder = source(tmp_path / "again", "test/echo", "1.0.0", "tool", "go")
    stderr = refused(["publish", str(folder), "--no-sign"])
    assert "test/echo 1.0.0 is already published in registry oci" in stderr
    # a URL that is not in the config: pushed there, with the login of the environment
    other = f"oci://{registry.host}/elsewhere"
    published = run(["publish", str(folder), "--no-sign", "--registry", other], env=LOGIN)
    assert published["repository"] == "elsewhere/test/echo" and published["registry"] == "oci"


def test_oras_reads_what_cspm_published(world, tmp_path: Path) -> None:  # type: ignore[no-untyped-def]
    import oras.client

    _, registry, _ = world
    client = oras.client.OrasClient(hostname=registry.host, insecure=True, auth_backend="basic")
    client.login(username=USERNAME, password=PASSWORD, hostname=registry.host,
                 config_path=str(tmp_path / "docker-config.json"))
    files = client.pull(target=f"{registry.host}/cspm/test/echo:1.0.0", outdir=str(tmp_path / "pulled"))
    data = [Path(f).read_bytes() for f in files if Path(f).is_file()]
    assert conformance_wasm("c").read_bytes() in data
    manifest = client.get_manifest(f"{registry.host}/cspm/test/echo:1.0.0")
    assert manifest["config"]["mediaType"] == oci.WASM_CONFIG
    assert [layer["mediaType"] for layer in manifest["layers"]] == [oci.WASM_LAYER]
    assert json.loads(manifest["annotations"][oci.INDEX_LINE])["name"] == "test/echo"


def _push_image(dist: Distribution, repo: str, tag: str, files: dict[str, bytes]) -> None:
    """A hyper-mcp-style image: a gzip tar layer holding the files, with an empty config."""
    raw = io.BytesIO()
    with tarfile.open(fileobj=raw, mode="w") as archive:
        for name, data in files.items():
            member = tarfile.TarInfo(name)
            member.size = len(data)
            archive.addfile(member, io.BytesIO(data))
    layer = dist.push_blob(repo, gzip.compress(raw.getvalue()))
    config = dist.push_blob(repo, b'{"architecture":"wasm","os":"wasip1"}')
    body = oci.dumps({"schemaVersion": 2, "mediaType": oci.IMAGE_MANIFEST,
                      "config": {"mediaType": "application/vnd.oci.image.config.v1+json", "digest": config.digest,
                                 "size": config.size},
                      "layers": [{"mediaType": oci.TAR_LAYERS[0], "digest": layer.digest, "size": layer.size}]})
    dist.push_manifest(repo, tag, body, oci.IMAGE_MANIFEST)


def test_inspect_hyper_mcp_style_images(oci_registry: OciRegistry, tmp_path: Path,  # noqa: F811
                                        monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setenv("CSPM_CONFIG_DIR", str(tmp_path / "config"))
    env = LOGIN
    run(["registry", "add", "oci", oci_registry.url], env=env)
    dist = Distribution(Registry("oci", oci_registry.url), login=(USERNAME, PASSWORD))
    _push_image(dist, "hyper/echo", "v1", {"plugin.wasm": conformance_wasm("c").read_bytes()})
    mcp_style = _mcp_style_module(tmp_path)
    _push_image(dist, "hyper/mcp", "v1", {"README.md": b"hi", "plugin.wasm": mcp_style})
    dist.close()

    fits = run(["inspect", f"oci://{oci_registry.host}/hyper/echo:v1"], env=env)
    assert fits["fits_abi1"] is True and fits["member"] == "plugin.wasm" and "call" in fits["exports"]
    assert fits["digest"] == "sha256:" + hashlib.sha256(conformance_wasm("c").read_bytes()).hexdigest()
    result = cspm("inspect", f"oci://{oci_registry.host}/hyper/mcp:v1", "--json", env=env)
    assert result.returncode == 1, result.stderr
    report = json.loads(result.stdout)
    assert report["fits_abi1"] is False and "describe" in report["exports"]
    assert any("`mcp_notify` from extism:host/user, which is not a Chainsocket host function" in p
               for p in report["problems"])
    assert "MCP-style" in report["advice"]
    missing = cspm("inspect", f"oci://{oci_registry.host}/hyper/nothing:v1", env=env)
    assert missing.returncode == 1 and "no such repository, tag or digest" in missing.stderr


def _mcp_style_module(tmp_path: Path) -> bytes:
    """A module shaped like a hyper-mcp plug-in: exports `call` and `describe`, imports a host function
    cspm does not provide."""
    import subprocess

    wat = tmp_path / "mcp.wat"
    wat.write_text('(module (import "extism:host/user" "mcp_notify" (func (param i64)))'
                   ' (memory (export "memory") 1)'
                   ' (func (export "call") (result i32) i32.const 0)'
                   ' (func (export "describe") (result i32) i32.const 0))')
    out = tmp_path / "mcp.wasm"
    subprocess.run(["wat2wasm", str(wat), "-o", str(out)], check=True)
    return out.read_bytes()


def test_plain_http_only_on_loopback_or_by_opt_in() -> None:
    assert endpoint("oci://127.0.0.1:5000/cspm") == ("http://127.0.0.1:5000", "cspm")
    assert endpoint("oci://localhost:5000") == ("http://localhost:5000", "")
    assert endpoint("oci://registry.example.com/team/cspm") == ("https://registry.example.com", "team/cspm")
    assert endpoint("oci+http://registry.example.com/x") == ("http://registry.example.com", "x")
    with pytest.raises(Exception, match="not a repository prefix"):
        endpoint("oci://registry.example.com/UPPER")


def test_data_model_and_app_packages_travel_through_oci(oci_registry: OciRegistry, tmp_path: Path,  # noqa: F811
                                                         monkeypatch: pytest.MonkeyPatch) -> None:
    """Every kind has its media type; a published app runs by name (`cspm run demo/app@1`) from OCI."""
    from tests.integration.test_models import GGUF

    monkeypatch.setenv("CSPM_CONFIG_DIR", str(tmp_path / "config"))
    monkeypatch.setenv("CSPM_CACHE_DIR", str(tmp_path / "cache"))
    monkeypatch.setenv("DOCKER_CONFIG", str(tmp_path / "no-docker"))
    for name, value in LOGIN.items():
        monkeypatch.setenv(name, value)
    run(["registry", "add", "oci", oci_registry.url, "--namespace", "demo"])
    src = tmp_path / "src"
    source(src, "demo/echo", "1.0.0", "tool", "c")
    (src / "kb").mkdir()
    (src / "kb" / "people.jsonl").write_text('{"name": "Ada", "born": 1815}\n')
    (src / "kb" / "plugin.yaml").write_text("name: demo/people\nversion: 1.0.0\nkind: data\nabi: 1\n"
                                            "file: people.jsonl\n")
    (src / "model").mkdir()
    (src / "model" / "tiny.gguf").write_bytes(GGUF)
    (src / "model" / "plugin.yaml").write_text("name: demo/tiny\nversion: 1.0.0\nkind: model\nabi: 1\n"
                                               "file: tiny.gguf\n")
    for folder in ("echo-1.0.0", "kb", "model"):
        run(["publish", str(src / folder), "--no-sign"])
    (src / "app").mkdir()
    (src / "app" / "plugin.yaml").write_text("name: demo/app\nversion: 1.0.0\nkind: app\nabi: 1\napp: app.yaml\n")
    (src / "app" / "app.yaml").write_text("entry: t\ntools:\n  - name: t\n    plugin: demo/echo@1\n"
                                          "    config: {kind: tool}\n    data: {kb: demo/people@1}\n"
                                          "    models: {tiny: demo/tiny@1}\n")
    run(["lock", str(src / "app" / "app.yaml")])
    run(["publish", str(src / "app"), "--no-sign"])

    dist = Distribution(Registry("oci", oci_registry.url), login=(USERNAME, PASSWORD))
    for name, layer in (("demo/people", "application/vnd.dev.chainsocket.data"),
                        ("demo/tiny", "application/vnd.dev.chainsocket.model.gguf"),
                        ("demo/app", "application/vnd.dev.chainsocket.app.v1.tar")):
        manifest = oci.parse_manifest(dist.manifest(f"cspm/{name}", "1.0.0").body, name)
        assert [d.media_type for d in manifest.layers] == [layer]
        assert manifest.config is not None and manifest.config.media_type == oci.EMPTY_CONFIG
    dist.close()

    monkeypatch.setenv("CSPM_CACHE_DIR", str(tmp_path / "user-cache"))
    ran = run(["run", "demo/app@1", "-i", "from an oci app"])
    assert ran["output"] == "from an oci app"
    mounted = list((tmp_path / "user-cache" / "data").rglob("people.jsonl"))
    assert [p.read_text() for p in mounted] == ['{"name": "Ada", "born": 1815}\n']


def test_parallel_first_requests_share_one_login(oci_registry: OciRegistry) -> None:  # noqa: F811
    """Eight downloads on a new client all meet the registry's first 401: each must retry with the login
    another thread set up, never report it refused."""
    import os
    from concurrent.futures import ThreadPoolExecutor

    registry = Registry("oci", oci_registry.url)
    dist = Distribution(registry, login=(USERNAME, PASSWORD))
    blobs = [dist.push_blob("cspm/race/x", os.urandom(1000)) for _ in range(8)]
    dist.close()
    for _ in range(3):
        fresh = Distribution(registry, login=(USERNAME, PASSWORD))
        with ThreadPoolExecutor(8) as pool:
            errors = [f.exception() for f in [pool.submit(fresh.blob, "cspm/race/x", b.digest, 10_000) for b in blobs]]
        fresh.close()
        assert errors == [None] * 8, errors
