"""Index lines are forward compatible (Cargo's `v`): a newer format's line is skipped with a note to
upgrade, unknown fields are ignored, and the known fields are checked as strictly as before."""

from __future__ import annotations

import pytest
from packaging.specifiers import SpecifierSet
from packaging.version import Version

from cspm.errors import BadIndexLine
from cspm.formats import index_line
from cspm.formats.index_line import FORMAT_VERSION, from_dict, parse_file, to_line
from cspm.formats.userconfig import Registry
from cspm.resolver import Req, resolve
from tests.integration.test_index import entry, federation, make_registry


def test_a_line_of_a_newer_format_is_skipped_and_the_rest_resolve(tmp_path) -> None:  # type: ignore[no-untyped-def]
    future = entry("acme/calc", "2.0.0", v=FORMAT_VERSION + 1, new_field={"x": 1})
    reg = make_registry(tmp_path / "main", {"acme/calc": [entry("acme/calc", "1.0.0", v=1), future]})
    warnings: list[str] = []
    fed = federation(Registry("main", reg.as_uri()), warn=warnings.append)
    chosen = resolve([Req("acme/calc", SpecifierSet(""), "app component `x`")], fed)["acme/calc"]
    assert chosen.version == Version("1.0.0")
    assert len(warnings) == 1 and f"index format v{FORMAT_VERSION + 1}" in warnings[0] and "upgrade cspm" in warnings[0]


def test_unknown_fields_are_ignored_and_absent_v_means_1() -> None:
    parsed = from_dict(entry("acme/calc", "1.0.0", mirrors=["https://x.test"], v=1), "acme/calc", "t:1")
    assert parsed.version == Version("1.0.0") and "mirrors" not in parsed.manifest_fields()
    assert from_dict(entry("acme/calc", "1.0.0"), "acme/calc", "t:1").digest.startswith("sha256:")


@pytest.mark.parametrize("bad", [0, -1, "1", 1.5, True, None])
def test_a_v_that_is_not_a_format_version_is_refused(bad: object) -> None:
    with pytest.raises(BadIndexLine, match="format version"):
        from_dict(entry("acme/calc", "1.0.0", v=bad), "acme/calc", "t:1")


def test_known_fields_stay_strict_with_unknown_ones_beside_them() -> None:
    with pytest.raises(BadIndexLine, match="size"):
        from_dict(entry("acme/calc", "1.0.0", size="ten", extra=1), "acme/calc", "t:1")
    entries, problems = parse_file((to_line(entry("acme/calc", "1.0.0", v=9)) + "\n").encode(), "acme/calc", "f")
    assert entries == [] and "v9" in problems[0]
    assert {"v", "name", "digest"} <= index_line.KNOWN_FIELDS
