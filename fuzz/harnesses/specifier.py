"""Fuzz the version specifier and requirement parsers (cspm/formats/names.py).

Expected: `NameInvalid` (not a name, not a specifier). Anything else is a crash, and so is a
translation that breaks its own promise: `^X.Y.Z`, `~X.Y.Z` and a bare `X` / `X.Y` must admit the
version they name, and a parsed specifier must be usable against any version.
"""

from __future__ import annotations

import sys

import atheris

with atheris.instrument_imports(include=["cspm"]):
    from packaging.version import Version

    from cspm.formats.names import NameInvalid, parse_requirement, parse_specifier

PROBES = [Version(v) for v in ("0", "0.0.1", "1", "1.2.3", "1.2.3rc1", "2!1.0", "1.0.post1.dev3", "1.0+local")]


def test_one_input(data: bytes) -> None:
    text = data.decode("utf-8", "replace")
    try:
        spec = parse_specifier(text)
    except NameInvalid:
        spec = None
    if spec is not None:
        for probe in PROBES:
            spec.contains(probe, prereleases=True)
        written = text.strip()
        core = written.lstrip("^~").strip()
        if written[:1] in "^~" and core and all(p.isdigit() for p in core.split(".")):
            assert spec.contains(Version(core), prereleases=True), (written, str(spec))
        elif written and all(p.isdigit() for p in written.split(".")) and written.count(".") <= 1:
            assert spec.contains(Version(written), prereleases=True), (written, str(spec))
    try:
        requirement = parse_requirement(text)
    except NameInvalid:
        return
    assert requirement.name.count("/") == 1 and str(requirement) == text.strip()


if __name__ == "__main__":
    atheris.Setup(sys.argv, test_one_input)
    atheris.Fuzz()
