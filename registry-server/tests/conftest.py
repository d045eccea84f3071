"""The registry server's tests use the repository's shared fixtures and helpers (real plug-ins, isolated
dirs, the loopback server of tests/registry_support.py), imported from the `tests` package at the
repository's root, wherever pytest was started."""

import sys
from pathlib import Path

_ROOT = str(Path(__file__).resolve().parents[2])
if _ROOT not in sys.path:
    sys.path.insert(0, _ROOT)

from tests.conftest import isolated_data  # noqa: E402, F401  (autouse: every test gets its own cspm dirs)
from tests.registry_support import modules, server, servers, start  # noqa: E402, F401  (fixtures)
from tests.sigstore_stack import sigstore_stack  # noqa: E402, F401  (the local Sigstore stack, session-wide)
