"""Entry point of the `cspm` command: every user-facing error ends here, without a traceback."""

from __future__ import annotations

import sys

import typer

from cspm import __version__
from cspm.cli import cache as cache_cmd
from cspm.cli import index_cmd, pm, query
from cspm.cli import model as model_cmd
from cspm.cli import publish as publish_cmd
from cspm.cli import registry as registry_cmd
from cspm.cli import run as run_cmd
from cspm.cli import trust as trust_cmd
from cspm.cli.output import print_error
from cspm.errors import CspmError

app = typer.Typer(
    name="cspm",
    help="Package manager and runtime for Chainsocket apps (Extism WebAssembly plug-ins).",
    no_args_is_help=True,
    add_completion=False,
    pretty_exceptions_enable=False,
)
app.command("run")(run_cmd.run)
app.command("lock")(pm.lock)
app.command("install")(pm.install)
app.command("add")(pm.add)
app.command("remove")(pm.remove)
app.command("search")(query.search)
app.command("info")(query.info)
app.command("inspect")(query.inspect)
app.command("publish")(publish_cmd.publish)
app.command("yank")(publish_cmd.yank)
app.command("login")(publish_cmd.login)
app.command("logout")(publish_cmd.logout)
app.command("keygen")(trust_cmd.keygen)
app.command("verify")(trust_cmd.verify)
app.add_typer(registry_cmd.app, name="registry")
app.add_typer(trust_cmd.app, name="trust")
app.add_typer(model_cmd.app, name="model")
app.add_typer(cache_cmd.app, name="cache")
app.add_typer(index_cmd.app, name="index")


@app.callback(invoke_without_command=True)
def _root(version: bool = typer.Option(False, "--version", help="print the version and exit")) -> None:
    if version:
        typer.echo(f"cspm {__version__}")
        raise typer.Exit()


def main() -> None:
    as_json = "--json" in sys.argv
    try:
        code = app(standalone_mode=False)  # click returns the code of a typer.Exit instead of raising
        if isinstance(code, int) and code:
            sys.exit(code)
    except CspmError as exc:
        print_error(exc.message, exc.hint, as_json)
        sys.exit(exc.exit_code)
    except KeyboardInterrupt:
        print_error("interrupted", as_json=as_json)
        sys.exit(130)
    except typer.Exit as exc:
        sys.exit(exc.exit_code)
    except typer.Abort:
        print_error("aborted", as_json=as_json)
        sys.exit(1)
    except Exception as exc:  # click's usage errors and anything else we did not foresee
        import click

        if isinstance(exc, click.exceptions.ClickException):
            exc.show()
            sys.exit(exc.exit_code)
        print_error(f"internal error: {type(exc).__name__}: {exc}",
                    "this is a bug in cspm; please report it with the command you ran", as_json)
        sys.exit(70)


if __name__ == "__main__":
    main()
