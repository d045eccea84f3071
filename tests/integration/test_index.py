"""The federated index and the resolver over real folder and loopback-HTTP registries."""

from __future__ import annotations

import json
from pathlib import Path
from typing import Any

import pytest
from packaging.specifiers import SpecifierSet
from packaging.version import Version

from cspm.formats.index_line import to_line
from cspm.formats.userconfig import Registry, UserConfig
from cspm.index.cache import IndexCache
from cspm.index.federation import Federation, PackageNotFound
from cspm.index.source import IndexSource, RegistryUnavailable
from cspm.resolver import Req, ResolutionError, resolve

DIGEST = "sha256:" + "ab" * 32


def entry(name: str, version: str, **extra: Any) -> dict[str, Any]:
    return {"name": name, "version": version, "kind": extra.pop("kind", "tool"), "abi": extra.pop("abi", 1),
            "digest": DIGEST, "size": 10, "exports": ["call"], "imports": [], "capabilities": {}, **extra}


def make_registry(folder: Path, packages: dict[str, list[dict[str, Any]]]) -> Path:
    for name, lines in packages.items():
        path = folder / "index" / name
        path.parent.mkdir(parents=True, exist_ok=True)
        path.write_text("".join(to_line(line) + "\n" for line in lines))
    folder.mkdir(parents=True, exist_ok=True)
    (folder / "config.json").write_text(json.dumps({"name": folder.name, "dl": "blobs/sha256/{hex}"}))
    return folder


def federation(*registries: Registry, **kwargs: Any) -> Federation:
    return Federation(UserConfig(Path("/nonexistent"), list(registries)), **kwargs)


def req(text: str, spec: str = "") -> Req:
    return Req(text, SpecifierSet(spec), "app component `x`")


def test_highest_matching_non_yanked_version(tmp_path: Path) -> None:
    reg = make_registry(tmp_path / "main", {"acme/calc": [
        entry("acme/calc", "1.0.0"), entry("acme/calc", "1.2.0"), entry("acme/calc", "1.3.0", yanked="bad"),
        entry("acme/calc", "2.0.0"), entry("acme/calc", "1.4.0", abi=2)]})
    fed = federation(Registry("main", reg.as_uri()))
    assert resolve([req("acme/calc", "<2")], fed)["acme/calc"].version == Version("1.2.0")
    # a yanked version only when the lock pins it
    pinned = resolve([req("acme/calc", "<2")], fed, pinned={"acme/calc": Version("1.3.0")})
    assert pinned["acme/calc"].version == Version("1.3.0")
    # a pin is kept while it matches, and dropped by an upgrade
    assert resolve([req("acme/calc")], fed, pinned={"acme/calc": Version("1.0.0")})["acme/calc"].version == \
        Version("1.0.0")
    assert resolve([req("acme/calc")], fed, pinned={"acme/calc": Version("1.0.0")}, upgrade=set())[
        "acme/calc"].version == Version("2.0.0")


def test_namespace_routing_refuses_shadowing(tmp_path: Path) -> None:
    corp = make_registry(tmp_path / "corp", {"corp/secret-tool": [entry("corp/secret-tool", "1.0.0")]})
    public = make_registry(tmp_path / "public", {
        "corp/secret-tool": [entry("corp/secret-tool", "99.0.0")],  # the shadowing attempt
        "corp/other": [entry("corp/other", "1.0.0")],
        "acme/calc": [entry("acme/calc", "1.0.0")]})
    fed = federation(Registry("public", public.as_uri()), Registry("corp", corp.as_uri(), ("corp",)))
    chosen = resolve([req("corp/secret-tool")], fed)["corp/secret-tool"]
    assert (chosen.registry, chosen.version) == ("corp", Version("1.0.0"))
    with pytest.raises(PackageNotFound, match=r"corp/other was not found; registries asked: corp "
                                              r"\(namespace 'corp' is served only by corp\)"):
        fed.versions("corp/other")
    # a bound registry serves nothing outside its namespaces
    assert fed.versions("acme/calc").source.registry.name == "public"


def test_first_index_wins_over_higher_versions_later(tmp_path: Path) -> None:
    first = make_registry(tmp_path / "first", {"acme/calc": [entry("acme/calc", "1.0.0")]})
    second = make_registry(tmp_path / "second", {"acme/calc": [entry("acme/calc", "5.0.0")],
                                                 "acme/only2": [entry("acme/only2", "1.0.0")]})
    fed = federation(Registry("first", first.as_uri()), Registry("second", second.as_uri()))
    assert resolve([req("acme/calc")], fed)["acme/calc"].registry == "first"
    assert fed.versions("acme/only2").source.registry.name == "second"
    with pytest.raises(PackageNotFound, match="acme/nope was not found; registries asked: first, second"):
        fed.versions("acme/nope")


def test_conflict_names_the_chain(tmp_path: Path) -> None:
    reg = make_registry(tmp_path / "main", {
        "acme/bundle": [entry("acme/bundle", "1.0.0", kind="app", dependencies={"acme/calc": ">=2"})],
        "acme/calc": [entry("acme/calc", "1.0.0"), entry("acme/calc", "2.1.0")]})
    fed = federation(Registry("main", reg.as_uri()))
    with pytest.raises(ResolutionError) as info:
        resolve([req("acme/bundle"), Req("acme/calc", SpecifierSet("<2"), "app component `calc`")], fed)
    text = str(info.value)
    assert "acme/bundle 1.0.0 requires acme/calc@>=2" in text
    assert "app component `calc` requires acme/calc@<2" in text
    assert "acme/calc has: 1.0.0, 2.1.0 (registry main)" in text
    # transitive dependencies resolve when they can
    result = resolve([req("acme/bundle")], fed)
    assert result["acme/calc"].version == Version("2.1.0")


def test_bad_lines_are_skipped_with_a_warning(tmp_path: Path) -> None:
    reg = make_registry(tmp_path / "main", {"acme/calc": [entry("acme/calc", "1.0.0")]})
    with (reg / "index" / "acme" / "calc").open("a") as handle:
        handle.write('{"name": "acme/calc", "version": "9.0.0"}\n')
    warnings: list[str] = []
    fed = federation(Registry("main", reg.as_uri()), warn=warnings.append)
    assert [str(e.version) for e in fed.versions("acme/calc").entries] == ["1.0.0"]
    assert len(warnings) == 1 and "index/acme/calc:2" in warnings[0]


def test_http_index_revalidates_with_etag_and_falls_back_when_down(tmp_path: Path, scripted) -> None:  # type: ignore[no-untyped-def]
    server = scripted()
    body = to_line(entry("acme/calc", "1.0.0")) + "\n"
    server.reply(raw=body, headers={"ETag": '"v1"', "Last-Modified": "Mon, 23 Nov 2026 10:00:00 GMT"})
    server.reply(status=304, raw="", headers={"ETag": '"v1"'})
    cache = IndexCache("web", tmp_path / "cache")
    registry = Registry("web", server.url)
    source = IndexSource(registry, cache=cache)
    assert source.read("index/acme/calc").body == body.encode()
    again = source.read("index/acme/calc")
    assert again.body == body.encode() and again.from_cache
    assert server.seen[1].headers["if-none-match"] == '"v1"'
    assert server.seen[1].headers["if-modified-since"] == "Mon, 23 Nov 2026 10:00:00 GMT"
    # offline: the cache alone, no request
    assert IndexSource(registry, cache=cache, offline=True).read("index/acme/calc").body == body.encode()
    assert len(server.seen) == 2
    # the registry answers 503: the cached copy, with one warning
    server.reply(status=503, raw="down")
    warnings: list[str] = []
    down = IndexSource(registry, cache=cache, warn=warnings.append).read("index/acme/calc")
    assert down.stale and down.body == body.encode()
    assert warnings == ["registry web cannot be reached (HTTP 503): using its cached index"]
    server.close()
    warnings.clear()
    assert IndexSource(registry, cache=cache, warn=warnings.append).read("index/acme/calc").stale
    assert "registry web cannot be reached" in warnings[0]
    # nothing cached and nothing reachable: an error that says what to do
    with pytest.raises(RegistryUnavailable, match=r"registry web .* cannot be reached") as info:
        IndexSource(registry, cache=cache).read("index/acme/other")
    assert "no cached copy of its index" in (info.value.hint or "")


def test_blob_urls_stay_inside_a_folder_registry(tmp_path: Path) -> None:
    reg = make_registry(tmp_path / "main", {})
    source = IndexSource(Registry("main", reg.as_uri()))
    assert source.blob_url(DIGEST) == f"{reg.as_uri()}/blobs/sha256/{'ab' * 32}"
    (reg / "config.json").write_text(json.dumps({"dl": "https://elsewhere.test/{hex}"}))
    with pytest.raises(RegistryUnavailable, match="cannot send downloads elsewhere"):
        IndexSource(Registry("main", reg.as_uri())).blob_url(DIGEST)


def test_a_broken_index_file_does_not_hand_the_name_to_a_later_registry(tmp_path: Path) -> None:
    first, second = tmp_path / "first", tmp_path / "second"
    (first / "index" / "acme").mkdir(parents=True)
    (first / "index" / "acme" / "calc").write_text("{not json\n")
    make_registry(second, {"acme/calc": [entry("acme/calc", "1.0.0")]})
    both = federation(Registry("first", first.as_uri()), Registry("second", second.as_uri()))
    with pytest.raises(PackageNotFound, match="registry first has acme/calc, but none of its index lines is valid"):
        both.versions("acme/calc")
