"""Keyed signatures (DSSE over an in-toto statement, ed25519) and trust rules, without any network."""

from __future__ import annotations

import json
import stat
from pathlib import Path

import pytest

from cspm.errors import CspmError
from cspm.verify.signature import KEY_ISSUER, Rule, SignatureError, Signer, key_id, keygen, rule_for, sign_keyed, verify

DIGEST = "sha256:" + "ab" * 32
OTHER = "sha256:" + "cd" * 32


@pytest.fixture
def key(tmp_path: Path) -> tuple[bytes, str]:
    public = keygen(tmp_path / "key.pem")
    return (tmp_path / "key.pem").read_bytes(), public


def check(envelope: bytes | None, rule: Rule | None, digest: str = DIGEST, name: str = "acme/calc",
          pinned: Signer | None = None) -> Signer | None:
    return verify(envelope, "dsse-ed25519" if envelope else None, name=name, digest=digest, what="acme/calc 1.0.0",
                  rule=rule, pinned=pinned)


def test_keygen_is_private_and_never_overwrites(tmp_path: Path, key: tuple[bytes, str]) -> None:
    assert stat.S_IMODE((tmp_path / "key.pem").stat().st_mode) == 0o600
    assert key[1].startswith("ed25519:") and len(key[1]) == 8 + 64
    with pytest.raises(CspmError, match="already exists"):
        keygen(tmp_path / "key.pem")


def test_round_trip_and_every_refusal(tmp_path: Path, key: tuple[bytes, str]) -> None:
    private, public = key
    envelope, signed_public = sign_keyed(private, "acme/calc", "1.0.0", DIGEST)
    assert signed_public == public
    rule = Rule("acme/*", keys=(public,))
    assert check(envelope, rule) == Signer(KEY_ISSUER, key_id(public))
    other_public = keygen(tmp_path / "other.pem")
    with pytest.raises(SignatureError, match=f"signed by key {key_id(public)}, expected one of {key_id(other_public)}"):
        check(envelope, Rule("acme/*", keys=(other_public,)))
    with pytest.raises(SignatureError, match=f"the signature is for {DIGEST}, not for this blob"):
        check(envelope, rule, digest=OTHER)
    with pytest.raises(SignatureError, match="the signature is for acme/calc, not acme/other"):
        check(envelope, rule, name="acme/other")
    with pytest.raises(SignatureError, match=r"the signature is for version 1\.0\.0, not 1\.2\.0"):
        verify(envelope, "dsse-ed25519", name="acme/calc", digest=DIGEST, what="x", rule=rule, version="1.2.0")
    assert check(envelope, Rule("acme/*", keys=(public.upper().replace("ED25519", "ed25519"),))) is not None
    tampered = json.loads(envelope)
    tampered["payload"] = tampered["payload"][:-4] + "AAA="
    with pytest.raises(SignatureError, match="signed by key"):
        check(json.dumps(tampered).encode(), rule)
    with pytest.raises(SignatureError, match="not a DSSE envelope"):
        check(b"{nonsense", rule)
    with pytest.raises(SignatureError, match="is not signed, but the trust policy for acme/\\* requires"):
        check(None, rule)
    assert check(None, None) is None  # nothing asks for a signature
    with pytest.raises(SignatureError, match="but the lock pins"):
        check(envelope, rule, pinned=Signer(KEY_ISSUER, "0" * 16))


def test_rules_most_specific_first_and_user_config_first() -> None:
    user = {"acme/*": {"issuer": "https://token.actions.githubusercontent.com",
                       "identity": "https://github.com/acme/*/.github/workflows/release.yml@refs/tags/*"}}
    registry = {"acme/*": {"keys": ["ed25519:" + "00" * 32]}, "acme/calc": {"require": False}}
    rule = rule_for("acme/calc", user, registry)
    assert rule is not None and rule.pattern == "acme/*" and rule.issuer.startswith("https://token")
    assert rule.accepts(Signer(rule.issuer, "https://github.com/acme/calc/.github/workflows/release.yml@refs/tags/v1"))
    assert not rule.accepts(Signer(rule.issuer, "https://github.com/evil/calc/.github/workflows/release.yml@refs/tags/v1"))
    assert not rule.accepts(Signer("https://accounts.google.com", "https://github.com/acme/x/.github/workflows/"
                                                                   "release.yml@refs/tags/v1"))
    assert rule_for("acme/calc", {}, registry).pattern == "acme/calc"  # type: ignore[union-attr]
    assert rule_for("other/calc", user, registry) is None
