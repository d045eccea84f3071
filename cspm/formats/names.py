"""Package names and requirements (`namespace/name@specifier`), checked once, here.

A name becomes a path in the index and in caches, so only `[a-z0-9-]` is allowed: no `..`, no `/`
beyond the one separator, no NUL, no Unicode look-alikes, no trailing newline (every check is a
`fullmatch`: Python's `$` also matches before a final newline). Specifiers are PEP 440 (`packaging`),
plus npm/Cargo habits translated: `^1.2`, `~1.2`, and a bare `1` or `1.2` meaning that series.
"""

from __future__ import annotations

import re
from dataclasses import dataclass

from packaging.specifiers import InvalidSpecifier, SpecifierSet
from packaging.version import InvalidVersion, Version

from cspm.errors import NameInvalid

_PART = r"[a-z0-9](?:[a-z0-9-]{0,62}[a-z0-9])?"
PART_RE = re.compile(_PART)  # every pattern here is used with fullmatch, never match + `$`
NAME_RE = re.compile(rf"{_PART}/{_PART}")
_CARET_TILDE = re.compile(r"([\^~])\s*(\d+(?:\.\d+){0,2})")
_PARTIAL = re.compile(r"\d+(?:\.\d+)?")
_EXACT = re.compile(r"\d+(?:\.\d+){2,}\S*")
_PEP508 = re.compile(r"([^<>=!~^ ]+)(.*)", re.DOTALL)
MAX_SPEC = 256


def check_part(part: str, what: str = "namespace") -> str:
    if not isinstance(part, str) or not PART_RE.fullmatch(part):
        raise NameInvalid(f"{what} {part!r} is not allowed: use lowercase letters, digits and '-' "
                         f"(1-64 characters, not starting or ending with '-')")
    return part


REGISTRY_NAME_RE = re.compile(r"[a-z0-9][a-z0-9_-]{0,63}")  # as config.json and lock.json spell it


def check_registry_name(name: str) -> str:
    """A registry's name in the user config (and so in app.lock and credentials): one rule everywhere."""
    if not isinstance(name, str) or not REGISTRY_NAME_RE.fullmatch(name):
        raise NameInvalid(f"registry name {name!r} is not allowed: use lowercase letters, digits, '-' and '_' "
                         f"(1-64 characters, starting with a letter or digit)")
    return name


def check_name(name: str) -> str:
    """A `namespace/name`, or an error saying exactly why not."""
    if not isinstance(name, str) or not NAME_RE.fullmatch(name):
        shown = repr(name)[:80]
        if isinstance(name, str) and name.count("/") != 1:
            raise NameInvalid(f"package name {shown} must be `namespace/name`")
        raise NameInvalid(f"package name {shown} is not allowed: namespace and name use lowercase letters, "
                         f"digits and '-' (1-64 characters each, not starting or ending with '-')")
    return name


def parse_version(text: str) -> Version:
    """A PEP 440 version written exactly: `packaging` alone also takes surrounding whitespace (`1.0\\n`),
    and a version is a path part and a lock field, so it must be the same text everywhere."""
    try:
        if text != text.strip():
            raise InvalidVersion(text)
        return Version(text)
    except (InvalidVersion, TypeError, AttributeError):
        raise NameInvalid(f"{text!r} is not a PEP 440 version (e.g. 1.0.0)") from None


def parse_specifier(text: str) -> SpecifierSet:
    """PEP 440, `^X.Y.Z`, `~X.Y.Z`, `X` / `X.Y` (that series), `X.Y.Z` (exactly), `*` or empty (any)."""
    text = (text or "").strip()
    if len(text) > MAX_SPEC:
        raise NameInvalid(f"specifier is longer than {MAX_SPEC} characters")
    if text in ("", "*"):
        return SpecifierSet()
    try:
        match = _CARET_TILDE.fullmatch(text)
        if match:
            return SpecifierSet(_translate(match.group(1), match.group(2)))
        if _PARTIAL.fullmatch(text):
            return SpecifierSet(f"=={text}.*")
        if _EXACT.fullmatch(text):
            return SpecifierSet(f"=={text}")
        return SpecifierSet(text)
    except InvalidSpecifier:
        raise NameInvalid(f"{text!r} is not a version specifier: use PEP 440 (>=1.2,<2), ^1.2, ~1.2 or 1") from None


def _translate(op: str, version: str) -> str:
    parts = [int(p) for p in version.split(".")]
    if op == "~":  # ~1 -> 1.x ; ~1.2 / ~1.2.3 -> 1.2.x
        upper = [parts[0] + 1] if len(parts) == 1 else [parts[0], parts[1] + 1]
    else:  # ^: the leftmost non-zero part may not change (Cargo/npm)
        padded = parts + [0] * (3 - len(parts))
        index = next((i for i, p in enumerate(padded[: len(parts)]) if p != 0), len(parts) - 1)
        upper = [*parts[:index], parts[index] + 1]
    return f">={version},<{'.'.join(map(str, upper))}"


@dataclass(frozen=True)
class Requirement:
    name: str
    specifier: SpecifierSet
    text: str  # as the user wrote it, for messages

    def __str__(self) -> str:
        return self.text

    @property
    def namespace(self) -> str:
        return self.name.split("/", 1)[0]


def parse_requirement(text: str) -> Requirement:
    """`ns/name`, `ns/name@SPEC`; also `ns/name>=1,<2` (PEP 508 style, no `@`)."""
    if not isinstance(text, str) or len(text) > 512:
        raise NameInvalid("a requirement is `namespace/name@specifier`")
    text = text.strip()
    if "@" in text:
        name, spec = text.split("@", 1)
    else:
        match = _PEP508.fullmatch(text)
        name, spec = (match.group(1), match.group(2)) if match else (text, "")
    return Requirement(check_name(name.strip(" ")), parse_specifier(spec), text)
