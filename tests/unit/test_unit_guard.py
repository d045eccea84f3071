"""The unit suite's guard (tests/unit/conftest.py) refuses what would make a test an integration test."""

from __future__ import annotations

import socket
import subprocess
import sys

import pytest


def test_a_process_is_refused() -> None:
    with pytest.raises(AssertionError, match="may not start a process"):
        subprocess.run([sys.executable, "-c", "pass"], check=False)


def test_a_network_connection_is_refused() -> None:
    with pytest.raises(AssertionError, match="open a network connection"):
        socket.create_connection(("127.0.0.1", 9))
