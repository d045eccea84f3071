"""What `cspm search` and `cspm info` ask the federation: package names and their versions.

Search reads each registry's `names` file (JSON lines `{"name", "kind", "description", "latest"}`,
written beside `index/` by every index producer), so a static host can answer it too; the same
files give "did you mean" for a name no registry has.
"""

from __future__ import annotations

import difflib
from dataclasses import dataclass

from cspm.errors import CspmError
from cspm.formats import bounded_json
from cspm.formats.index_line import IndexEntry
from cspm.formats.names import PART_RE, check_name, parse_requirement
from cspm.index.federation import Federation, PackageNotFound
from cspm.index.source import IndexSource
from cspm.protocol.layout import NAMES_FILE

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


def _names_of(source: IndexSource) -> list[Hit]:
    body = source.read(NAMES_FILE, MAX_NAMES_FILE).body
    return parse_names(body or b"", source.registry.name)


def all_names(federation: Federation) -> list[Hit]:
    """Every registry's `names`, in the user's registry order, read once per federation.

    A registry that cannot answer (down, nothing cached) is left out with a warning naming it, so one
    registry never takes the others' answers with it; only when none answers is that an error.
    """
    if federation.names is not None:
        return federation.names
    hits: list[Hit] = []
    failed: list[CspmError] = []
    for source in federation.sources:
        try:
            hits.extend(_names_of(source))
        except CspmError as exc:
            failed.append(exc)
            federation.warn(f"{exc.message} (registry {source.registry.name} is left out of this answer)")
    if failed and len(failed) == len(federation.sources):
        raise failed[0]
    federation.names = hits
    return hits


def search(federation: Federation, text: str, limit: int = 50) -> list[Hit]:
    """Names or descriptions containing every word of `text`, from every registry, routed like installs."""
    words = text.lower().split()
    seen: set[str] = set()
    found = []
    by_registry = {s.registry.name: s for s in federation.sources}
    for hit in all_names(federation):
        haystack = f"{hit.name} {hit.description}".lower()
        if hit.name in seen or not all(w in haystack for w in words):
            continue
        if by_registry[hit.registry] not in federation.candidates(hit.name):
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


def suggest(federation: Federation, text: str, limit: int = 3) -> list[str]:
    """Known package names closest to `text` (`ns/name` or a bare `name`): the same namespace first,
    then the bare name matched across namespaces (`calculator` -> `chainsocket/calculator`)."""
    text = text.strip().lower().split("@", 1)[0]
    namespace, _, short = text.rpartition("/")
    by_short: dict[str, list[str]] = {}
    for hit in all_names(federation):
        names = by_short.setdefault(hit.name.split("/")[1], [])
        if hit.name not in names:
            names.append(hit.name)

    def close(names: list[str]) -> list[str]:  # by the name's own part: a shared namespace proves nothing
        shorts = list(dict.fromkeys(n.split("/")[1] for n in names))
        found = [short] if short in shorts else difflib.get_close_matches(short, shorts, n=limit, cutoff=0.75)
        return [n for s in found for n in names if n.split("/")[1] == s]

    everything = [n for names in by_short.values() for n in names]
    same = close([n for n in everything if n.split("/")[0] == namespace]) if namespace else []
    return [n for n in dict.fromkeys([*same, *close(everything)]) if n != text][:limit]


def did_you_mean(federation: Federation, text: str) -> str | None:
    """`did you mean a/b?` for a name that is not known, or None when nothing is close."""
    names = suggest(federation, text)
    if not names:
        return None
    return "did you mean " + (names[0] if len(names) == 1 else ", ".join(names[:-1]) + " or " + names[-1]) + "?"


def bare_name(federation: Federation, text: str) -> PackageNotFound | None:
    """The error for a bare `name` given where `namespace/name` is needed, with the closest known
    names; None when `text` is not a bare name (its own parse error then says what is wrong)."""
    name = text.split("@", 1)[0]
    if "/" in name or not PART_RE.fullmatch(name):
        return None
    try:
        hint = did_you_mean(federation, name)
    except CspmError:
        hint = None
    return PackageNotFound(f"{name!r} is not a package name: names are NAMESPACE/NAME",
                           hint=hint or "find it with `cspm search`")


def info(federation: Federation, text: str) -> Info:
    """`ns/name` (the newest non-yanked version) or `ns/name@spec` (the newest match)."""
    bare = bare_name(federation, text)
    if bare is not None:
        raise bare
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
