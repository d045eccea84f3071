"""The package manager's fast paths give the answers of the slow ones: index files checked once and
kept by the hash of their bytes (cspm.index.parsed), the resolver's pins that still fit, the lock
comparison without YAML, and clients that load TLS roots only for https://."""

from __future__ import annotations

import json
import ssl
from pathlib import Path
from typing import Any

import pytest
from packaging.version import Version

from cspm import http_client
from cspm.formats import lock as lock_format
from cspm.formats.index_line import parse_file, to_line
from cspm.formats.names import parse_specifier
from cspm.formats.userconfig import Registry
from cspm.index import parsed
from cspm.resolver import Req, resolve
from cspm.store import digest_of
from tests.integration.test_index import entry, federation, make_registry

NAME = "acme/calc"


def index_bytes(lines: list[dict[str, Any] | str]) -> bytes:
    return "".join((line if isinstance(line, str) else to_line(line)) + "\n" for line in lines).encode()


def test_a_checked_file_is_read_back_as_parsed_with_its_problems(tmp_path: Path) -> None:
    body = index_bytes([entry(NAME, "1.0.0"), "{not json", entry(NAME, "2.0.0", dependencies={"acme/x": "^1"}),
                        entry(NAME, "1.5.0", abi="one"), entry("acme/other", "3.0.0")])
    expected = parse_file(body, NAME, "registry r: index/acme/calc")
    first = parsed.parse(body, NAME, "registry r: index/acme/calc", root=tmp_path)
    records = list((tmp_path / parsed.FOLDER).rglob("*"))
    again = parsed.parse(body, NAME, "registry r: index/acme/calc", root=tmp_path)
    assert first == expected == again and len(expected[1]) == 3  # three bad lines, reported every time
    assert [e.raw for e in again[0]] == [e.raw for e in expected[0]]
    assert again[0][1].dependencies == {"acme/x": parse_specifier("^1")}
    assert len([r for r in records if r.is_file()]) == 1


def test_other_bytes_another_name_or_source_are_checked_again(tmp_path: Path) -> None:
    body = index_bytes([entry(NAME, "1.0.0")])
    keys = {parsed.key(body, NAME, "s"), parsed.key(body + b"\n", NAME, "s"), parsed.key(body, "acme/calx", "s"),
            parsed.key(body, NAME, "t")}
    assert len(keys) == 4
    # the same bytes read as another name's file: refused as they would be without a record
    parsed.parse(body, NAME, "s", root=tmp_path)
    entries, problems = parsed.parse(body, "acme/calx", "s", root=tmp_path)
    assert entries == [] and "not 'acme/calx'" in problems[0]


@pytest.mark.parametrize("garbage", [b"", b"[]", b"{\"entries\": 3, \"problems\": []}", b"[" * 100_000,
                                     b"{\"entries\": [{\"name\": \"acme/calx\"}], \"problems\": []}",
                                     b"{\"entries\": [{\"name\": \"acme/calc\"}], \"problems\": []}"])
def test_a_record_that_is_not_what_parse_writes_counts_as_absent(tmp_path: Path, garbage: bytes) -> None:
    body = index_bytes([entry(NAME, "1.0.0"), entry(NAME, "1.1.0")])
    path = parsed.record_path(tmp_path, body, NAME, "s")
    path.parent.mkdir(parents=True)
    path.write_bytes(garbage)
    entries, problems = parsed.parse(body, NAME, "s", root=tmp_path)
    assert [str(e.version) for e in entries] == ["1.0.0", "1.1.0"] and problems == []
    assert json.loads(path.read_bytes())["entries"][0]["version"] == "1.0.0"  # rewritten


def test_a_new_record_replaces_the_older_bytes_of_the_same_file_only(tmp_path: Path) -> None:
    body = index_bytes([entry(NAME, "1.0.0")])
    newer = index_bytes([entry(NAME, "1.0.0"), entry(NAME, "1.1.0")])
    parsed.parse(body, NAME, "s", root=tmp_path)
    parsed.parse(body, NAME, "t", root=tmp_path)  # the same bytes from another source: its own record
    parsed.parse(newer, NAME, "s", root=tmp_path)
    records = sorted(p for p in (tmp_path / parsed.FOLDER).rglob("*") if p.is_file())
    assert records == sorted([parsed.record_path(tmp_path, newer, NAME, "s"),
                              parsed.record_path(tmp_path, body, NAME, "t")])
    assert [str(e.version) for e in parsed.parse(newer, NAME, "s", root=tmp_path)[0]] == ["1.0.0", "1.1.0"]


def test_a_cache_that_cannot_be_written_only_costs_a_parse(tmp_path: Path) -> None:
    (tmp_path / parsed.FOLDER).write_text("a file where the folder should be")
    body = index_bytes([entry(NAME, "1.0.0")])
    assert [str(e.version) for e in parsed.parse(body, NAME, "s", root=tmp_path)[0]] == ["1.0.0"]


def bundle_registry(tmp_path: Path) -> Path:
    return make_registry(tmp_path / "main", {
        NAME: [entry(NAME, v) for v in ("1.0.0", "1.1.0", "2.0.0")],
        "acme/bundle": [entry("acme/bundle", "1.0.0", kind="app", dependencies={NAME: "^1"}),
                        entry("acme/bundle", "1.1.0", kind="app", dependencies={NAME: ">=2"})],
        "acme/yanked": [entry("acme/yanked", "1.0.0", yanked="bad"), entry("acme/yanked", "0.9.0")],
    })


@pytest.mark.parametrize(("pins", "reqs"), [
    ({NAME: "1.0.0", "acme/bundle": "1.0.0"}, [("acme/bundle", "")]),  # fits: the pins, nothing else
    ({NAME: "1.0.0", "acme/bundle": "1.0.0"}, [("acme/bundle", ""), (NAME, ">=1.1")]),  # the pin no longer matches
    ({"acme/bundle": "1.0.0"}, [("acme/bundle", "")]),  # a dependency without a pin
    ({NAME: "1.0.0", "acme/bundle": "1.0.0", "acme/gone": "1.0.0"}, [(NAME, "")]),  # unused pins dropped
    ({NAME: "3.0.0"}, [(NAME, "")]),  # a pin the index no longer has
    ({"acme/yanked": "1.0.0"}, [("acme/yanked", "")]),  # a yanked pin is kept, as a plain lock keeps it
    ({NAME: "2.0.0", "acme/bundle": "1.1.0"}, [("acme/bundle", ""), (NAME, "^2")]),
])
def test_pins_that_fit_resolve_as_the_full_resolution_does(tmp_path: Path, pins: dict[str, str],
                                                           reqs: list[tuple[str, str]]) -> None:
    fed = federation(Registry("main", bundle_registry(tmp_path).as_uri()))
    requirements = [Req(name, parse_specifier(spec), "app component `x`") for name, spec in reqs]
    pinned = {name: Version(v) for name, v in pins.items()}
    fast = resolve(requirements, fed, pinned=pinned)
    slow = resolve(requirements, fed, pinned=pinned, upgrade={"nothing/else"})  # the full resolution, same pins
    assert {n: c.version for n, c in fast.items()} == {n: c.version for n, c in slow.items()}
    assert all(fast[n].entry == slow[n].entry and fast[n].registry == slow[n].registry for n in fast)


def test_locks_are_the_same_exactly_when_their_yaml_is(tmp_path: Path) -> None:
    def lock(**capabilities: Any) -> lock_format.Lock:
        plugin = lock_format.LockedPlugin(name=NAME, version=Version("1.0.0"), registry="main",
                                          digest=digest_of(b"x"), size=1, kind="tool", abi=1,
                                          capabilities=capabilities, used_by=["t"])
        return lock_format.Lock(tmp_path / "app.lock", [plugin])

    pairs = [(lock(kv=True), lock(kv=True)), (lock(kv=True), lock(kv=1)),
             (lock(memory_pages=1), lock(memory_pages=1.0)), (lock(a=1, b=2), lock(b=2, a=1)), (lock(), lock(kv=False))]
    for a, b in pairs:
        assert lock_format.same(a, b) == (lock_format.dump(a) == lock_format.dump(b)), (a, b)


def test_plain_http_clients_never_load_tls_roots_and_https_verifies(monkeypatch: pytest.MonkeyPatch) -> None:
    import httpx

    http_client.tls_context.cache_clear()
    made: list[bool] = []
    real = httpx.create_ssl_context

    def counting(*args: Any, **kwargs: Any) -> ssl.SSLContext:
        made.append(True)
        return real(*args, **kwargs)

    monkeypatch.setattr(httpx, "create_ssl_context", counting)
    clients = [http_client.build(timeout=1.0, follow_redirects=True) for _ in range(3)]
    assert made == []
    transport = clients[0]._transport
    secure = transport._transport(True)  # type: ignore[attr-defined]
    context = secure._pool._ssl_context
    assert context.verify_mode == ssl.CERT_REQUIRED and context.check_hostname
    clients[1]._transport._transport(True)  # type: ignore[attr-defined]
    assert made == [True]  # one context for the process
    with pytest.raises(httpx.UnsupportedProtocol):
        clients[2].get("ftp://127.0.0.1/x")
    for client in clients:
        client.close()
