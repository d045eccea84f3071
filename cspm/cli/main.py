"""Entry point of the `cspm` command: every user-facing error ends here, without a traceback.

A warm `cspm run APP --input TEXT` is tried first by cspm.cli.fast_run, before typer and rich are
imported (they are most of a warm run's start-up); anything it does not take runs through typer.
"""

from __future__ import annotations

import importlib
import sys
from typing import TYPE_CHECKING, Any

from cspm.errors import CspmError, ExitCode, write_error

if TYPE_CHECKING:
    import typer

# command -> (module under cspm.cli, attribute); a module attribute that is a Typer is a command group
COMMANDS: dict[str, tuple[str, str]] = {
    "run": ("run", "run"), "lock": ("pm", "lock"), "install": ("pm", "install"), "add": ("pm", "add"),
    "remove": ("pm", "remove"), "search": ("query", "search"), "info": ("query", "info"),
    "inspect": ("query", "inspect"), "publish": ("publish", "publish"), "yank": ("publish", "yank"),
    "login": ("publish", "login"), "logout": ("publish", "logout"), "keygen": ("trust", "keygen"),
    "verify": ("trust", "verify"), "registry": ("registry", "app"), "trust": ("trust", "app"),
    "model": ("model", "app"), "cache": ("cache", "app"), "index": ("index_cmd", "app"),
    "init": ("init", "init"), "new": ("new", "new"), "plan": ("plan", "plan"),
    "session": ("session", "app"), "call": ("call", "call"), "serve": ("serve", "serve"),
    "bundle": ("bundle", "bundle"), "web": ("web", "web"), "import": ("import_cmd", "import_app"),
}


def build_app(argv: list[str] | None = None) -> typer.Typer:
    """The CLI with only the invoked command's module imported (all of them for help or an unknown
    command): the others pull in httpx, jsonschema and the index code, most of a warm run's start-up."""
    import typer

    from cspm import __version__

    def _root(version: bool = typer.Option(False, "--version", help="print the version and exit")) -> None:
        if version:
            typer.echo(f"cspm {__version__}")
            raise typer.Exit()

    app = typer.Typer(
        name="cspm",
        help="Package manager and runtime for Chainsocket apps (Extism WebAssembly plug-ins).",
        no_args_is_help=True,
        add_completion=False,
        pretty_exceptions_enable=False,
    )
    app.callback(invoke_without_command=True)(_root)
    wanted = next((a for a in (argv or []) if not a.startswith("-")), None)
    for name, (module, attr) in COMMANDS.items():
        if wanted in COMMANDS and name != wanted:
            continue
        target = getattr(importlib.import_module(f"cspm.cli.{module}"), attr)
        if isinstance(target, typer.Typer):
            app.add_typer(target, name=name)
        else:
            app.command(name)(target)
    return app


def print_error(message: str, hint: str | None = None, as_json: bool = False, *, code: str = "error",
                extra: dict[str, Any] | None = None) -> None:
    """cspm.cli.output.print_error, loaded when an error is printed (it brings rich)."""
    from cspm.cli import output

    output.print_error(message, hint, as_json, code=code, extra=extra)


def main() -> None:
    as_json = "--json" in sys.argv
    try:
        from cspm.cli import fast_run

        code = fast_run.run(sys.argv[1:])
        if code is None:
            # click returns the code of a typer.Exit instead of raising
            code = build_app(sys.argv[1:])(standalone_mode=False)
        if code == ExitCode.INTERRUPTED:  # typer turns a KeyboardInterrupt into Exit(130), silently
            print_error("interrupted", as_json=as_json, code="interrupted")
        if isinstance(code, int) and code:
            sys.exit(code)
    except CspmError as exc:
        _print(exc, as_json)
        sys.exit(exc.exit_code)
    except KeyboardInterrupt:
        print_error("interrupted", as_json=as_json, code="interrupted")
        sys.exit(ExitCode.INTERRUPTED)
    except OSError as exc:
        error = write_error(exc)
        if error is None:  # an OSError nobody foresaw is a bug like any other: said, not a traceback
            print_error(f"internal error: {type(exc).__name__}: {exc}",
                        "this is a bug in cspm; please report it with the command you ran", as_json, code="bug")
            sys.exit(ExitCode.BUG)
        _print(error, as_json)
        sys.exit(error.exit_code)
    except Exception as exc:  # typer's Exit and Abort, click's usage errors, anything we did not foresee
        _unexpected(exc, as_json)


def _unexpected(exc: Exception, as_json: bool) -> None:
    """typer is imported only here (or by build_app): the fast path never loads it."""
    import typer

    if isinstance(exc, typer.Exit):
        sys.exit(exc.exit_code)
    if isinstance(exc, typer.Abort):
        print_error("aborted", as_json=as_json, code="aborted")
        sys.exit(ExitCode.FAILED)
    if isinstance(exc, _click_exceptions()):
        exc.show()  # type: ignore[attr-defined]  # the usage text, "did you mean", exit 2
        sys.exit(exc.exit_code)  # type: ignore[attr-defined]
    print_error(f"internal error: {type(exc).__name__}: {exc}",
                "this is a bug in cspm; please report it with the command you ran", as_json, code="bug")
    sys.exit(ExitCode.BUG)


def _print(error: CspmError, as_json: bool) -> None:
    details = error.as_json()
    extra = {k: v for k, v in details.items() if k not in ("code", "message", "hint")}
    print_error(error.message, error.hint, as_json, code=error.code, extra=extra)


def _click_exceptions() -> tuple[type[Exception], ...]:
    """Usage errors come from the click that typer uses: its own copy (`typer._click`, typer 0.28) or
    the click package (older typer). Both are checked, so neither is reported as a bug in cspm."""
    found: list[type[Exception]] = []
    for module in ("typer._click.exceptions", "click.exceptions"):
        try:
            found.append(importlib.import_module(module).ClickException)
        except (ImportError, AttributeError):
            continue
    return tuple(found)


if __name__ == "__main__":
    main()
