"""Signed publishing end to end: `cspm publish` signs, the server checks, `cspm install` verifies and refuses.

Keyless signatures go through the local Sigstore stack (tests/sigstore_stack.py) with the unmodified
sigstore-python; keyed ones through DSSE/ed25519. Every refusal must say what was expected and found.
"""

from __future__ import annotations

import json
from pathlib import Path

import pytest
import yaml

from tests.integration.test_cli import cspm
from tests.integration.test_cli_pm import source
from tests.integration.test_publish import APP, Server, new_token, registry_cli

pytest.importorskip("cspm_registry", reason="the registry server distribution is not installed")


@pytest.fixture
def world(sigstore_stack, tmp_path: Path, monkeypatch: pytest.MonkeyPatch):  # type: ignore[no-untyped-def]
    """A registry that trusts *@acme.example for `test`, with echo 1.0.0 (alice), 1.1.0 (bob) and boss."""
    trust = tmp_path / "sigstore-trust.json"
    trust.write_text(sigstore_stack.trust_config_json)
    monkeypatch.setenv("CSPM_SIGSTORE_TRUST_CONFIG", str(trust))  # for the server and every cspm
    monkeypatch.setenv("CSPM_CONFIG_DIR", str(tmp_path / "publisher"))
    monkeypatch.setenv("CSPM_CACHE_DIR", str(tmp_path / "publisher-cache"))
    monkeypatch.delenv("CSPM_TOKEN", raising=False)
    server = Server(tmp_path / "data")
    assert registry_cli("trust", "set", "--data", str(server.data), "--namespace", "test", "--issuer",
                        sigstore_stack.issuer, "--identity", "*@acme.example").returncode == 0
    server.start()
    src = tmp_path / "src"
    run(["registry", "add", "remote", server.url, "--namespace", "test", "--namespace", "corp",
         "--namespace", "free"])
    run(["login", "remote", "--token", new_token(server.data, "test", "corp", "free")])
    alice = sigstore_stack.mint_token(email="alice@acme.example")
    bob = sigstore_stack.mint_token(email="bob@acme.example")
    for name, version, lang, token in (("test/echo", "1.0.0", "c", alice), ("test/echo", "1.1.0", "zig", bob),
                                       ("test/boss", "1.0.0", "rust", alice)):
        published = run(["publish", str(source(src, name, version, "agent" if "boss" in name else "tool", lang)),
                         "--identity-token", token])
        assert published["signature"] == "sigstore" and published["signer"].endswith("@acme.example")
    yield sigstore_stack, server, tmp_path
    server.stop()


def run(args: list[str], env: dict[str, str] | None = None) -> dict:
    result = cspm(*args, "--json", env=env)
    assert result.returncode == 0, result.stdout + result.stderr
    return json.loads(result.stdout)


def refused(args: list[str], env: dict[str, str] | None = None) -> str:
    result = cspm(*args, env=env)
    assert result.returncode != 0, result.stdout
    return result.stderr


def consumer(tmp_path: Path, label: str, url: str, trust: dict | None, spec: str = "~1.0") -> tuple[dict, Path]:
    """A second user: own config (the registry, a trust policy), own cache, an app."""
    env = {"CSPM_CONFIG_DIR": str(tmp_path / f"{label}-config"), "CSPM_CACHE_DIR": str(tmp_path / f"{label}-cache")}
    run(["registry", "add", "remote", url], env=env)
    if trust is not None:
        config = Path(env["CSPM_CONFIG_DIR"]) / "config.yaml"
        data = yaml.safe_load(config.read_text())
        data["trust"] = trust
        config.write_text(yaml.safe_dump(data))
    app = tmp_path / label / "app.yaml"
    app.parent.mkdir()
    app.write_text(APP.replace(">=1", spec))
    return env, app


def test_signed_install_and_each_refusal(world) -> None:  # type: ignore[no-untyped-def]
    stack, server, tmp_path = world
    alice_only = {"test/*": {"issuer": stack.issuer, "identity": "alice@acme.example"}}
    env, app = consumer(tmp_path, "good", server.url, alice_only)
    installed = run(["install", str(app)], env=env)
    assert {(s["name"], s["signer"]["identity"], s["rule"]) for s in installed["signatures"]} == {
        ("test/echo", "alice@acme.example", "test/*"), ("test/boss", "alice@acme.example", "test/*")}
    assert all(s["cached"] for s in run(["install", str(app)], env=env)["signatures"])  # warm: verdicts cached
    assert run(["run", str(app), "-i", "signed"], env=env)["output"] == "signed"
    verified = run(["verify", "test/echo@1.0.0"], env=env)
    assert verified["signer"]["identity"] == "alice@acme.example" and verified["policy"] == "test/*"

    env, app = consumer(tmp_path, "other-identity", server.url,
                        {"test/*": {"issuer": stack.issuer, "identity": "carol@acme.example"}})
    stderr = refused(["install", str(app)], env=env)
    assert f"is signed by alice@acme.example ({stack.issuer}), but the trust policy for test/* expects " \
           f"carol@acme.example ({stack.issuer})" in stderr
    stored = [p for p in Path(env["CSPM_CACHE_DIR"], "store", "blobs").rglob("*") if p.is_file()]
    assert stored == []  # refused blobs do not stay in the store

    env, app = consumer(tmp_path, "other-issuer", server.url,
                        {"test/*": {"issuer": stack.other_issuer, "identity": "alice@acme.example"}})
    assert f"expects alice@acme.example ({stack.other_issuer})" in refused(["install", str(app)], env=env)

    # signer change on upgrade: 1.1.0 is bob's
    env, app = consumer(tmp_path, "upgrade", server.url, {"test/*": {"issuer": stack.issuer,
                                                                      "identity": "*@acme.example"}}, spec=">=1")
    app.write_text(APP.replace(">=1", "~1.0"))
    run(["lock", str(app)], env=env)
    app.write_text(APP)
    stderr = refused(["lock", str(app), "--upgrade"], env=env)
    assert f"test/echo 1.0.0 -> 1.1.0: signed by alice@acme.example ({stack.issuer}), now by bob@acme.example" \
           in stderr and "--allow-signer-change" in stderr
    assert run(["lock", str(app), "-U", "--allow-signer-change"], env=env)["changes"][0]["new"] == "1.1.0"

    # a swapped bundle (bob's, for 1.1.0) behind 1.0.0's line, and a tampered blob
    bundles = {json.loads(raw)["version"]: json.loads(raw)["signature"]["bundle"]
               for raw in cspm_get(server.url, "index/test/echo").splitlines()}
    first, second = (server.data / bundles["1.0.0"]), (server.data / bundles["1.1.0"])
    first.chmod(0o644)
    first.write_bytes(second.read_bytes())
    env, app = consumer(tmp_path, "swapped", server.url, alice_only)
    assert "does not verify for this blob" in refused(["install", str(app)], env=env)


def cspm_get(url: str, path: str) -> str:
    import httpx

    return httpx.get(f"{url}/{path}").text


def test_unsigned_where_required_and_keyed_round_trip(world) -> None:  # type: ignore[no-untyped-def]
    stack, server, tmp_path = world
    src = tmp_path / "src2"
    run(["publish", str(source(src, "free/thing", "1.0.0", "tool", "c")), "--no-sign"])
    key = tmp_path / "corp.pem"
    public = run(["keygen", str(key)])["public_key"]
    assert registry_cli("trust", "set", "--data", str(server.data), "--namespace", "corp", "--key",
                        public).returncode == 0
    assert run(["publish", str(source(src / "corp", "corp/thing", "1.0.0", "tool", "c")), "--key", str(key)])[
        "signature"] == "dsse-ed25519"
    other = run(["keygen", str(tmp_path / "other.pem")])["public_key"]
    stderr = refused(["publish", str(source(src / "corp", "corp/thing", "1.1.0", "tool", "c")), "--key",
                      str(tmp_path / "other.pem")])
    assert "expected one of" in stderr

    tool_app = ("entry: t\ntools:\n  - {name: t, plugin: \"NAME@1\", config: {kind: tool}}\n")
    env, app = consumer(tmp_path, "unsigned", server.url, {"free/*": {"issuer": stack.issuer, "identity": "x@y"}})
    app.write_text(tool_app.replace("NAME", "free/thing"))
    assert "free/thing 1.0.0 is not signed, but the trust policy for free/* requires a signature by x@y" in \
        refused(["install", str(app)], env=env)

    env, app = consumer(tmp_path, "keyed", server.url, {"corp/*": {"keys": [public]}})
    app.write_text(tool_app.replace("NAME", "corp/thing"))
    installed = run(["install", str(app)], env=env)
    assert installed["signatures"][0]["signer"]["issuer"] == "key:ed25519"
    assert run(["run", str(app), "-i", "keyed"], env=env)["output"] == "keyed"
    env, app = consumer(tmp_path, "wrong-key", server.url, {"corp/*": {"keys": [other]}})
    app.write_text(tool_app.replace("NAME", "corp/thing"))
    assert "expected one of" in refused(["install", str(app)], env=env)


def test_a_tampered_blob_on_the_registry_is_refused(world) -> None:  # type: ignore[no-untyped-def]
    stack, server, tmp_path = world
    line = json.loads(cspm_get(server.url, "index/test/boss").splitlines()[0])
    blob = server.data / "blobs" / "sha256" / line["digest"].split(":")[1]
    blob.chmod(0o644)
    data = bytearray(blob.read_bytes())
    data[-1] ^= 0xFF  # same size, one byte changed
    blob.write_bytes(bytes(data))
    env, app = consumer(tmp_path, "tampered", server.url, {"test/*": {"issuer": stack.issuer,
                                                                       "identity": "*@acme.example"}})
    stderr = refused(["install", str(app)], env=env)
    assert "test/boss 1.0.0" in stderr and "registry remote" in stderr and "digest" in stderr

