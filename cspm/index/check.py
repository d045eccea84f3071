"""`cspm index build --check`: is a registry folder exactly what its sources build today?

CI runs it to catch a committed index (or an app's `app.lock`) that drifted from the plug-in and app
sources. The build goes to a scratch folder that is always removed, and no app lock is written, so
a check changes nothing, whatever it finds.
"""

from __future__ import annotations

import shutil
import tempfile
from dataclasses import dataclass
from pathlib import Path

from cspm.index import from_sources
from cspm.index.from_sources import Note

MISSING = "(the whole folder is missing)"


@dataclass(frozen=True)
class CheckResult:
    out: Path
    differ: list[str]  # paths under `out` that differ from a fresh build, then app locks that are stale
    packages: int  # how many packages the fresh build holds

    @property
    def matches(self) -> bool:
        return not self.differ


def check(sources: list[Path], out: Path, *, name: str = "chainsocket", run_build: bool = False,
          note: Note = lambda _message: None) -> CheckResult:
    """Build `sources` elsewhere and compare with `out`, file by file, and each app's lock in the
    sources with the one the build made."""
    scratch = Path(tempfile.mkdtemp(prefix="cspm-index-check-"))
    try:
        built = from_sources.build(sources, scratch / "index", name=name, run_build=run_build,
                                   write_locks=False, note=note)
        differ = from_sources.compare(out, built.out) if out.is_dir() else [MISSING]
        differ += built.stale_locks()
    finally:
        shutil.rmtree(scratch, ignore_errors=True)
    return CheckResult(out, differ, len(built.lines))
