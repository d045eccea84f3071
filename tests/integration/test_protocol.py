"""cspm/protocol: what the client and the server must agree on, written once and imported by both."""

from __future__ import annotations

import hashlib
import json
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import pytest

from cspm.protocol import publish_body
from tests.conftest import conformance_wasm


def test_what_cspm_publish_sends_is_what_the_server_reads() -> None:
    from cspm_registry import app as server_app

    from cspm.publish import frame

    assert server_app.framing is publish_body  # the server parses with this very module
    manifest = {"name": "acme/x", "version": "1.0.0", "kind": "tool"}
    body = frame(manifest, b"\0asm-bytes", b'{"bundle": 1}', "sigstore")
    reader = publish_body.Reader(publish_body.Limits(blob=1024))
    for i in range(0, len(body), 7):  # as it arrives, in pieces
        reader.feed(body[i:i + 7])
    parts = reader.finish()
    assert json.loads(parts.json) == {"manifest": manifest, "signature": {"kind": "sigstore"}}
    assert (parts.blob, parts.bundle) == (b"\0asm-bytes", b'{"bundle": 1}')
    unsigned = publish_body.Reader(publish_body.Limits(blob=1024))
    unsigned.feed(frame(manifest, b"x"))
    assert json.loads(unsigned.finish().json) == {"manifest": manifest}  # no bundle: no signature


def test_a_part_over_its_limit_is_refused_before_it_arrives() -> None:
    reader = publish_body.Reader(publish_body.Limits(blob=4))
    with pytest.raises(publish_body.FramingError, match="the module part") as refused:
        reader.feed(publish_body.encode(b"{}", b"12345")[:12])
    assert refused.value.status == 413


# -- the static layout: one set of paths, one renderer of config.json and of names

def test_layout_paths_are_checked_so_none_leaves_the_registry() -> None:
    from cspm.errors import CspmError
    from cspm.protocol import layout

    assert layout.index_path("acme/calc") == "index/acme/calc"
    assert layout.blob_path("sha256:" + "ab" * 32) == "blobs/sha256/" + "ab" * 32
    assert layout.bundle_path(b"{}", "dsse-ed25519") == \
        f"bundles/sha256/{hashlib.sha256(b'{}').hexdigest()}.dsse.json"
    assert layout.BUNDLE_FILE_RE.fullmatch(layout.bundle_path(b"x", "sigstore").split("/")[-1])
    for bad in ("acme/../x", "acme", "acme/calc/x", "Acme/calc", "acme/calc\n"):
        with pytest.raises(CspmError):
            layout.index_path(bad)
    for bad_digest in ("sha256:" + "ab" * 31, "sha256:../../x", "md5:" + "ab" * 32):
        with pytest.raises(CspmError):
            layout.blob_path(bad_digest)
    assert layout.render_config("x") == b'{"api": null, "dl": "blobs/sha256/{hex}", "name": "x"}\n'


def _line(name: str, version: str, yanked: bool | str = False, description: str = "") -> dict[str, Any]:
    return {"name": name, "version": version, "kind": "tool", "digest": "sha256:" + "0" * 64, "yanked": yanked,
            "description": description or f"{name} {version}"}


def test_names_shows_the_highest_version_not_yanked_by_one_rule() -> None:
    from cspm.protocol import layout

    lines = [_line("a/x", "1.0.0"), _line("a/x", "1.2.0", yanked="CVE"), _line("a/x", "1.1.0"),
             _line("b/y", "2.0.0", yanked=True), _line("b/y", "1.0.0", yanked=True)]
    rows = [json.loads(row) for row in layout.render_names(lines).decode().splitlines()]
    assert [(row["name"], row["latest"]) for row in rows] == [("a/x", "1.1.0"), ("b/y", "2.0.0")]  # all yanked: highest
    assert rows[0]["description"] == "a/x 1.1.0"  # the other fields come from the line shown
    # a folder yanks by appending the version's line again: the later line wins
    unyanked = layout.render_names([*lines, _line("a/x", "1.2", yanked=False)])
    assert json.loads(unyanked.decode().splitlines()[0])["latest"] == "1.2"


def test_a_folder_registry_and_a_server_show_the_same_names_after_a_yank(tmp_path: Path) -> None:
    """The client's incremental `names` (cspm.index.build) follows the same rule as the server's rendering."""
    from cspm.formats.index_line import to_line
    from cspm.index.build import add_line
    from cspm.protocol import layout

    lines = [_line("a/x", "1.0.0"), _line("a/x", "1.1.0"), _line("b/y", "1.0.0")]
    for line in lines:
        add_line(tmp_path, line, b"blob")
    add_line(tmp_path, {**lines[1], "yanked": "broken"}, b"blob")  # yanked by appending
    assert json.loads((tmp_path / "names").read_text().splitlines()[0])["latest"] == "1.0.0"
    everything = [raw for path in sorted((tmp_path / "index").glob("*/*")) for raw in path.read_text().splitlines()]
    assert (tmp_path / "names").read_bytes() == layout.render_names(everything)
    assert [to_line(json.loads(raw)) for raw in everything] == everything  # canonical lines


# -- a client's build and a server's publishes are the same files

@pytest.fixture
def server(tmp_path: Path) -> Iterator[Any]:
    """A real `cspm-registry serve` on loopback (tests/registry_support.py's)."""
    from tests.registry_support import Server

    running = Server(tmp_path / "data", tmp_path / "server.log")
    yield running
    running.stop()


def test_an_index_built_by_the_client_is_what_the_server_serves_for_the_same_packages(
        tmp_path: Path, server: Any) -> None:
    """`cspm index build` of some plug-ins and an app, and the same packages published to `cspm-registry`:
    every file is byte for byte the same, after the two documented differences (cspm.protocol.layout):
    `config.json`'s `api` (a folder has no write API) and the lines' `published` (a build has no moment of
    acceptance, and stays reproducible)."""
    import yaml

    from cspm.formats.index_line import to_line
    from cspm.index import from_sources
    from cspm.protocol import layout
    from tests.registry_support import manifest

    modules = {lang: conformance_wasm(lang).read_bytes() for lang in ("c", "zig")}
    sources = tmp_path / "src"  # plug-ins of two namespaces, a data package and an app
    for name, version, lang in (("test/echo", "1.0.0", "c"), ("test/echo", "1.1.0", "zig"),
                                ("test/boss", "1.0.0", "c"), ("other/tool", "0.1.0", "zig")):
        folder = sources / f"{name.replace('/', '-')}-{version}"
        folder.mkdir(parents=True)
        (folder / "m.wasm").write_bytes(modules[lang])
        (folder / "plugin.yaml").write_text(yaml.safe_dump(manifest(name, version, kind="tool")))
    people = sources / "people"  # a data package
    people.mkdir()
    (people / "plugin.yaml").write_text("name: test/people\nversion: 2.0.0\nkind: data\nabi: 1\nfile: people.json\n"
                                        "description: who is who\n")
    (people / "people.json").write_text('[{"name": "Ada"}]\n')
    demo = sources / "demo"
    demo.mkdir()
    (demo / "plugin.yaml").write_text("name: test/demo\nversion: 1.0.0\nkind: app\nabi: 1\napp: app.yaml\n"
                                      "description: a demo app\n")
    (demo / "app.yaml").write_text("entry: boss\ntools:\n  - {name: echo, plugin: \"test/echo@~1.0\"}\n"
                                   "agents:\n  - {name: boss, plugin: \"test/boss@^1\", tools: [echo]}\n")
    built = tmp_path / "built"
    from_sources.build([sources], built, name="test")

    token = server.token("test", "other")
    order = [json.loads(raw) for path in sorted((built / "index").glob("*/*")) for raw in path.read_text().splitlines()]
    for line in order:  # each package's versions in the build's order (an index file is in publish order)
        folder = next(p.parent for p in sources.glob("*/plugin.yaml")
                      if yaml.safe_load(p.read_text())["name"] == line["name"]
                      and str(yaml.safe_load(p.read_text())["version"]) == line["version"])
        blob = (built / layout.blob_path(line["digest"])).read_bytes()
        assert server.publish(token, yaml.safe_load((folder / "plugin.yaml").read_text()), blob).status == 201

    served = server.get("/config.json").body
    assert served == layout.render_config("test", layout.API)
    assert (built / "config.json").read_bytes() == layout.render_config("test")
    assert served.replace(b'"api": "api/v1"', b'"api": null') == (built / "config.json").read_bytes()
    assert server.get("/names").body == (built / "names").read_bytes()
    assert len((built / "names").read_text().splitlines()) == 5
    files = sorted(str(p.relative_to(built)) for p in (built / "index").glob("*/*"))
    assert len(files) == 5
    for path in files:
        body = server.get("/" + path).body
        lines = [json.loads(raw) for raw in body.decode().splitlines()]
        assert all("published" in line for line in lines)  # the server says when it accepted each
        assert "published" not in (built / path).read_text()
        assert layout.render_index(to_line(layout.comparable_line(line)) for line in lines) == \
            (built / path).read_bytes(), path
    blobs = sorted((built / "blobs" / "sha256").iterdir())
    assert len(blobs) == 4  # two modules, the data file and the app package
    for stored in blobs:
        assert server.get(f"/blobs/sha256/{stored.name}").body == stored.read_bytes()

    # a yank, on the server through the API and in the folder by appending the line: names agree again
    assert server.yank(token, "test/echo", "1.1.0", True).status == 200
    from cspm.index.build import add_line

    yanked = next(line for line in order if line["name"] == "test/echo" and line["version"] == "1.1.0")
    add_line(built, {**yanked, "yanked": True}, b"")
    assert server.get("/names").body == (built / "names").read_bytes()
    assert b'"latest":"1.0.0","name":"test/echo"' in (built / "names").read_bytes()


# -- the API's error codes: one table for both sides

def test_every_api_error_code_is_documented_and_the_client_reads_it_through_the_table() -> None:
    from cspm.protocol import api_errors
    from cspm.protocol.api_errors import Code
    from tests.conftest import ROOT

    docs = (ROOT / "docs" / "registry.md").read_text()
    for code, spec in api_errors.CODES.items():  # a row of the table: | status | `code` | when |
        assert f"| {spec.status} | `{code.value}` |" in docs, code
    assert set(api_errors.CODES) == set(Code)
    assert api_errors.body(Code.EXISTS, "taken") == {"error": {"code": "exists", "message": "taken"}}
    assert api_errors.hint("unauthorized", "corp") == "log in with `cspm login corp` (or set CSPM_TOKEN)"
    assert api_errors.hint("from_a_newer_server", "corp") is None and api_errors.hint(None, "corp") is None
    assert api_errors.hint("invalid", "corp") is None  # the message says it all


def test_the_server_answers_with_the_tables_status_for_each_code() -> None:
    from cspm_registry import app as server_app

    from cspm.protocol.api_errors import CODES, Code

    for code in Code:
        refusal = server_app.ApiError(code, "no")
        assert (refusal.status, refusal.code) == (CODES[code].status, code)
