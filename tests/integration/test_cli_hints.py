"""Every hint names a command and flags that exist: a hint that sends a user to a flag the command
they ran does not have (`cspm run` ... "rerun with --allow-signer-change") is a dead end.

Two checks, both from the source (cspm/ and registry-server/), against the real CLI's `--help`:
- every backticked `cspm ...` / `cspm-registry ...` command in a string (but docstrings) is a command
  whose flags exist;
- a hint that names a flag without a command (`pass --registry NAME`) is only allowed where the
  commands that can show it are known (REACHED_BY), and each of those commands has the flag.
"""

from __future__ import annotations

import ast
import functools
import os
import re
import subprocess
import sys
from dataclasses import dataclass
from pathlib import Path

import pytest

from tests.conftest import ROOT

SOURCES = sorted([*ROOT.glob("cspm/**/*.py"), *ROOT.glob("registry-server/cspm_registry/*.py")])
PROGRAMS = {"cspm": [sys.executable, "-m", "cspm.cli.main"], "cspm-registry": [sys.executable, "-m", "cspm_registry"]}
COMMAND = re.compile(r"`((?:cspm|cspm-registry)(?: [^`]*)?)`")
BARE_FLAG = re.compile(r"(?:^|(?<=[\s(,]))(--?[a-z][a-z-]*)")

# Hints that name a flag without a command, by the function that raises them: the commands whose
# runs can reach that function. Such a flag must exist on every one of them.
REACHED_BY: dict[str, list[str]] = {
    "cspm/cli/session.py:clear": ["session clear"],
    "cspm/cli/run.py:planned": ["run", "serve"],
    "cspm/index/from_sources.py:_build_into": ["index build"],
    "cspm/index/from_sources.py:_existing_registry": ["index build"],
    "cspm/single.py:parse_arguments": ["call"],
    "cspm/single.py:_local": ["call"],
    "cspm/single.py:call": ["call"],
    "cspm/models.py:add": ["model add"],
    "cspm/scaffold.py:new": ["new"],
    "cspm/project.py:add": ["add"],
    "cspm/project.py:_plan": ["add"],
    "cspm/publish.py:pick_registry": ["publish", "yank"],
    "cspm/publish.py:sign": ["publish"],
    # formerly bare, now named with their command: kept so a bare flag coming back is checked
    "cspm/install.py:lock_app": ["lock", "install", "run", "add", "remove"],
    "cspm/verify/signature.py:verify": ["install", "run", "verify"],
    "cspm/credentials.py:check_origin": ["publish", "yank", "login"],
    "cspm/index/source.py:_unavailable": ["run", "lock", "install", "add", "remove", "search", "info", "verify"],
}


@dataclass(frozen=True)
class Found:
    where: str  # file:line
    function: str  # file:function, the key of REACHED_BY
    text: str  # f-string fields shown as {}


def _texts(node: ast.AST) -> list[str]:
    """The texts a string expression can take: f-string fields as `{}`, both sides of an `if`."""
    if isinstance(node, ast.Constant) and isinstance(node.value, str):
        return [node.value]
    if isinstance(node, ast.JoinedStr):
        return ["".join(v.value if isinstance(v, ast.Constant) else "{}" for v in node.values)]
    if isinstance(node, ast.IfExp):
        return _texts(node.body) + _texts(node.orelse)
    if isinstance(node, ast.BinOp) and isinstance(node.op, ast.Add):
        return [a + b for a in _texts(node.left) for b in _texts(node.right)]
    return []


def _scan() -> tuple[list[Found], list[Found]]:
    """(every string but docstrings, the hints) of the sources."""
    strings: list[Found] = []
    hints: list[Found] = []
    for path in SOURCES:
        _scan_file(path, strings, hints)
    return strings, hints


def _scan_file(path: Path, strings: list[Found], hints: list[Found]) -> None:
    rel = path.relative_to(ROOT).as_posix()
    tree = ast.parse(path.read_text(encoding="utf-8"))
    docs = {id(n.body[0].value) for n in ast.walk(tree)
            if isinstance(n, (ast.Module, ast.ClassDef, ast.FunctionDef, ast.AsyncFunctionDef))
            and n.body and isinstance(n.body[0], ast.Expr) and isinstance(n.body[0].value, ast.Constant)}

    def visit(node: ast.AST, function: str) -> None:
        if isinstance(node, (ast.FunctionDef, ast.AsyncFunctionDef)):
            function = node.name
        if isinstance(node, (ast.Constant, ast.JoinedStr)) and id(node) not in docs:
            strings.extend(Found(f"{rel}:{node.lineno}", f"{rel}:{function}", t) for t in _texts(node))
        if isinstance(node, ast.keyword) and node.arg == "hint":
            hints.extend(Found(f"{rel}:{node.value.lineno}", f"{rel}:{function}", t) for t in _texts(node.value))
        named = [t.id for t in getattr(node, "targets", []) if isinstance(t, ast.Name)]
        if (isinstance(node, ast.Assign) and any("hint" in n.lower() for n in named)) or (
                isinstance(node, ast.Return) and "hint" in function.lower() and node.value is not None):
            hints.extend(Found(f"{rel}:{node.lineno}", f"{rel}:{function}", t) for t in _texts(node.value))
        if isinstance(node, ast.Dict) and any("HINT" in t.id for t in _targets(tree, node)):  # HINTS = {...}
            hints.extend(Found(f"{rel}:{v.lineno}", f"{rel}:{function}", t) for v in node.values for t in _texts(v))
        if isinstance(node, ast.JoinedStr):
            return  # its parts are already in its text
        for child in ast.iter_child_nodes(node):
            visit(child, function)

    visit(tree, "<module>")


def _targets(tree: ast.Module, value: ast.AST) -> list[ast.Name]:
    return [t for n in tree.body if isinstance(n, (ast.Assign, ast.AnnAssign)) and n.value is value
            for t in (n.targets if isinstance(n, ast.Assign) else [n.target]) if isinstance(t, ast.Name)]


@functools.cache
def _help(program: str, path: tuple[str, ...]) -> tuple[frozenset[str], frozenset[str]] | None:
    """(subcommands, flags) of a command, read from its real `--help`; None when it does not exist."""
    env = {**os.environ, "COLUMNS": "250", "TERM": "dumb", "NO_COLOR": "1"}
    result = subprocess.run([*PROGRAMS[program], *path, "--help"], capture_output=True, text=True, env=env,
                            cwd=ROOT, timeout=120)
    if result.returncode != 0:
        return None
    subcommands, flags, panel = set(), set(), ""
    for line in result.stdout.splitlines():
        if line.startswith("╭─"):
            panel = line.strip("╭─ ╮")
            continue
        if not line.startswith("│"):
            continue
        words = line.strip("│ ").removeprefix("* ").split()  # `*` marks a required option
        if panel.startswith("Commands") and words:
            subcommands.add(words[0])
        elif panel.startswith("Options"):
            for word in words:
                if not word.startswith("-"):
                    break
                flags.add(word)
    return frozenset(subcommands), frozenset(flags)


def _resolve(command: str) -> tuple[str, tuple[str, ...], list[str]]:
    """A suggested command line as (program, subcommand path, flags); fails if a subcommand is unknown."""
    program, *words = command.split()
    path: list[str] = []
    for word in words:
        known = _help(program, tuple(path))
        assert known is not None, f"`{program} {' '.join(path)}` is not a command"
        if word.startswith("-") or not known[0]:
            break
        assert word in known[0], f"`{program} {' '.join(path)} {word}` is not a command (has: {sorted(known[0])})"
        path.append(word)
    flags = [w.split("=")[0] for w in words if w.startswith("-")]
    return program, tuple(path), flags


def _missing_flags(program: str, path: tuple[str, ...], flags: list[str]) -> list[str]:
    known = _help(program, path)
    assert known is not None, f"`{program} {' '.join(path)}` is not a command"
    return [f for f in flags if f not in known[1]]


STRINGS, HINTS = _scan()


def test_the_scan_finds_the_hints() -> None:
    """The extraction itself works: it sees hints of every kind (keyword, f-string, conditional)."""
    texts = [h.text for h in HINTS]
    assert len(HINTS) > 60 and any("`cspm lock {} --allow-signer-change`" in t for t in texts)
    assert any(t.startswith("the registry is failing") for t in texts)
    assert any("`cspm" in s.text for s in STRINGS if s.where.startswith("registry-server/"))


def test_every_suggested_command_exists_with_its_flags() -> None:
    commands: dict[str, list[str]] = {}
    for found in STRINGS:
        for command in COMMAND.findall(found.text):
            if "|" not in command:  # `cspm cache dir|ls|verify|clean` is a synopsis, not a suggestion
                commands.setdefault(command, []).append(found.where)
    assert len(commands) > 30
    problems = []
    for command, where in sorted(commands.items()):
        try:
            program, path, flags = _resolve(command)
        except AssertionError as exc:
            problems.append(f"{where[0]}: {exc}")
            continue
        missing = _missing_flags(program, path, flags)
        if missing:
            problems.append(f"{where[0]}: `{command}`: `{program} {' '.join(path)}` has no {', '.join(missing)}")
    assert not problems, "\n".join(problems)


def test_a_bare_flag_in_a_hint_exists_on_every_command_that_can_show_it() -> None:
    problems = []
    for hint in HINTS:
        bare = [f for f in BARE_FLAG.findall(re.sub(r"`[^`]*`", "", hint.text)) if len(f) > 2]
        if not bare:
            continue
        if hint.function not in REACHED_BY:
            problems.append(f"{hint.where}: {hint.text!r} names {', '.join(bare)} without a command; name the "
                            f"command (`cspm lock --flag`), or list in REACHED_BY the commands that reach it")
            continue
        for command in REACHED_BY[hint.function]:
            missing = _missing_flags("cspm", tuple(command.split()), bare)
            if missing:
                problems.append(f"{hint.where}: {hint.text!r}: `cspm {command}` can show it and has no "
                                f"{', '.join(missing)}")
    assert not problems, "\n".join(problems)


@pytest.mark.parametrize("command, flag", [("run", "--allow-signer-change"), ("model add", "--member")])
def test_the_check_sees_flags_a_command_lacks(command: str, flag: str) -> None:
    """The `--help` reading is not vacuous: flags the issue found missing are reported missing."""
    assert _missing_flags("cspm", tuple(command.split()), [flag, "--json"]) == [flag]
