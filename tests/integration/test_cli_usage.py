"""Usage errors (a misspelled command, an unknown option, a missing argument) are the usage text with
"did you mean" and exit 2, for every command and subcommand: never "a bug in cspm" (issue 16)."""

from __future__ import annotations

import pytest

from cspm.cli.main import COMMANDS
from tests.integration.test_cli import cspm

GROUPS = {"registry": ["remove", "add", "list"], "trust": ["refresh"], "model": ["remove", "add", "list"],
          "cache": ["verify", "dir", "ls", "clean"], "index": ["build"], "session": ["clear", "list"]}


def _usage_error(*args: str) -> str:
    result = cspm(*args)
    assert result.returncode == 2, f"exit {result.returncode}\n{result.stderr}"
    assert "internal error" not in result.stderr and "bug in cspm" not in result.stderr, result.stderr
    assert "Usage:" in result.stderr, result.stderr
    return result.stderr


@pytest.mark.parametrize("command", sorted(COMMANDS))
def test_every_command_refuses_an_unknown_option_with_its_usage(command: str) -> None:
    args = [command, *GROUPS[command][:1]] if command in GROUPS else [command]
    assert "No such option: --bogus" in _usage_error(*args, "--bogus")


@pytest.mark.parametrize("group", sorted(GROUPS))
def test_a_misspelled_subcommand_gets_did_you_mean(group: str) -> None:
    sub = GROUPS[group][0]
    assert f"Did you mean '{sub}'?" in _usage_error(group, sub + "x")


@pytest.mark.parametrize("args, expect", [
    (("isntall",), "Did you mean 'install'?"),
    (("lock", "--upgarde"), "(Possible options: --upgrade"),
    (("run", "app.yaml", "-v", "1"), "unexpected extra argument"),
])
def test_the_first_mistakes_a_newcomer_makes(args: tuple[str, ...], expect: str) -> None:
    assert expect in _usage_error(*args)
