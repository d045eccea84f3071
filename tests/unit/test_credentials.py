"""Registry tokens: stored only for the user, overridable from the environment, never echoed."""

from __future__ import annotations

import stat
from pathlib import Path

import pytest

from cspm import credentials
from cspm.errors import CspmError
from cspm.publish import frame


@pytest.fixture(autouse=True)
def own_config(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setenv("CSPM_CONFIG_DIR", str(tmp_path / "config"))
    monkeypatch.delenv("CSPM_TOKEN", raising=False)
    monkeypatch.delenv("CSPM_TOKEN_MY_REG", raising=False)


def test_saved_token_is_private_and_env_wins(monkeypatch: pytest.MonkeyPatch) -> None:
    where = credentials.save("my-reg", "csr_secret-token-1234")
    assert stat.S_IMODE(where.stat().st_mode) == 0o600
    assert credentials.token_for("my-reg") == "csr_secret-token-1234"
    assert credentials.token_for("other") is None
    monkeypatch.setenv("CSPM_TOKEN", "csr_from-ci-everywhere")
    assert credentials.token_for("other") == "csr_from-ci-everywhere"
    monkeypatch.setenv("CSPM_TOKEN_MY_REG", "csr_from-ci-for-my-reg")
    assert credentials.token_for("my-reg") == "csr_from-ci-for-my-reg"
    assert credentials.forget("my-reg") and not credentials.forget("my-reg")


@pytest.mark.parametrize("bad", ["", "short", "has space inside", "x" * 600, "tab\there"])
def test_bad_tokens_are_refused_without_echoing_them(bad: str) -> None:
    with pytest.raises(CspmError) as info:
        credentials.save("my-reg", bad)
    assert "does not look like a registry token" in info.value.message
    assert not bad.strip() or bad.strip() not in info.value.message


def test_publish_framing() -> None:
    body = frame({"name": "a/b"}, b"\0asm", b"")
    head_len = int.from_bytes(body[:4], "little")
    assert body[4:4 + head_len] == b'{"manifest":{"name":"a/b"}}'
    rest = body[4 + head_len:]
    assert rest[:4] == (4).to_bytes(4, "little") and rest[4:8] == b"\0asm" and rest[8:] == (0).to_bytes(4, "little")


def test_oci_login_order_env_then_saved_then_docker(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    import base64
    import json

    from cspm.formats.userconfig import Registry

    registry = Registry("my-reg", "oci://registry.example.com:5000/team")
    monkeypatch.setenv("DOCKER_CONFIG", str(tmp_path / "docker"))
    assert credentials.oci_login(registry) == (None, "nowhere")
    (tmp_path / "docker").mkdir()
    auth = base64.b64encode(b"docker-user:docker-pass").decode()
    (tmp_path / "docker" / "config.json").write_text(json.dumps(
        {"auths": {"registry.example.com:5000": {"auth": auth}, "other.example.com": {"auth": "bm9wZTpub3Bl"}}}))
    assert credentials.oci_login(registry)[0] == ("docker-user", "docker-pass")
    saved = credentials.save("my-reg", "saved-pass word!", username="saved-user")
    assert stat.S_IMODE(saved.stat().st_mode) == 0o600
    assert credentials.oci_login(registry) == (("saved-user", "saved-pass word!"), str(saved))
    assert credentials.token_for("my-reg") is None  # an OCI login is not a registry-server token
    monkeypatch.setenv("CSPM_TOKEN_MY_REG", "from-ci")
    monkeypatch.setenv("CSPM_USERNAME_MY_REG", "ci-user")
    assert credentials.oci_login(registry) == (("ci-user", "from-ci"), "$CSPM_TOKEN_MY_REG")
    monkeypatch.delenv("CSPM_USERNAME_MY_REG")
    assert credentials.oci_login(registry)[0] == (credentials.DEFAULT_USERNAME, "from-ci")
    with pytest.raises(CspmError, match="cannot be used"):
        credentials.save("my-reg", "line\nbreak", username="u")
    (tmp_path / "docker" / "config.json").write_text('{"auths": {"registry.example.com:5000": {"auth": "%%%"}}}')
    monkeypatch.delenv("CSPM_TOKEN_MY_REG")
    credentials.forget("my-reg")
    with pytest.raises(CspmError, match="not base64"):
        credentials.oci_login(registry)


def test_a_cached_verdict_is_keyed_by_the_trusted_root(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    """A verdict proven under one Sigstore trust config is not reused under another (nor after a refresh)."""
    from cspm import provenance
    from cspm.verify.signature import Rule

    rule = Rule("ns/*", "https://issuer", "a@b", ())
    monkeypatch.delenv("CSPM_SIGSTORE_TRUST_CONFIG", raising=False)
    production = provenance._fingerprint(rule, None)
    first, second = tmp_path / "one.json", tmp_path / "two.json"
    first.write_text('{"root": 1}')
    second.write_text('{"root": 2}')
    monkeypatch.setenv("CSPM_SIGSTORE_TRUST_CONFIG", str(first))
    under_first = provenance._fingerprint(rule, None)
    monkeypatch.setenv("CSPM_SIGSTORE_TRUST_CONFIG", str(second))
    assert len({production, under_first, provenance._fingerprint(rule, None)}) == 3
    monkeypatch.setenv("CSPM_CACHE_DIR", str(tmp_path / "cache"))
    provenance._remember("sha256:" + "a" * 64, under_first, None)
    assert provenance._cached("sha256:" + "a" * 64, under_first) is not None
    assert provenance.forget_verdicts() == 1
    assert provenance._cached("sha256:" + "a" * 64, under_first) is None
