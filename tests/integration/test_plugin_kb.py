"""plugins/kb on the fixture files of tests/data/kb: entity and field matching, file errors, grants."""

from __future__ import annotations

import json
import shutil
import subprocess
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import pytest

from cspm.planner import load_app
from cspm.runtime.engine import Runtime
from cspm.runtime.trace import Span
from tests.conftest import PLUGINS, plugin_wasm, write_app

DATA = Path(__file__).resolve().parents[1] / "data" / "kb"
KB = PLUGINS / "kb"


def tool(name: str, config: dict[str, Any], paths: dict[str, str] | None = None) -> str:
    """One tools: entry of an app.yaml using the kb plug-in folder."""
    grant = json.dumps({"paths": paths}) if paths is not None else "{}"
    return f"  - {{name: {name}, description: kb, plugin_name: {KB}, config: {json.dumps(config)}, grant: {grant}}}\n"


# Every fixture-backed tool shares one grant (tests/data/kb -> /kb), so the Go module is compiled once.
FIXTURE_TOOLS = {
    "people": {"file": "/kb/list/people.json"},
    "lines": {"file": "/kb/lines/people.jsonl", "name_field": "label"},
    "entries": {"file": "/kb/entries/people.json"},
    "broken": {"file": "/kb/broken/people.json"},
    "broken_lines": {"file": "/kb/broken-lines/people.jsonl"},
    "missing": {"file": "/kb/list/nobody.json"},
    "folder": {"file": "/kb/list"},
    "small": {"file": "/kb/list/people.json", "max_bytes": 100},
}


@pytest.fixture(scope="module")
def rt(tmp_path_factory: pytest.TempPathFactory) -> Iterator[Runtime]:
    plugin_wasm("kb")
    folder = tmp_path_factory.mktemp("kb-app")
    text = "entry: people\ntools:\n" + "".join(tool(n, c, {str(DATA): "/kb"}) for n, c in FIXTURE_TOOLS.items())
    text += tool("ungranted", {"file": "/kb/list/people.json"})
    text += tool("unset", {})
    with load_app(write_app(folder, text)) as runtime:
        yield runtime


def ask(rt: Runtime, name: str, payload: dict[str, Any] | str) -> tuple[str, bool]:
    payload = {"input": payload} if isinstance(payload, str) else payload
    response, _ = rt.invoke(rt.nodes[name], payload, None, Span(name, "tool"), rt.session)
    return response["output"], response["is_error"]


def answer(rt: Runtime, question: str, name: str = "people") -> str:
    output, is_error = ask(rt, name, question)
    assert not is_error, output
    return output


# ---- finding the entity and the field -------------------------------------------------------------

@pytest.mark.parametrize(("question", "expected"), [
    ("When was Ada Lovelace born?", "Ada Lovelace — born: 1815"),
    ("Ada Lovelace birth city", "Ada Lovelace — city: London"),
    ("ADA LOVELACE's country", "Ada Lovelace — country: United Kingdom"),
    ("Ada Lovelace\u2019s city?", "Ada Lovelace — city: London"),
    ("Augusta Ada King, known for?", "Ada Lovelace — known_for: Analytical Engine notes, first published algorithm"),
    ("When was Ada born?", "Ada — born: 1970"),  # the record named "Ada", not Ada Lovelace
    ("a.m. turing -- died", "Alan Turing — died: 1954"),  # punctuation separates words, alias matched
    ("Jose Raul Capablanca city", "José Raúl Capablanca — city: Havana"),  # accents folded
    ("Charles Babbage born, died", "Charles Babbage — born: 1791; died: 1871"),
    ("countries of Grace Hopper", "Grace Hopper — country: United States"),  # plural tolerated
])
def test_entity_and_field(rt: Runtime, question: str, expected: str) -> None:
    assert answer(rt, question) == expected


def test_name_alone_gives_every_fact_in_file_order(rt: Runtime) -> None:
    assert answer(rt, "ada lovelace") == (
        "Ada Lovelace (also: Augusta Ada King, Countess of Lovelace) — born: 1815; city: London; "
        "country: United Kingdom; known_for: Analytical Engine notes, first published algorithm")


def test_arguments_form(rt: Runtime) -> None:
    assert ask(rt, "people", {"arguments": {"query": "Alan Turing born"}}) == ("Alan Turing — born: 1912", False)


def test_json_lines_with_another_name_field(rt: Runtime) -> None:
    assert answer(rt, "Charles Babbage city", "lines") == "Charles Babbage — city: London"
    assert answer(rt, "A. M. Turing", "lines") == "Alan Turing (also: A. M. Turing) — born: 1912"


@pytest.mark.parametrize(("question", "expected"), [
    ("When was Marie Curie born?", "Marie Curie — born: 1867"),
    ("Where was Marie Curie born?", "Marie Curie — city: Warsaw"),  # "where was … born" beats "born"
    ("Marie Curie year of birth", "Marie Curie — born: 1867"),
    ("Maria Sklodowska birthplace", "Marie Curie — city: Warsaw"),
    ("When did Ada Lovelace die?", "Ada Lovelace — died: 1852"),
    ("Charles Babbage death", "Charles Babbage — died not recorded (known: born, city)"),
])
def test_field_synonyms_of_the_entries_form(rt: Runtime, question: str, expected: str) -> None:
    assert answer(rt, question, "entries") == expected


# ---- not found -------------------------------------------------------------------------------------

def test_not_found_is_an_answer_with_close_names(rt: Runtime) -> None:
    assert answer(rt, "When was Charles Babage born?") == (
        'No entry found for "When was Charles Babage born?"; close names: Charles Babbage')
    assert answer(rt, "Turing death") == 'No entry found for "Turing death"; close names: Alan Turing'
    assert answer(rt, "capital of France") == 'No entry found for "capital of France"'


def test_a_typo_that_matches_a_shorter_name_is_flagged(rt: Runtime) -> None:
    assert answer(rt, "When was Ada Lovelase born?") == (
        "Ada — born: 1970\n(close names that did not match exactly: Ada Lovelace)")


def test_empty_query(rt: Runtime) -> None:
    for payload in ("  ", {"arguments": {}}):
        output, is_error = ask(rt, "people", payload)
        assert is_error and output.startswith("empty query")


# ---- file problems: is_error answers that name the file and what to fix ---------------------------------

def test_malformed_json_names_file_and_line(rt: Runtime) -> None:
    output, is_error = ask(rt, "broken", "Ada")
    assert is_error
    assert output.startswith("knowledge file /kb/broken/people.json is not valid JSON at line 3, column 30")


def test_malformed_json_lines_names_the_line(rt: Runtime) -> None:
    output, is_error = ask(rt, "broken_lines", "Ada")
    assert is_error and output.startswith("knowledge file /kb/broken-lines/people.jsonl is not valid JSON Lines "
                                          "at line 2")


def test_missing_file_names_guest_path_and_grant(rt: Runtime) -> None:
    output, is_error = ask(rt, "missing", "Ada")
    assert is_error and "/kb/list/nobody.json does not exist" in output and "grant: {paths:" in output
    assert "read-only" in output


def test_folder_instead_of_file(rt: Runtime) -> None:
    output, is_error = ask(rt, "folder", "Ada")
    assert is_error and "/kb/list is a folder" in output


def test_folder_not_granted(rt: Runtime) -> None:
    output, is_error = ask(rt, "ungranted", "Ada")
    assert is_error and "outside every folder granted" in output and "grant: {paths: {./data: /kb/list}}" in output


def test_file_over_max_bytes(rt: Runtime) -> None:
    output, is_error = ask(rt, "small", "Ada")
    assert is_error and "over the limit of 100" in output and "max_bytes" in output


def test_file_not_configured(rt: Runtime) -> None:
    output, is_error = ask(rt, "unset", "Ada")
    assert is_error and "config `file` is not set" in output


@pytest.mark.parametrize(("content", "message"), [
    ('{"people": []}', 'must have "entries"'),
    ('["Ada"]', "record 1: a record must be a JSON object"),
    ('{"entries": [{"name": "A", "aliases": 3}]}', '"aliases" must be a list'),
    ('{"entries": [], "fields": {"born": 1}}', '"fields"."born" must be a list'),
])
def test_wrong_shapes(tmp_path: Path, content: str, message: str) -> None:
    (tmp_path / "data").mkdir()
    (tmp_path / "data" / "kb.json").write_text(content)
    app = write_app(tmp_path, "entry: kb\ntools:\n" + tool("kb", {"file": "/d/kb.json"}, {"./data": "/d"}))
    with load_app(app) as runtime:
        output, is_error = ask(runtime, "kb", "A")
    assert is_error and message in output, output


# ---- loading once, ties, and the read-only grant --------------------------------------------------------

def test_loaded_once_per_instance_and_errors_not_cached(tmp_path: Path) -> None:
    data = tmp_path / "data"
    data.mkdir()
    app = write_app(tmp_path, "entry: kb\ntools:\n" + tool("kb", {"file": "/d/people.json"}, {"./data": "/d"}))
    with load_app(app) as runtime:
        output, is_error = ask(runtime, "kb", "Ada")
        assert is_error and "does not exist" in output  # a failed load is retried on the next call
        (data / "people.json").write_text(json.dumps([{"name": "Ada", "born": 1815}]))
        assert ask(runtime, "kb", "Ada born") == ("Ada — born: 1815", False)
        (data / "people.json").write_text(json.dumps([{"name": "Ada", "born": 1999}]))
        assert ask(runtime, "kb", "Ada born") == ("Ada — born: 1815", False)  # cached: not read again
    with load_app(app) as runtime:
        assert ask(runtime, "kb", "Ada born") == ("Ada — born: 1999", False)  # a new instance reads it


def test_records_sharing_a_name_all_answer(tmp_path: Path) -> None:
    data = tmp_path / "data"
    data.mkdir()
    (data / "p.jsonl").write_text('{"name": "John Smith", "city": "Leeds"}\n{"name": "John Smith", "city": "York"}\n')
    app = write_app(tmp_path, "entry: kb\ntools:\n" + tool("kb", {"file": "/d/p.jsonl"}, {"./data": "/d"}))
    with load_app(app) as runtime:
        assert ask(runtime, "kb", "john smith city") == ("John Smith — city: Leeds\nJohn Smith — city: York", False)


def test_the_grant_is_read_only(tmp_path: Path) -> None:
    """A WASI module under the grant kb gets cannot create or truncate files; an `rw:` grant can (control)."""
    wat2wasm = shutil.which("wat2wasm")
    if wat2wasm is None:
        pytest.fail("wat2wasm (Debian package wabt) is required")
    probe = tmp_path / "probe.wasm"
    subprocess.run([wat2wasm, str(DATA / "write_probe.wat"), "-o", str(probe)], check=True)
    (tmp_path / "ro").mkdir()
    (tmp_path / "rw").mkdir()
    (tmp_path / "ro" / "probe.txt").write_text("original")
    text = ("entry: ro\ntools:\n"
            f"  - {{name: ro, description: p, plugin_name: {probe}, grant: {{paths: {{./ro: /kb}}}}}}\n"
            f"  - {{name: rw, description: p, plugin_name: {probe}, grant: {{paths: {{'rw:./rw': /kb}}}}}}\n")
    with load_app(write_app(tmp_path, text)) as runtime:
        denied = runtime.run("x", entry="ro").output
        allowed = runtime.run("x", entry="rw").output
    assert denied == "errno 63"  # WASI EPERM
    assert (tmp_path / "ro" / "probe.txt").read_text() == "original"
    assert allowed == "errno 00" and (tmp_path / "rw" / "probe.txt").read_text() == "written\n"
