"""Unit tests: one process, no network, no plug-in builds; seconds for the lot
(`python -m pytest tests/unit`). The guard below makes that a rule rather than a hope: a unit test
that starts a process or opens a network connection fails, and belongs with the integration tests
in tests/ (real plug-ins, real servers on loopback, the real CLI)."""

from __future__ import annotations

import socket
import subprocess
from typing import Any

import pytest


@pytest.fixture(autouse=True)
def no_processes_or_network(monkeypatch: pytest.MonkeyPatch) -> None:
    def refuse(*args: Any, **kwargs: Any) -> Any:
        raise AssertionError("a unit test may not start a process or open a network connection: "
                             "move it to the integration tests in tests/")

    monkeypatch.setattr(subprocess.Popen, "__init__", refuse)
    monkeypatch.setattr(socket.socket, "connect", refuse)
    monkeypatch.setattr(socket, "create_connection", refuse)
