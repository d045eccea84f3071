"""Which registry answers for a name: namespace routing, then first-index in the user's order.

A registry bound to namespaces (`namespaces: [corp]`) is the only one asked for them and serves
nothing else; every other name goes to the unbound registries in order, and the first one that has
the name wins. So a public index can never shadow a private name, and the same app resolves the
same way on every machine with the same config.
"""

from __future__ import annotations

from concurrent.futures import ThreadPoolExecutor
from dataclasses import dataclass
from typing import TYPE_CHECKING

from cspm.errors import BrokenIndex, CspmError, PackageNotFound
from cspm.formats.index_line import IndexEntry, parse_file
from cspm.formats.names import check_name
from cspm.formats.userconfig import UserConfig
from cspm.index import parsed
from cspm.index.source import IndexSource, Warn, source_for

if TYPE_CHECKING:
    from packaging.version import Version

    from cspm.index.query import Hit

PREFETCH_WORKERS = 8


@dataclass
class Versions:
    source: IndexSource
    entries: list[IndexEntry]  # ascending by version
    stale: bool = False


class Federation:
    def __init__(self, config: UserConfig, *, offline: bool = False, warn: Warn | None = None,
                 prefer_cache: bool = False) -> None:
        self.config = config
        self.offline = offline
        self.warn = warn or (lambda message: None)
        self.sources = [source_for(r, offline=offline, warn=self.warn, prefer_cache=prefer_cache)
                        for r in config.registries]
        self._memo: dict[str, Versions] = {}
        self.names: list[Hit] | None = None  # every registry's `names` file, once read (cspm.index.query)

    def source(self, registry: str) -> IndexSource | None:
        return next((s for s in self.sources if s.registry.name == registry), None)

    def candidates(self, name: str) -> list[IndexSource]:
        namespace = check_name(name).split("/")[0]
        bound = [s for s in self.sources if namespace in s.registry.namespaces]
        return bound or [s for s in self.sources if not s.registry.namespaces]

    def versions(self, name: str) -> Versions:
        if name in self._memo:
            return self._memo[name]
        asked = []
        for source in self.candidates(name):
            asked.append(source.registry.name)
            fetched = source.read(source.index_path(name))
            if fetched.body is None:
                continue
            entries, problems = parsed.parse(fetched.body, name, f"registry {source.registry.name}: "
                                                                  f"{source.index_path(name)}")
            for problem in problems:
                self.warn(f"skipped a bad index line: {problem}")
            if entries:
                found = Versions(source, entries, fetched.stale)
                self._memo[name] = found
                return found
            if fetched.body.strip():  # the name is here, but broken: never fall through to a later registry
                raise BrokenIndex(f"registry {source.registry.name} has {name}, but none of its index lines "
                                      f"is valid ({problems[0] if problems else 'empty'})",
                                      hint="tell the registry's operator; later registries are not asked, so "
                                           "they cannot stand in for it")
        raise PackageNotFound(self._not_found(name, asked), hint=self._did_you_mean(name))

    def known_yank(self, name: str, version: Version, digest: str, registry: str | None = None) -> IndexEntry | None:
        """The entry of exactly this pin when what is already read or cached (`registry`'s, or routed)
        says it is yanked; never the network. Cheap enough for the warm path of `cspm run`: only a
        line that names the digest and is not plainly `"yanked":false` is parsed (parsing a whole
        index file costs more than the rest of the check)."""
        if name in self._memo:
            entries = self._memo[name].entries
        else:
            entries = []
            sources = [self.source(registry)] if registry is not None else self.candidates(name)
            for source in sources:
                if source is None:
                    continue
                body = source.peek(source.index_path(name))
                if not body:
                    continue
                lines = [line for line in body.splitlines() if digest.encode() in line and b'"yanked"' in line
                         and b'"yanked":false' not in line]
                if lines:
                    entries, _ = parse_file(b"\n".join(lines), name,
                                            f"registry {source.registry.name}: {source.index_path(name)}")
                break  # the first registry that has the file answers for the name, as in `versions`
        return next((e for e in entries if e.version == version and e.digest == digest and e.is_yanked), None)

    def prefetch(self, names: list[str]) -> None:
        """Read the index files of `names` in parallel (the resolver then finds them memoised).

        A lock of 50 plug-ins over HTTP otherwise waits for 50 revalidations one after another.
        Errors are left for the resolver to meet in order, with its own context.
        """
        todo = sorted({n for n in names if n not in self._memo})
        if len(todo) < 2 or all(s.is_local for s in self.sources):
            return
        for source in self.sources:
            source.prepare()  # one shared client, made before the threads race to make their own
        with ThreadPoolExecutor(max_workers=min(PREFETCH_WORKERS, len(todo))) as pool:
            for future in [pool.submit(self.versions, name) for name in todo]:
                future.exception()

    def _not_found(self, name: str, asked: list[str]) -> str:
        namespace = name.split("/")[0]
        bound = [s.registry.name for s in self.sources if namespace in s.registry.namespaces]
        where = ", ".join(asked) if asked else "none (no registry is configured for it)"
        text = f"{name} was not found; registries asked: {where}"
        if bound:
            text += f" (namespace {namespace!r} is served only by {', '.join(bound)})"
        if self.offline:
            text += "; offline: only cached index files were read"
        return text

    def _did_you_mean(self, name: str) -> str | None:
        """"did you mean …?" from the registries' `names` files (cspm.index.query.suggest); a registry
        that cannot answer only means fewer suggestions."""
        from cspm.index.query import did_you_mean

        try:
            return did_you_mean(self, name)
        except CspmError:
            return None

    def close(self) -> None:
        for source in self.sources:
            source.close()
