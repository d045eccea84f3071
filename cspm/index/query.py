"""What `cspm search` and `cspm info` ask the federation: package names and their versions.

Search reads each registry's `names` file (JSON lines `{"name", "kind", "description", "latest"}`,
written beside `index/` by every index producer), so a static host can answer it too.
"""

from __future__ import annotations

from dataclasses import dataclass

from cspm.errors import CspmError
from cspm.formats import bounded_json
from cspm.formats.index_line import IndexEntry
from cspm.formats.names import check_name, parse_requirement
from cspm.index.federation import Federation

NAMES_FILE = "names"
MAX_NAMES_FILE = 16 << 20
MAX_NAMES_ROW = 64 * 1024  # one package's line of `names`; a longer one is skipped


@dataclass(frozen=True)
class Hit:
    name: str
    kind: str
    description: str
    latest: str
    registry: str

    def to_dict(self) -> dict[str, str]:
        return {"name": self.name, "kind": self.kind, "description": self.description, "latest": self.latest,
                "registry": self.registry}


def parse_names(body: bytes, registry: str) -> list[Hit]:
    """The valid lines of a names file; anything malformed is skipped (a search is best effort)."""
    hits = []
    for raw in body.decode("utf-8", "replace").splitlines()[:100_000]:
        try:
            data = bounded_json.loads(raw, max_bytes=MAX_NAMES_ROW)
            name = check_name(data["name"])
            fields = [str(data.get(k, ""))[:500] for k in ("kind", "description", "latest")]
        except (ValueError, KeyError, TypeError, CspmError):
            continue
        hits.append(Hit(name, fields[0], fields[1], fields[2], registry))
    return hits


def search(federation: Federation, text: str, limit: int = 50) -> list[Hit]:
    """Names or descriptions containing every word of `text`, from every registry, routed like installs."""
    words = text.lower().split()
    seen: set[str] = set()
    found = []
    for source in federation.sources:
        body = source.read(NAMES_FILE, MAX_NAMES_FILE).body
        for hit in parse_names(body or b"", source.registry.name):
            haystack = f"{hit.name} {hit.description}".lower()
            if hit.name in seen or not all(w in haystack for w in words):
                continue
            if source not in federation.candidates(hit.name):
                continue  # a name this registry may not serve here (another one owns its namespace)
            seen.add(hit.name)
            found.append(hit)
    found.sort(key=lambda h: (not h.name.split("/")[1].startswith(words[0]) if words else False, h.name))
    return found[:limit]


@dataclass
class Info:
    name: str
    registry: str
    entries: list[IndexEntry]  # ascending
    chosen: IndexEntry  # the version shown in detail
    stale: bool


def info(federation: Federation, text: str) -> Info:
    """`ns/name` (the newest non-yanked version) or `ns/name@spec` (the newest match)."""
    requirement = parse_requirement(text)
    found = federation.versions(requirement.name)
    matching = [e for e in found.entries if e.version in requirement.specifier]
    usable = [e for e in matching if not e.is_yanked] or matching
    if not usable:
        shown = ", ".join(str(e.version) for e in found.entries)
        raise CspmError(f"no version of {requirement.name} matches {requirement.specifier} "
                        f"(registry {found.source.registry.name} has {shown})")
    return Info(requirement.name, found.source.registry.name, found.entries, max(usable, key=lambda e: e.version),
                found.stale)
