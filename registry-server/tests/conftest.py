"""The registry server's tests use the repository's shared fixtures and helpers (real plug-ins, isolated
dirs, the loopback server of tests/test_registry_server.py), imported from the `tests` package at the
repository's root, wherever pytest was started."""

import sys
from pathlib import Path

_ROOT = str(Path(__file__).resolve().parents[2])
if _ROOT not in sys.path:
    sys.path.insert(0, _ROOT)

from tests.conftest import isolated_data  # noqa: E402, F401  (autouse: every test gets its own cspm dirs)
