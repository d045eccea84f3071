"""`cspm keygen`, `cspm verify`, `cspm trust refresh`: keys and signatures by hand.

The config, the index and the federation are imported only by the paths that read them: `cspm verify
FILE --bundle SIG --issuer … --identity …` pays for typer, the output and the verifier alone.
"""

from __future__ import annotations

from pathlib import Path
from typing import Annotated

import typer

from cspm.cli.output import err, out, print_json, shown, warner
from cspm.errors import CspmError
from cspm.store import digest_of
from cspm.verify import signature
from cspm.verify.sniff import signature_kind

JsonOpt = Annotated[bool, typer.Option("--json", help="print machine-readable JSON")]
app = typer.Typer(help="Sigstore's trusted root.", no_args_is_help=True)


def keygen(
    path: Annotated[Path | None, typer.Argument(
        help="where to write the private key (PEM, mode 0600); default: keys/cspm.key in the user config dir, "
             "never the current folder")] = None,
    json_out: JsonOpt = False,
) -> None:
    """Make an ed25519 key for signing without Sigstore (private registries)."""
    path = path or signature.default_key_path()
    public = signature.keygen(path)
    if json_out:
        print_json({"private_key": str(path), "public_key": public, "key_id": signature.key_id(public)})
        return
    where = shown(str(path))
    err.print(f"private key written to {where} (keep it secret; publish with `cspm publish --key {where}`)")
    err.print("public key, for the `trust` of a config (`keys: [...]`) or `cspm-registry trust set --key`:")
    out.print(public, markup=False)


def _user_trust() -> dict:
    from cspm.formats import userconfig

    return userconfig.load().trust


def verify(
    target: Annotated[str, typer.Argument(help="NAMESPACE/NAME@VERSION, or a .wasm file with --bundle")],
    bundle: Annotated[Path | None, typer.Option("--bundle", help="the signature of a local file")] = None,
    name: Annotated[str | None, typer.Option("--name", help="for a local file: the package name it was signed for")
                    ] = None,
    issuer: Annotated[str | None, typer.Option("--issuer", help="expected OIDC issuer")] = None,
    identity: Annotated[str | None, typer.Option("--identity", help="expected identity (exact or glob)")] = None,
    key: Annotated[list[str] | None, typer.Option("--key", help="trusted public key ed25519:HEX (repeatable)")
                   ] = None,
    offline: Annotated[bool, typer.Option("--offline", help="use cached index files only")] = False,
    json_out: JsonOpt = False,
) -> None:
    """Check a signature and say what was checked and who signed."""
    explicit = signature.Rule("(command line)", issuer, identity, tuple(key or ())) \
        if (issuer or identity or key) else None
    sig: bytes | None
    kind: str | None
    if bundle is not None:
        try:
            data, sig = Path(target).read_bytes(), bundle.read_bytes()
        except OSError as exc:
            raise CspmError(f"cannot read {exc.filename}: {exc.strerror}") from None
        kind = signature_kind(sig, f"the signature {bundle}")
        package = name or ""
        rule = explicit or (signature.rule_for(package, _user_trust()) if package else None)
        digest = digest_of(data)
        what = target
    else:
        from cspm.formats import userconfig
        from cspm.formats.names import parse_requirement
        from cspm.index.federation import Federation
        from cspm.index.query import info

        config = userconfig.load()
        requirement = parse_requirement(target)
        federation = Federation(config, offline=offline, warn=warner())
        try:
            found = info(federation, target)
            entry = found.chosen
            source = federation.versions(requirement.name).source
            sig_info = entry.signature or {}
            sig = source.read_bundle(sig_info["bundle"], entry.name) if sig_info.get("bundle") else None
            policy = source.config().get("policy")
        finally:
            federation.close()
        kind, package, digest = sig_info.get("kind"), entry.name, entry.digest
        rule = explicit or signature.rule_for(package, config.trust, policy if isinstance(policy, dict) else {})
        what = f"{entry.name} {entry.version}"
        if sig is None and rule is None:
            raise CspmError(f"{what} is not signed", hint="nothing to verify; `cspm info` shows its signer field")
    signer = signature.verify(sig, kind, name=package, digest=digest, what=what, rule=rule)
    report = {"what": what, "digest": digest, "kind": kind, "signer": signer.to_dict() if signer else None,
              "policy": rule.pattern if rule else None, "expected": rule.expected() if rule else None}
    if json_out:
        print_json(report)
        return
    out.print(f"[bold]{what}[/]: [green]verified[/]")
    out.print(f"  blob       {digest}")
    checks = ("Sigstore bundle: certificate chain to the trusted root, SCT, transparency-log inclusion, "
              "signature over the digest" if kind == "sigstore" else "DSSE envelope: ed25519 signature over an "
              "in-toto statement naming this package and digest")
    out.print(f"  checked    {checks}")
    out.print(f"  signed by  {shown(str(signer))}")
    out.print(f"  policy     {shown(rule.pattern + ': ' + rule.expected()) if rule else 'none (any valid signer)'}")


@app.command("refresh")
def refresh() -> None:
    """Update Sigstore's production trusted root over TUF (needs the network; installs stay offline)."""
    from cspm import provenance

    signature.refresh_trust()
    forgotten = provenance.forget_verdicts()  # proven under the old root: each is checked again, once
    err.print(f"Sigstore's trusted root is up to date ({forgotten} cached verdict(s) to check again)")
