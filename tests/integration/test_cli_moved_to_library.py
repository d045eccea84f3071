"""What the CLI used to do itself and now asks the library for (issue 18 §5): `index build --check`
(cspm/index/check.py), the signature kind of `cspm verify --bundle` (cspm/verify/sniff.py), and the
user-config edit of `cspm model add` (models.register_local, userconfig.serve_namespace)."""

from __future__ import annotations

import json
import tempfile
from pathlib import Path

import pytest

from cspm import models
from cspm.errors import NameInvalid
from cspm.formats import userconfig
from cspm.index import check, from_sources
from cspm.verify.signature import MAX_BUNDLE, SignatureError
from cspm.verify.sniff import DSSE, SIGSTORE, signature_kind
from tests.integration.test_cli_pm import DEMO, source

PRODUCTION_BUNDLE = Path(__file__).resolve().parents[3] / "shared" / "fixtures" / "sigstore" / (
    "bundle_v3_github.whl.sigstore")


@pytest.fixture(autouse=True)
def own_config_and_cache(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setenv("CSPM_CONFIG_DIR", str(tmp_path / "config"))
    monkeypatch.setenv("CSPM_CACHE_DIR", str(tmp_path / "cache"))


# ---- index build --check -------------------------------------------------------------------------

@pytest.fixture
def sources(tmp_path: Path) -> Path:
    root = tmp_path / "src"
    source(root, "test/echo", "1.0.0", "tool", "c")
    source(root, "test/boss", "1.0.0", "agent", "c")
    demo = root / "demo"
    demo.mkdir()
    (demo / "plugin.yaml").write_text("name: test/demo\nversion: 1.0.0\nkind: app\nabi: 1\napp: app.yaml\n"
                                      "description: an echo demo app\n")
    (demo / "app.yaml").write_text(DEMO)
    return root


def test_check_matches_a_fresh_build_and_names_each_drift(tmp_path: Path, sources: Path,
                                                         monkeypatch: pytest.MonkeyPatch) -> None:
    scratch = tmp_path / "tmp"
    scratch.mkdir()
    monkeypatch.setattr(tempfile, "tempdir", str(scratch))
    out = tmp_path / "registry"
    from_sources.build([sources], out, name="local")
    result = check.check([sources], out, name="local")
    assert result.matches and result.differ == [] and result.packages == 3

    (out / "index" / "test" / "echo").write_text("")  # a registry that drifted from its sources
    (out / "stray").write_text("x")
    lock = sources / "demo" / "app.lock"
    lock.write_text(lock.read_text().replace("test/echo", "test/other"))  # and an app lock that did
    result = check.check([sources], out, name="local")
    assert not result.matches
    assert result.differ == ["stray", "index/test/echo", str(lock)]
    assert "test/other" in lock.read_text()  # a check writes nothing, the lock included
    assert check.check([sources], tmp_path / "none", name="local").differ == [check.MISSING, str(lock)]
    assert list(scratch.iterdir()) == []  # its scratch build is gone


def test_check_removes_its_scratch_build_when_the_build_fails(tmp_path: Path, sources: Path,
                                                              monkeypatch: pytest.MonkeyPatch) -> None:
    scratch = tmp_path / "tmp"
    scratch.mkdir()
    monkeypatch.setattr(tempfile, "tempdir", str(scratch))
    (sources / "echo-1.0.0" / "m.wasm").unlink()
    with pytest.raises(Exception):  # noqa: B017 - whichever error names the missing module
        check.check([sources], tmp_path / "registry", name="local")
    assert list(scratch.iterdir()) == []


# ---- the kind of a signature file ----------------------------------------------------------------

def test_a_dsse_envelope_and_a_sigstore_bundle_are_told_apart() -> None:
    envelope = {"payloadType": "application/vnd.in-toto+json", "payload": "e30=", "signatures": []}
    assert signature_kind(json.dumps(envelope).encode()) == DSSE
    bundle = {"mediaType": "application/vnd.dev.sigstore.bundle.v0.3+json", "verificationMaterial": {},
              "dsseEnvelope": envelope}  # a DSSE envelope inside a bundle does not make it a keyed signature
    assert signature_kind(json.dumps(bundle).encode()) == SIGSTORE
    if PRODUCTION_BUNDLE.is_file():
        assert signature_kind(PRODUCTION_BUNDLE.read_bytes()) == SIGSTORE


@pytest.mark.parametrize("data, says", [
    (b"\x89PNG not json", "not a signature: not JSON"),
    (b"[1, 2]", "JSON list, not an object"),
    (b'{"payloadType": "x"}', "neither a Sigstore bundle"),
    (b'{"mediaType": "application/json"}', "neither a Sigstore bundle"),
    (b"[" * 100_000, "not a signature: not JSON"),
    (b" " * (MAX_BUNDLE + 1), f"larger than {MAX_BUNDLE} bytes"),
])
def test_anything_else_is_refused_saying_what_it_is(data: bytes, says: str) -> None:
    with pytest.raises(SignatureError, match=says) as caught:
        signature_kind(data, "sig.json")
    assert str(caught.value).startswith("sig.json ")


# ---- the user config `cspm model add` edits -------------------------------------------------------

def test_register_local_routes_each_namespace_once(tmp_path: Path) -> None:
    config_file = tmp_path / "config" / userconfig.CONFIG_FILE
    folder = tmp_path / "registry"
    registered = models.register_local(folder, "acme/tiny", config_file)
    assert registered == userconfig.Registry(models.LOCAL_REGISTRY, folder.resolve().as_uri(), ("acme",))
    config = userconfig.load(config_file)
    assert [r.name for r in config.registries] == [models.LOCAL_REGISTRY, userconfig.BUNDLED_NAME]

    written = config_file.read_text()
    assert models.register_local(folder, "acme/other", config_file) is None  # routed already: untouched
    assert config_file.read_text() == written
    again = models.register_local(folder, "beta/x", config_file)
    assert again is not None and again.namespaces == ("acme", "beta")
    assert [r.name for r in userconfig.load(config_file).registries] == ["local", "chainsocket"]  # not moved


def test_serve_namespace_keeps_the_order_of_an_existing_entry(tmp_path: Path) -> None:
    config = userconfig.UserConfig(tmp_path / "c.yaml", [userconfig.Registry("corp", "https://r.example", ("c",)),
                                                         userconfig.Registry("local", "file:///x", ("a",))])
    changed = userconfig.serve_namespace(config, "local", "/x", "b")
    assert changed is not None and changed.namespaces == ("a", "b")
    assert [r.name for r in config.registries] == ["corp", "local"]
    assert userconfig.serve_namespace(config, "local", "/x", "a") is None
    with pytest.raises(NameInvalid, match="namespace 'Bad_Name!' is not allowed"):
        userconfig.serve_namespace(config, "local", "/x", "Bad_Name!")


def test_model_add_through_the_cli_still_registers_the_folder(tmp_path: Path) -> None:
    from tests.integration.test_cli import cspm

    gguf = tmp_path / "tiny.gguf"
    gguf.write_bytes(b"GGUF" + b"\x03\x00\x00\x00" + bytes(16))
    env = {"CSPM_CONFIG_DIR": str(tmp_path / "config"), "CSPM_DATA_DIR": str(tmp_path / "data"),
           "CSPM_CACHE_DIR": str(tmp_path / "cache")}
    result = cspm("model", "add", str(gguf), "--name", "acme/tiny", "--json", env=env)
    assert result.returncode == 0, result.stderr
    answer = json.loads(result.stdout)
    assert answer["registered"] == {"name": "local", "url": (tmp_path / "data" / "registry").resolve().as_uri(),
                                    "namespaces": ["acme"]}
    assert answer["registry_dir"] == str((tmp_path / "data" / "registry").resolve())
