"""What a newcomer reads (issue 16): keys and the trusted root said plainly, `info` and tables that
can be copied, grammar, data and model packages that say how to use them, a model hint that works,
and `inspect` that tells the memory a module needs before `run` refuses it. The real CLI throughout."""

from __future__ import annotations

import json
import shutil
import socket
import stat
import subprocess
from pathlib import Path

import pytest

from cspm.wording import a, how_to_use, plural
from tests.conftest import ROOT
from tests.integration.test_cli import cspm


@pytest.fixture
def fresh(tmp_path: Path) -> dict[str, str]:
    """A user with no config: the bundled registry `chainsocket` only, an empty store."""
    return {"CSPM_CONFIG_DIR": str(tmp_path / "config"), "CSPM_CACHE_DIR": str(tmp_path / "cache")}


# -- item 2: keygen and trust refresh

def test_keygen_makes_a_missing_folder_and_says_where_it_wrote(tmp_path: Path, fresh: dict[str, str]) -> None:
    result = cspm("keygen", "keys/acme.pem", cwd=tmp_path, env=fresh)
    assert result.returncode == 0, result.stderr
    key = tmp_path / "keys" / "acme.pem"
    assert stat.S_IMODE(key.stat().st_mode) == 0o600 and key.read_bytes().startswith(b"-----BEGIN PRIVATE KEY")
    assert "private key written to keys/acme.pem" in result.stderr
    assert result.stdout.startswith("ed25519:")
    again = cspm("keygen", "keys/acme.pem", cwd=tmp_path, env=fresh)
    assert again.returncode == 1 and "keys/acme.pem already exists" in again.stderr


def test_keygen_writes_into_the_user_config_dir_by_default(tmp_path: Path, fresh: dict[str, str]) -> None:
    work = tmp_path / "project"
    work.mkdir()
    result = cspm("keygen", "--json", cwd=work, env=fresh)
    assert result.returncode == 0, result.stderr
    written = Path(json.loads(result.stdout)["private_key"])
    assert written == Path(fresh["CSPM_CONFIG_DIR"]) / "keys" / "cspm.key" and written.is_file()
    assert list(work.iterdir()) == []  # nothing in the current folder, where `git add .` would take it
    human = cspm("keygen", cwd=work, env=fresh)  # the default exists now: refused, never overwritten
    assert human.returncode == 1 and f"{written} already exists" in human.stderr


def test_keygen_where_nothing_can_be_written_is_an_error_not_a_traceback(tmp_path: Path) -> None:
    result = cspm("keygen", "/proc/cspm-nope/k.pem", cwd=tmp_path)
    assert result.returncode != 0 and result.stderr.startswith("error: ") and "/proc/cspm-nope/k.pem" in result.stderr
    assert "bug in cspm" not in result.stderr


def _dead_port() -> int:
    with socket.socket() as sock:  # bound, then closed: connecting to it is refused at once
        sock.bind(("127.0.0.1", 0))
        return sock.getsockname()[1]


def test_trust_refresh_offline_says_it_needs_the_network(tmp_path: Path) -> None:
    proxy = f"http://127.0.0.1:{_dead_port()}"  # TUF goes through the proxy: nothing leaves loopback
    env = {"HTTPS_PROXY": proxy, "https_proxy": proxy, "HTTP_PROXY": proxy, "http_proxy": proxy, "NO_PROXY": "",
           "no_proxy": "", "XDG_DATA_HOME": str(tmp_path / "xdg-data"), "XDG_CACHE_HOME": str(tmp_path / "xdg-cache")}
    result = cspm("trust", "refresh", env=env)
    assert result.returncode == 1, result.stderr  # docs/cli.md: the work failed (a registry, the network)
    assert "error: cannot update Sigstore's trusted root from https://tuf-repo-cdn.sigstore.dev" in result.stderr
    assert "needs the network" in result.stderr and "bug in cspm" not in result.stderr


# -- item 4: info and tables

def test_info_shows_config_secrets_and_input_without_raw_markup(fresh: dict[str, str]) -> None:
    result = cspm("info", "chainsocket/serpapi-search", env=fresh)
    assert result.returncode == 0, result.stderr
    text = result.stdout
    assert "[dim]" not in text and "[/]" not in text
    assert "chainsocket/serpapi-search 1.0.0  (tool, ABI 1)" in text
    assert "base_url (string, default \"https://serpapi.com\"): SerpAPI endpoint" in text
    assert "api_key (required, sent as query parameter api_key)" in text
    assert "query (string, required): what to search for" in text
    assert "cspm add chainsocket/serpapi-search@^1" in text
    assert "memory        64 pages = 4 MiB" in text


def test_tables_never_split_a_name_a_version_or_a_url(tmp_path: Path, fresh: dict[str, str]) -> None:
    """Piped (not a terminal: rich would fold at 80 columns), every cell is whole on its line."""
    folder = tmp_path / ("a-registry-folder-with-a-rather-long-name-" * 3) / "index"
    folder.mkdir(parents=True)
    assert cspm("registry", "add", "far", str(folder), env=fresh).returncode == 0
    listed = cspm("registry", "list", env=fresh, stdin="")
    url = folder.resolve().as_uri()
    assert len(url) > 80 and any(line.split()[-1] == url for line in listed.stdout.splitlines()[1:]), listed.stdout
    found = cspm("search", "self", env=fresh)
    hits = json.loads(cspm("search", "self", "--json", env=fresh).stdout)["results"]
    lines = found.stdout.splitlines()
    assert len(lines) == len(hits) + 1
    for hit, line in zip(hits, lines[1:], strict=True):
        assert line.split()[:4] == [hit["name"], hit["latest"], hit["kind"], hit["registry"]]
        assert line.endswith(hit["description"])


# -- item 5: grammar, data and model packages

def test_wording_helpers() -> None:
    assert [a(w) for w in ("llm", "tool", "agent", "app", "data package", "model", "url")] == [
        "an llm", "a tool", "an agent", "an app", "a data package", "a model", "a url"]
    assert (plural(1, "plug-in"), plural(2, "plug-in"), plural(0, "entry")) == ("1 plug-in", "2 plug-ins", "0 entries")
    for kind in ("data", "model", "app", "tool"):
        message, hint = how_to_use(kind, "ns/some-thing", "2.1.0")
        assert " an data" not in message and " an model" not in message and "`" in hint


def test_a_data_package_says_how_to_use_it_and_the_snippet_works(tmp_path: Path, fresh: dict[str, str]) -> None:
    app = tmp_path / "app.yaml"
    app.write_text("name: t\nentry: calc\ntools:\n  - name: calc\n    plugin: chainsocket/calculator@^1\n")
    added = cspm("add", "chainsocket/selfask-people", cwd=tmp_path, env=fresh)
    assert added.returncode != 0 and "is a data package" in added.stderr and "an data" not in added.stderr
    snippet = "data: {selfask-people: chainsocket/selfask-people@^1}"
    assert f"`{snippet}`" in added.stderr and "cspm run" not in added.stderr
    run = cspm("run", "chainsocket/selfask-people", "-i", "x", cwd=tmp_path, env=fresh)
    assert run.returncode != 0 and f"`{snippet}`" in run.stderr and "cspm add" not in run.stderr  # no circle
    model = cspm("add", "chainsocket/selfask-tiny", cwd=tmp_path, env=fresh)
    assert "is a model package" in model.stderr
    assert "`models: {selfask-tiny: chainsocket/selfask-tiny@^1}`" in model.stderr
    app.write_text(app.read_text() + f"    {snippet}\n")  # the hint, as written, is a working app
    locked = cspm("lock", str(app), "--json", env=fresh)
    assert locked.returncode == 0, locked.stderr
    assert "chainsocket/selfask-people" in {p["name"] for p in json.loads(locked.stdout)["plugins"]}


def test_grammar_of_counts_and_kinds(tmp_path: Path, fresh: dict[str, str]) -> None:
    app = tmp_path / "app.yaml"
    app.write_text("entry: calc\ntools:\n  - name: calc\n    plugin: chainsocket/calculator@^1\n")
    result = cspm("run", str(app), "-i", "1+2", env=fresh)
    assert result.returncode == 0, result.stderr
    assert "locked 1 plug-in in" in result.stderr and "1 plug-ins" not in result.stderr
    wrong = tmp_path / "wrong.yaml"
    wrong.write_text(f"entry: x\nllms:\n  - name: x\n    plugin_name: {ROOT / 'plugins' / 'calculator'}\n")
    result = cspm("run", str(wrong), "-i", "1", env=fresh)
    assert "chainsocket/calculator is a tool plug-in, not an llm" in result.stderr


# -- item 6: the offline pirate before its model is added

def test_the_pirate_before_its_model_hints_model_add(fresh: dict[str, str]) -> None:
    result = cspm("run", "examples/local/pirate-smollm2.yaml", "-i", "hi", env=fresh)
    assert result.returncode != 0
    assert "`cspm model add FILE --name local/smollm2-135m-instruct --version 1.0.0`" in result.stderr
    assert "registry add" not in result.stderr


# -- item 15: inspect shows the memory a module needs

def test_inspect_shows_memory_beside_the_default_grant(tmp_path: Path, wat_dir: Path) -> None:
    wat2wasm = shutil.which("wat2wasm")
    assert wat2wasm, "wat2wasm (Debian package wabt) is required"
    source = tmp_path / "big.wat"
    source.write_text('(module (memory (export "memory") 65536) (func (export "call") (result i32) i32.const 0))')
    wasm = tmp_path / "big.wasm"
    subprocess.run([wat2wasm, str(source), "-o", str(wasm)], check=True)
    result = cspm("inspect", str(wasm))
    assert result.returncode == 0, result.stderr
    assert "memory   65,536 pages (4 GiB) at start; the default grant is 256 pages (16 MiB)" in result.stdout
    assert "`cspm run` refuses it unless its component grants `grant: {memory_pages: 65536}`" in result.stderr
    report = json.loads(cspm("inspect", str(wasm), "--json").stdout)["memory"]
    assert report == {"min_pages": 65536, "max_pages": None, "default_grant_pages": 256, "fits_default_grant": False}
    small = cspm("inspect", str(wat_dir / "spin.wasm"))
    assert "memory   1 page (64 KiB) at start" in small.stdout and "warning" not in small.stderr


def test_registry_text_in_search_and_info_is_shown_as_text(tmp_path: Path, fresh: dict[str, str]) -> None:
    """A registry's description with markup and escape sequences is printed as it is, controls visible."""
    folder = tmp_path / "evil"
    shutil.copytree(ROOT / "index", folder, ignore=shutil.ignore_patterns("blobs"))
    evil = "[bold red]pwned[/] \x1b]0;title\x07 \x1b[2J"
    for path in (folder / "names", folder / "index" / "chainsocket" / "calculator"):
        lines = [json.loads(line) for line in path.read_text().splitlines()]
        for line in lines:
            if line["name"] == "chainsocket/calculator":
                line["description"] = evil
        path.write_text("".join(json.dumps(line) + "\n" for line in lines))
    assert cspm("registry", "add", "chainsocket", str(folder), env=fresh).returncode == 0
    shown = r"[bold red]pwned[/] \x1b]0;title\x07 \x1b[2J"
    for args in (("search", "calculator"), ("info", "chainsocket/calculator")):
        result = cspm(*args, env=fresh)
        assert result.returncode == 0, result.stderr
        assert shown in result.stdout and "\x1b" not in result.stdout
