"""`cspm publish`, `cspm login`, `cspm logout`, `cspm yank`: parse, call cspm.publish, print."""

from __future__ import annotations

import sys
from pathlib import Path
from typing import Annotated

import typer

from cspm import credentials, oci_publish
from cspm import publish as publishing
from cspm.cli.output import err, print_json, shown, warner
from cspm.errors import CspmError
from cspm.formats import userconfig

JsonOpt = Annotated[bool, typer.Option("--json", help="print machine-readable JSON")]
RegistryOpt = Annotated[str | None, typer.Option(
    "--registry", "-r", help="the registry's name, or an oci://HOST/PREFIX URL (default: the one bound to the "
                             "package's namespace)")]


def publish(
    folder: Annotated[Path, typer.Argument(help="the plug-in or app folder (with plugin.yaml)")] = Path("."),
    registry: RegistryOpt = None,
    dry_run: Annotated[bool, typer.Option("--dry-run", help="check and show what would be uploaded (and that the "
                                                            "registry does not have that version yet); upload "
                                                            "nothing")] = False,
    sign: Annotated[bool, typer.Option("--sign/--no-sign", help="sign it (default): keyless through Sigstore, "
                                                                "or with --key")] = True,
    key: Annotated[Path | None, typer.Option("--key", help="sign with this ed25519 key (`cspm keygen`)")] = None,
    identity_token: Annotated[str | None, typer.Option("--identity-token", envvar="SIGSTORE_ID_TOKEN",
                                                       help="OIDC token for keyless signing (default: the CI's "
                                                            "ambient credential, or a browser at a terminal)")
                              ] = None,
    json_out: JsonOpt = False,
) -> None:
    """Check a plug-in (or app package), sign it, and upload it to a registry."""
    summary = publishing.publish_folder(folder, userconfig.load(), registry=registry, dry_run=dry_run, sign_it=sign,
                                        key=key, identity_token=identity_token,
                                        interactive=sys.stdin.isatty() and not json_out, warn=warner())
    if json_out:
        print_json(summary)
        return
    verb = "would publish" if dry_run else "published"
    err.print(f"[bold]{verb}[/] {summary['name']} {summary['version']} ({summary['kind']}, {summary['size']:,} "
              f"bytes, {summary['digest'][:19]}…) to {summary['registry']}")


def login(
    registry: Annotated[str, typer.Argument(help="the registry's name")],
    token: Annotated[str | None, typer.Option("--token", help="the token (default: read from stdin or a prompt)")
                     ] = None,
    no_check: Annotated[bool, typer.Option("--no-check", help="save it without asking the registry who it is "
                                                              "(a registry without a write API, or unreachable)")
                        ] = False,
    username: Annotated[str | None, typer.Option("--username", "-u", help="an OCI registry's username (the "
                                                                         "token is then its password)")] = None,
    json_out: JsonOpt = False,
) -> None:
    """Check a token with a registry, then store it (in the user config dir, readable only by you)."""
    target = userconfig.load().registry(registry)
    if target is None:
        raise CspmError(f"there is no registry called {registry!r}", hint="add it with `cspm registry add`")
    if token is None:
        token = sys.stdin.readline() if not sys.stdin.isatty() else typer.prompt("token", hide_input=True)
    if oci_publish.is_oci(target):
        _login_oci(target, username or credentials.DEFAULT_USERNAME, token.strip(), no_check, json_out)
        return
    token = credentials.check_token(token)
    who = None if no_check else publishing.check_login(target, token)
    where = credentials.save(registry, token)
    if json_out:
        print_json({"registry": registry, "saved": str(where), "checked": who is not None, "token": who})
        return
    if who is None:
        err.print(f"token for {registry} saved in {where}, unchecked (--no-check)")
        return
    scope = "admin" if who["admin"] else "publish" if who["publish"] else "read-only"
    namespaces = ", ".join(who["namespaces"]) or ("every namespace" if who["admin"] else "no namespace")
    err.print(f"token #{who['id']} for {registry} ({scope}: {shown(namespaces)}) saved in {where}")
    if scope == "read-only":
        warner()(f"registry {registry} says this token may not publish or yank (ask for one created with --publish)")


def _login_oci(target: userconfig.Registry, username: str, password: str, no_check: bool, json_out: bool) -> None:
    username, password = credentials.check_secret(username, "username"), credentials.check_secret(password)
    if not no_check:
        oci_publish.check_login(target, username, password)
    where = credentials.save(target.name, password, username)
    if json_out:
        print_json({"registry": target.name, "saved": str(where), "checked": not no_check, "username": username})
        return
    err.print(f"login {shown(username)} for {target.name} {'saved' if no_check else 'accepted and saved'} in {where}")


def logout(registry: Annotated[str, typer.Argument(help="the registry's name")], json_out: JsonOpt = False) -> None:
    """Forget the stored token of a registry."""
    removed = credentials.forget(registry)
    if json_out:
        print_json({"registry": registry, "removed": removed})
    else:
        err.print(f"token for {registry} {'removed' if removed else 'was not stored'}")


def yank(
    reference: Annotated[str, typer.Argument(help="NAMESPACE/NAME@VERSION")],
    registry: RegistryOpt = None,
    undo: Annotated[bool, typer.Option("--undo", help="unyank it")] = False,
    reason: Annotated[str | None, typer.Option("--reason", help="why (shown by `cspm info`)")] = None,
    json_out: JsonOpt = False,
) -> None:
    """Yank a version (resolvers skip it unless a lock pins it), or unyank it with --undo."""
    name, _ = publishing.yank_target(reference)
    target = publishing.pick_registry(userconfig.load(), name, registry)
    answer = publishing.yank(reference, target, undo=undo, reason=reason)
    if json_out:
        print_json({"registry": target.name, **answer})
    else:
        what = f"{answer.get('name')} {answer.get('version')}"  # the registry's words: shown, never acted on
        err.print(f"{'unyanked' if undo else 'yanked'} {shown(what)} in {target.name}")
