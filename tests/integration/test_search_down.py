"""`cspm search` with one HTTP registry down and nothing cached: the others answer, and a warning names
the registry that could not."""

from __future__ import annotations

import json
import socket
from pathlib import Path

from tests.integration import test_cli_pm as pm
from tests.integration.test_cli import cspm
from tests.integration.test_cli_pm import ok

registry, sources, own_config_and_cache = pm.registry, pm.sources, pm.own_config_and_cache  # fixtures


def closed_port() -> int:
    """A loopback port nothing listens on (bound, then released): connections are refused at once."""
    with socket.socket() as sock:
        sock.bind(("127.0.0.1", 0))
        return int(sock.getsockname()[1])


def test_search_answers_from_the_registries_that_are_up(registry: Path) -> None:
    ok("registry", "add", "down", f"http://127.0.0.1:{closed_port()}", "--first")
    result = cspm("search", "echo", "--json")
    assert result.returncode == 0, result.stdout + result.stderr
    assert [r["name"] for r in json.loads(result.stdout)["results"]] == ["test/echo", "test/demo"]
    assert "warning: registry down (http://127.0.0.1:" in result.stderr and "cannot be reached" in result.stderr
    assert "left out" in result.stderr
    human = cspm("search", "echo")
    assert human.returncode == 0 and "test/echo" in human.stdout and "registry down" in human.stderr


def test_search_fails_when_no_registry_answers(tmp_path: Path) -> None:
    config = tmp_path / "config"
    config.mkdir()
    (config / "config.yaml").write_text(f"registries:\n- name: down\n  url: http://127.0.0.1:{closed_port()}\n")
    result = cspm("search", "echo")
    assert result.returncode == 1 and "registry down" in result.stderr and "cannot be reached" in result.stderr
