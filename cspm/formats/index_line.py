"""Index lines: `index/<namespace>/<name>` holds one JSON object per published version.

Modelled on Cargo's sparse index: append-only but for `yanked`. Everything in a line comes from a
registry and is untrusted: each line is parsed by `bounded_json` (no nesting past 64 levels, no
number past 100 digits: either would crash `json` or what walks the value next), checked against
`schemas/index-line.json`, its name must be
the file it came from, and its version and dependency specifiers must parse. A bad line is reported
with the registry and line number and skipped; it never stops the other versions from resolving.

Forward compatibility, as Cargo's `v`: a line carries its format version `v` (absent means 1). A
line of a newer format than this cspm reads is skipped with a note to upgrade (its other versions
still resolve), and fields this cspm does not know are dropped before the schema check, so a
registry can add a field without breaking older clients; the known fields are checked as strictly
as ever.
"""

from __future__ import annotations

import json
from dataclasses import dataclass, field
from typing import Any

from packaging.specifiers import SpecifierSet
from packaging.version import Version

from cspm import schemas
from cspm.errors import BadIndexLine
from cspm.formats import bounded_json
from cspm.formats.names import NameInvalid, parse_specifier, parse_version

MAX_LINE_BYTES = 256 * 1024
MAX_FILE_BYTES = 16 * 1024 * 1024
FORMAT_VERSION = 1  # the newest `v` this cspm reads; a v1 line leaves `v` out (absent means 1)
KNOWN_FIELDS = frozenset(schemas.load("index-line.json")["properties"])
# A Version is immutable and the same text always parses the same: one object per text, shared by every
# line that has it (most lines of a big index repeat a few dozen version strings). Bounded.
_VERSIONS: dict[str, Version] = {}
MAX_SHARED_VERSIONS = 1 << 16


@dataclass(frozen=True)
class IndexEntry:
    name: str
    version: Version
    kind: str
    abi: int
    digest: str
    size: int
    exports: tuple[str, ...]
    imports: tuple[str, ...]
    capabilities: dict[str, Any]
    dependencies: dict[str, SpecifierSet] = field(default_factory=dict)
    yanked: bool | str = False
    signature: dict[str, Any] | None = None
    raw: dict[str, Any] = field(default_factory=dict, compare=False, hash=False)

    @property
    def is_yanked(self) -> bool:
        return bool(self.yanked)

    @property
    def description(self) -> str:
        return str(self.raw.get("description", ""))

    def manifest_fields(self) -> dict[str, Any]:
        """What the runtime needs of the manifest: config, secrets, input_schema, features, description."""
        return {k: self.raw[k] for k in ("description", "features", "config", "secrets", "input_schema", "wasi",
                                          "file") if k in self.raw}


def parse_line(text: str | bytes, expected_name: str, where: str) -> IndexEntry:
    if len(text) > MAX_LINE_BYTES:
        raise BadIndexLine(f"{where}: line longer than {MAX_LINE_BYTES} bytes")
    try:
        data = bounded_json.loads(text, max_bytes=MAX_LINE_BYTES)
    except bounded_json.JsonRejected as exc:
        raise BadIndexLine(f"{where}: {exc}") from None
    return from_dict(data, expected_name, where)


def from_dict(data: Any, expected_name: str, where: str) -> IndexEntry:
    if not isinstance(data, dict):
        raise BadIndexLine(f"{where}: an index line is a JSON object")
    version_of_format = data.get("v", 1)
    if type(version_of_format) is not int or version_of_format < 1:
        raise BadIndexLine(f"{where}: v: the format version is a whole number from 1, not {version_of_format!r:.40}")
    if version_of_format > FORMAT_VERSION:
        raise BadIndexLine(f"{where}: written in index format v{version_of_format}, newer than this cspm reads "
                           f"(v{FORMAT_VERSION}): skipped; upgrade cspm to use it")
    data = {key: value for key, value in data.items() if key in KNOWN_FIELDS}
    error = schemas.problem("index-line.json", data)
    if error is not None:
        at = ".".join(str(p) for p in error.absolute_path) or "line"
        raise BadIndexLine(f"{where}: {at}: {error.message[:200]}")
    if data["name"] != expected_name:
        raise BadIndexLine(f"{where}: line is for {data['name']!r}, not {expected_name!r}")
    return entry_of(data, where)


def entry_of(data: dict[str, Any], where: str) -> IndexEntry:
    """The entry of a line's known fields that passed the schema check (`from_dict`, or the record of
    a file checked before: cspm.index.parsed); its version and specifiers are parsed here."""
    text = data["version"]
    version = _VERSIONS.get(text) if isinstance(text, str) else None
    if version is None:
        try:
            version = parse_version(text)
        except NameInvalid:
            raise BadIndexLine(f"{where}: {text!r} is not a PEP 440 version") from None
        if len(_VERSIONS) < MAX_SHARED_VERSIONS:
            _VERSIONS[text] = version
    try:
        dependencies = {name: parse_specifier(spec) for name, spec in (data.get("dependencies") or {}).items()}
    except NameInvalid as exc:
        raise BadIndexLine(f"{where}: dependencies: {exc}") from None
    return IndexEntry(
        name=data["name"], version=version, kind=data["kind"], abi=data["abi"], digest=data["digest"],
        size=data["size"], exports=tuple(data["exports"]), imports=tuple(data["imports"]),
        capabilities=dict(data["capabilities"]), dependencies=dependencies,
        yanked=data.get("yanked", False), signature=data.get("signature"), raw=data,
    )


def parse_file(content: bytes, expected_name: str, source: str) -> tuple[list[IndexEntry], list[str]]:
    """All good lines of an index file, and a message for each bad one.

    A version listed twice may only differ in `yanked` (the later line wins); a second line with
    another digest is an attempt to swap a published module and is refused.
    """
    if len(content) > MAX_FILE_BYTES:
        return [], [f"{source}: index file larger than {MAX_FILE_BYTES} bytes: ignored"]
    entries: dict[Version, IndexEntry] = {}
    problems = []
    for number, line in enumerate(content.splitlines(), 1):
        if not line.strip():
            continue
        try:
            entry = parse_line(line, expected_name, f"{source}:{number}")
        except BadIndexLine as exc:
            problems.append(str(exc))
            continue
        earlier = entries.get(entry.version)
        if earlier is not None and earlier.digest != entry.digest:
            problems.append(f"{source}:{number}: version {entry.version} was already published with "
                            f"{earlier.digest}; a second digest is refused")
            continue
        entries[entry.version] = entry
    return sorted(entries.values(), key=lambda e: e.version), problems


def to_line(data: dict[str, Any]) -> str:
    """Canonical form: sorted keys, no spaces, so the same entry always gives the same bytes."""
    return json.dumps(data, sort_keys=True, separators=(",", ":"), ensure_ascii=False)
