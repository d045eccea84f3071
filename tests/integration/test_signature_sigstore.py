"""Keyless signatures through cspm.verify.signature, against the local Sigstore stack (tests/sigstore_stack.py)."""

from __future__ import annotations

from pathlib import Path

import pytest

from cspm.store import digest_of
from cspm.verify.signature import Rule, SignatureError, Signer, sign_sigstore, verify

BLOB = b"\0asm\x01\0\0\0 pretend module"
DIGEST = digest_of(BLOB)


@pytest.fixture
def trusted(sigstore_stack, tmp_path: Path, monkeypatch: pytest.MonkeyPatch):  # type: ignore[no-untyped-def]
    config = tmp_path / "trust.json"
    config.write_text(sigstore_stack.trust_config_json)
    monkeypatch.setenv("CSPM_SIGSTORE_TRUST_CONFIG", str(config))
    return sigstore_stack


def check(bundle: bytes, rule: Rule | None, digest: str = DIGEST, pinned: Signer | None = None) -> Signer | None:
    return verify(bundle, "sigstore", name="acme/calc", digest=digest, what="acme/calc 1.0.0", rule=rule,
                  pinned=pinned)


def test_sign_then_verify_and_refuse(trusted) -> None:  # type: ignore[no-untyped-def]
    bundle = sign_sigstore(BLOB, trusted.mint_token(email="ci@acme.example"))
    me = Signer(trusted.issuer, "ci@acme.example")
    assert check(bundle, Rule("acme/*", issuer=trusted.issuer, identity="ci@acme.example")) == me
    assert check(bundle, Rule("acme/*", issuer=trusted.issuer, identity="*@acme.example")) == me
    assert check(bundle, None) == me  # no rule: trust on first use, pinned by the lock
    with pytest.raises(SignatureError, match=f"is signed by ci@acme.example \\({trusted.issuer}\\), but the trust "
                                             f"policy for acme/\\* expects mallory@acme.example"):
        check(bundle, Rule("acme/*", issuer=trusted.issuer, identity="mallory@acme.example"))
    with pytest.raises(SignatureError, match=r"expects ci@acme.example \(https://token\.actions"):
        check(bundle, Rule("acme/*", issuer="https://token.actions.githubusercontent.com",
                           identity="ci@acme.example"))
    with pytest.raises(SignatureError, match="does not verify for this blob"):
        check(bundle, None, digest=digest_of(BLOB + b"!"))
    with pytest.raises(SignatureError, match="but the lock pins someone@else"):
        check(bundle, None, pinned=Signer(trusted.issuer, "someone@else"))
    with pytest.raises(SignatureError, match="not a Sigstore bundle"):
        check(b"{}", None)
