"""Data flows one way (docs/architecture.md): no layer imports one above it, checked statically over
cspm and cspm_registry by the same script a reader runs (`python scripts/module_imports.py --check`)."""

from __future__ import annotations

import subprocess
import sys

from tests.conftest import ROOT


def test_no_layer_imports_one_above_it() -> None:
    result = subprocess.run([sys.executable, "scripts/module_imports.py", "--check", "--layers"], cwd=ROOT,
                            capture_output=True, text=True)
    assert result.returncode == 0, result.stderr
    rows = {name.strip(): targets for name, targets in (line.split(" -> ") for line in result.stdout.splitlines())}
    assert "index" not in rows["runtime"].split() and "manager" not in rows["runtime"].split()


def test_the_check_can_fail(tmp_path) -> None:  # type: ignore[no-untyped-def]
    sys.path.insert(0, str(ROOT / "scripts"))
    try:
        import module_imports
    finally:
        sys.path.pop(0)
    edges = {"cspm.runtime.engine": {"cspm.install": False}, "cspm.formats.plan": {"cspm.runtime.kv": True}}
    found = module_imports.violations(edges)
    assert len(found) == 2 and "cspm.runtime.engine (runtime) imports cspm.install (manager)" in found[0]
