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
