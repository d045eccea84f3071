"""Resolution with resolvelib: the highest matching, non-yanked, ABI-compatible version of each name.

Requirements come from the app's components and, transitively, from app packages' `dependencies`.
A version pinned by the existing lock is preferred while it still matches (so `cspm lock` changes
nothing that need not change), and is the only way a yanked version is ever chosen: kept by a plain
lock (with a warning, see cspm.project), tried last by an upgrade of its name.
"""

from __future__ import annotations

from collections.abc import Iterable, Iterator, Mapping, Sequence
from dataclasses import dataclass
from typing import Any

from packaging.specifiers import SpecifierSet
from packaging.version import Version
from resolvelib import AbstractProvider, BaseReporter, ResolutionImpossible, Resolver
from resolvelib.resolvers import ResolutionTooDeep

from cspm.errors import CspmError, ResolutionError
from cspm.formats.index_line import IndexEntry
from cspm.formats.manifest import SUPPORTED_ABI
from cspm.index.federation import Federation

MAX_ROUNDS = 20_000


@dataclass(frozen=True)
class Req:
    name: str
    specifier: SpecifierSet
    origin: str  # "app component `search`" or "acme/bundle 1.2.0"

    def __str__(self) -> str:
        return f"{self.name}{'@' + str(self.specifier) if str(self.specifier) else ''}"


@dataclass(frozen=True)
class Candidate:
    entry: IndexEntry
    registry: str

    @property
    def name(self) -> str:
        return self.entry.name

    @property
    def version(self) -> Version:
        return self.entry.version


class _Provider(AbstractProvider):  # type: ignore[type-arg]
    def __init__(self, federation: Federation, pinned: Mapping[str, Version], upgrade: set[str] | None) -> None:
        self.federation = federation
        self.pinned = pinned
        self.upgrade = upgrade  # None: keep pins; empty set: upgrade everything; else: these names
        # `version in specifier`, memoised: resolvelib asks the same pairs again on every round
        # (packaging's check is ~3 µs; it was half of a resolve). Keyed by identity, and the value keeps
        # both objects alive, so an id is never reused for another object while its entry exists.
        self._contains: dict[tuple[int, int], tuple[bool, SpecifierSet, Version]] = {}

    def _matches(self, specifier: SpecifierSet, version: Version) -> bool:
        key = (id(specifier), id(version))
        hit = self._contains.get(key)
        if hit is None:
            hit = (version in specifier, specifier, version)
            self._contains[key] = hit
        return hit[0]

    def identify(self, requirement_or_candidate: Req | Candidate) -> str:
        return requirement_or_candidate.name

    def get_preference(self, identifier: str, resolutions: Mapping[str, Candidate],
                       candidates: Mapping[str, Iterator[Candidate]], information: Mapping[str, Any],
                       backtrack_causes: Sequence[Any]) -> Any:
        return sum(1 for _ in information[identifier])

    def _keeps_pin(self, name: str) -> bool:
        if self.upgrade is None:
            return True
        return bool(self.upgrade) and name not in self.upgrade

    def find_matches(self, identifier: str, requirements: Mapping[str, Iterator[Req]],
                     incompatibilities: Mapping[str, Iterator[Candidate]]) -> Iterable[Candidate]:
        found = self.federation.versions(identifier)
        specs = [r.specifier for r in requirements[identifier]]
        bad = {c.version for c in incompatibilities[identifier]}
        pin = self.pinned.get(identifier)
        out = []
        for entry in reversed(found.entries):
            if entry.version in bad or entry.abi != SUPPORTED_ABI:
                continue
            if not all(self._matches(s, entry.version) for s in specs):
                continue
            if entry.is_yanked and entry.version != pin:
                continue
            out.append(Candidate(entry, found.source.registry.name))
        if pin is not None and self._keeps_pin(identifier):
            out.sort(key=lambda c: c.version != pin)  # stable: the pin first, then highest first
        else:  # an upgrade moves off a yanked pin whenever anything else matches (Cargo's rule)
            out.sort(key=lambda c: c.entry.is_yanked)
        return out

    def is_satisfied_by(self, requirement: Req, candidate: Candidate) -> bool:
        return self._matches(requirement.specifier, candidate.version)

    def get_dependencies(self, candidate: Candidate) -> Iterable[Req]:
        origin = f"{candidate.name} {candidate.version}"
        return [Req(name, spec, origin) for name, spec in candidate.entry.dependencies.items()]


def resolve(requirements: list[Req], federation: Federation, *, pinned: Mapping[str, Version] | None = None,
            upgrade: set[str] | None = None) -> dict[str, Candidate]:
    """`upgrade=None` keeps lock pins that still match; `set()` upgrades everything; `{names}` those."""
    kept = _pins_that_fit(requirements, federation, pinned or {}) if upgrade is None else None
    if kept is not None:
        return kept
    provider = _Provider(federation, pinned or {}, upgrade)
    try:
        result = Resolver(provider, BaseReporter()).resolve(requirements, max_rounds=MAX_ROUNDS)
    except ResolutionImpossible as exc:
        raise ResolutionError(_explain(exc, federation)) from None
    except ResolutionTooDeep:
        raise ResolutionError(f"resolution gave up after {MAX_ROUNDS} rounds: the requirements are too "
                              f"tangled; pin some versions") from None
    return dict(result.mapping)


def _pins_that_fit(requirements: list[Req], federation: Federation, pinned: Mapping[str, Version]
                   ) -> dict[str, Candidate] | None:
    """The lock's pins, when they alone satisfy every requirement: each name reached (from
    `requirements`, then through the pinned versions' dependencies) is pinned, its pinned version is
    in the index with the supported ABI, and matches every requirement on it. That is what resolvelib
    would return (the provider offers each name's pin first, and a set of first choices that conflicts
    nowhere is never backtracked), without its rounds: a re-lock of an unchanged 50-plug-in app is
    quadratic there (~20 ms). None when anything differs: the full resolution decides, and reports."""
    if not pinned:
        return None
    chosen: dict[str, Candidate] = {}
    todo = list(requirements)
    try:
        while todo:
            requirement = todo.pop()
            candidate = chosen.get(requirement.name)
            if candidate is None:
                pin = pinned.get(requirement.name)
                if pin is None:
                    return None
                found = federation.versions(requirement.name)
                entry = next((e for e in found.entries if e.version == pin), None)
                if entry is None or entry.abi != SUPPORTED_ABI:
                    return None
                candidate = Candidate(entry, found.source.registry.name)
                chosen[requirement.name] = candidate
                origin = f"{candidate.name} {candidate.version}"
                todo.extend(Req(name, spec, origin) for name, spec in entry.dependencies.items())
            if candidate.version not in requirement.specifier:
                return None
    except CspmError:
        return None  # met again by the full resolution, which says it in its own words
    return chosen


def _explain(exc: ResolutionImpossible, federation: Federation) -> str:  # type: ignore[type-arg]
    lines, names = [], set()
    for info in exc.causes:
        requirement: Req = info.requirement
        names.add(requirement.name)
        by = f"{info.parent.name} {info.parent.version}" if info.parent is not None else requirement.origin
        lines.append(f"  {by} requires {requirement}")
    available = []
    for name in sorted(names):
        try:
            versions = federation.versions(name)
        except CspmError:
            continue
        shown = ", ".join(str(e.version) + (" (yanked)" if e.is_yanked else "") for e in versions.entries[-8:])
        available.append(f"  {name} has: {shown} (registry {versions.source.registry.name})")
    return "no set of versions satisfies these requirements together:\n" + "\n".join(
        dict.fromkeys(lines)) + ("\n" + "\n".join(available) if available else "")
