"""The warm fast path of `cspm run APP --input TEXT [--json] [--session ID]`.

When the normal path (cspm.cli.run) has planned this app from these exact bytes before, it kept the
plan (cspm.plan_cache); this runs that plan, importing neither typer, rich, YAML, the app schemas
nor the planner. Only the flags above are taken, in their plain spellings; anything else (another
flag, a value that starts with `-`, a repeated option, no cached plan, a module not compiled yet)
returns None and the normal path runs, which prints and exits exactly as it always did. Once a plan
is found, the request runs as cspm.cli.oneshot runs it for the normal path: the same output, the
same errors (raised to cspm.cli.main) and exit codes.
"""

from __future__ import annotations

from dataclasses import dataclass
from pathlib import Path


@dataclass(frozen=True)
class Request:
    app: str
    input: str
    json_out: bool
    session: str | None


_VALUED = {"--input": "input", "-i": "input", "--session": "session"}


def parse(argv: list[str]) -> Request | None:
    """`run` and only the flags the fast path takes, each at most once; None for anything else."""
    if not argv or argv[0] != "run":
        return None
    found: dict[str, str] = {}
    apps: list[str] = []
    json_out = False
    rest = iter(argv[1:])
    for arg in rest:
        name, eq, value = arg.partition("=")
        if name in _VALUED and name.startswith("--") and eq:
            pass  # --input=TEXT
        elif arg in _VALUED:
            following = next(rest, None)
            if following is None or following.startswith("-"):
                return None  # click's rules for such values: the normal path decides
            name, value = arg, following
        elif arg == "--json" and not json_out:
            json_out = True
            continue
        elif arg.startswith("-") or apps:
            return None  # another flag, `--`, `-`, or a second argument
        else:
            apps.append(arg)
            continue
        key = _VALUED[name]
        if key in found:
            return None
        found[key] = value
    if "input" not in found:
        return None  # the chat loop: the normal path
    return Request(apps[0] if apps else "app.yaml", found["input"], json_out, found.get("session"))


def run(argv: list[str]) -> int | None:
    """The exit code of the request, or None: not handled here (nothing was printed or run)."""
    request = parse(argv)
    if request is None:
        return None
    from cspm import plan_cache

    plan = plan_cache.lookup(request.app)
    if plan is None:
        return None
    from cspm.runtime import compiler

    if compiler.uncompiled((Path(c.module.path), c.module.digest) for c in plan.components.values()):
        return None  # the normal path says "compiling…" at a terminal, then compiles
    from cspm.cli import oneshot
    from cspm.runtime import kv

    return oneshot.one_shot(plan, request.input, session=request.session, kv_factory=kv.factory_for(None),
                            json_out=request.json_out, trace=False, verbose=0, warnings=[])
