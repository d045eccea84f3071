"""Package names and specifiers: what is allowed, what each specifier form means."""

from __future__ import annotations

import pytest
from packaging.version import Version

from cspm.formats.names import NameInvalid, check_name, parse_requirement, parse_specifier


@pytest.mark.parametrize(("spec", "inside", "outside"), [
    ("^1.2", ["1.2.0", "1.9.9"], ["1.1.9", "2.0.0"]),
    ("^0.2.3", ["0.2.3", "0.2.9"], ["0.3.0", "0.2.2"]),
    ("^0.0.3", ["0.0.3"], ["0.0.4"]),
    ("~1.2", ["1.2.0", "1.2.7"], ["1.3.0"]),
    ("~1", ["1.0.0", "1.9.0"], ["2.0.0"]),
    ("1", ["1.0.0", "1.5.2"], ["2.0.0", "0.9"]),
    ("1.2", ["1.2.0", "1.2.5"], ["1.3.0"]),
    ("1.2.3", ["1.2.3"], ["1.2.4"]),
    (">=1,<2", ["1.0", "1.99"], ["2.0"]),
    ("~=1.0", ["1.0", "1.5"], ["2.0"]),
    ("", ["0.1", "99.0"], []),
    ("*", ["3.0"], []),
])
def test_specifier_forms(spec: str, inside: list[str], outside: list[str]) -> None:
    parsed = parse_specifier(spec)
    assert all(Version(v) in parsed for v in inside)
    assert not any(Version(v) in parsed for v in outside)


@pytest.mark.parametrize("bad", ["a/../b", "../a", "a/b/c", "A/b", "a\x00/b", "\u0430pple/b", "-a/b", "a-/b", "a/",
                                 "/b", "a b/c", "a/" + "x" * 65, "", "a\\b/c"])
def test_names_that_could_escape_or_confuse_are_refused(bad: str) -> None:
    with pytest.raises(NameInvalid):
        check_name(bad)


def test_good_names() -> None:
    assert check_name("chainsocket/openai-chat") == "chainsocket/openai-chat"
    assert check_name("a/b") == "a/b" and check_name("x" * 64 + "/y") == "x" * 64 + "/y"


def test_requirements() -> None:
    req = parse_requirement("chainsocket/openai-chat@>=1,<2")
    assert (req.name, str(req.specifier), req.namespace) == ("chainsocket/openai-chat", "<2,>=1", "chainsocket")
    assert str(parse_requirement("chainsocket/serpapi~=1.0").specifier) == "~=1.0"
    assert str(parse_requirement("a/b").specifier) == ""
    with pytest.raises(NameInvalid, match="is not a version specifier"):
        parse_requirement("a/b@>>1")
    with pytest.raises(NameInvalid, match="must be `namespace/name`"):
        parse_requirement("justaname@1")
