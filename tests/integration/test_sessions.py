"""`cspm session list|clear` (issue 16): the kv memory that real `cspm run --session` runs left (the
conversational agent's history, offline on llm-local), listed per app, plug-in and session, and
cleared with the quota table (`kv_usage`) kept exact."""

from __future__ import annotations

import json
import sqlite3
import time
from pathlib import Path

import pytest

from tests.integration.test_chat_loop import Terminal
from tests.integration.test_cli import cspm
from tests.integration.test_streaming import chat_app


@pytest.fixture(scope="module")
def apps(tmp_path_factory: pytest.TempPathFactory) -> tuple[Path, Path]:
    """Two apps, `chat` and `other`, each the conversational agent on llm-local."""
    chat = chat_app(tmp_path_factory.mktemp("chat"), max_tokens=8)
    other = chat.parent / "other.yaml"
    other.write_text(chat.read_text().replace("name: chat", "name: other"))
    return chat, other


@pytest.fixture
def talked(apps: tuple[Path, Path], isolated_data: Path) -> Path:
    """Sessions a and b of `chat`, a of `other`; returns the kv database."""
    chat, other = apps
    for app, session in ((chat, "a"), (chat, "b"), (other, "a")):
        result = cspm("run", str(app), "-i", "hello there", "--session", session, "--json")
        assert result.returncode == 0, result.stderr
    return isolated_data / "kv.sqlite3"


def listed(*args: str) -> list[dict]:
    result = cspm("session", "list", "--json", *args)
    assert result.returncode == 0, result.stderr
    return json.loads(result.stdout)["sessions"]


def usage(db: Path) -> dict[tuple[str, str], tuple[int, int]]:
    """kv_usage as stored, and as counted from the rows: they must agree."""
    with sqlite3.connect(db) as conn:
        stored = {(a, p): (k, b) for a, p, k, b in conn.execute("SELECT app, plugin, keys, bytes FROM kv_usage")}
        counted = {(a, p): (k, b) for a, p, k, b in conn.execute(
            "SELECT app, plugin, count(*), sum(length(CAST(key AS BLOB)) + length(CAST(value AS BLOB))) "
            "FROM kv GROUP BY app, plugin")}
    assert {k: v for k, v in stored.items() if v != (0, 0)} == counted
    return counted


def test_list_shows_each_session_with_its_size_and_last_update(talked: Path) -> None:
    sessions = listed()
    assert sorted((s["app"], s["plugin"], s["session"]) for s in sessions) == [
        ("chat", "agent", "a"), ("chat", "agent", "b"), ("other", "agent", "a")]
    assert all(s["keys"] == 1 and s["bytes"] > 20 and time.time() - s["updated"] < 600 for s in sessions)
    assert [s["session"] for s in listed("--app", "other")] == ["a"]
    table = cspm("session", "list")
    assert table.returncode == 0
    header, *rows = table.stdout.splitlines()
    assert header.split() == ["app", "plug-in", "session", "keys", "bytes", "updated"] and len(rows) == 3
    assert all(row.split()[:3] in (["chat", "agent", "a"], ["chat", "agent", "b"], ["other", "agent", "a"])
               for row in rows)


def test_clear_one_session_an_app_or_all_keeps_the_quota_exact(talked: Path) -> None:
    before = usage(talked)
    cleared = cspm("session", "clear", "a", "--app", "chat", "--yes", "--json")
    assert cleared.returncode == 0, cleared.stderr
    assert json.loads(cleared.stdout) == {"cleared_sessions": 1, "cleared_keys": 1}
    assert sorted((s["app"], s["session"]) for s in listed()) == [("chat", "b"), ("other", "a")]
    after = usage(talked)
    assert after[("chat", "agent")][0] == before[("chat", "agent")][0] - 1
    assert after[("other", "agent")] == before[("other", "agent")]

    assert cspm("session", "clear", "--app", "other", "--yes").returncode == 0
    assert [(s["app"], s["session"]) for s in listed()] == [("chat", "b")]
    assert ("other", "agent") not in usage(talked)

    assert cspm("session", "clear", "--all", "--yes").returncode == 0
    assert listed() == [] and usage(talked) == {}


def test_a_cleared_session_starts_afresh(apps: tuple[Path, Path], talked: Path) -> None:
    """What `cspm run --session a` remembers is gone: the agent answers with no history, and what it
    writes next is counted again from zero."""
    chat, _ = apps
    assert cspm("session", "clear", "a", "-y").returncode == 0  # both apps' session a
    assert sorted((s["app"], s["session"]) for s in listed()) == [("chat", "b")]
    again = cspm("run", str(chat), "-i", "hello there", "--session", "a", "--json")
    assert again.returncode == 0, again.stderr
    assert [s["keys"] for s in listed("--app", "chat") if s["session"] == "a"] == [1]
    usage(talked)


def test_clear_asks_at_a_terminal_and_needs_yes_in_a_script(talked: Path) -> None:
    script = cspm("session", "clear", "--all")
    assert script.returncode == 2 and "--yes" in script.stderr, script.stderr
    assert len(listed()) == 3

    no = Terminal("session", "clear", "--all")
    no.expect("Clear? [y/N]:")
    no.type("n\r")
    assert no.wait() == 1
    assert "this forgets 3 keys of 3 sessions" in no.seen and len(listed()) == 3

    yes = Terminal("session", "clear", "b")
    yes.expect("Clear? [y/N]:")
    yes.type("y\r")
    assert yes.wait() == 0 and "cleared 1 session" in yes.seen, yes.seen
    assert len(listed()) == 2


@pytest.mark.parametrize("args", [(), ("a", "--all"), ("--app", "chat", "--all")])
def test_clear_needs_one_target(args: tuple[str, ...]) -> None:
    result = cspm("session", "clear", *args, "--yes")
    assert result.returncode == 2 and "SESSION, --app APP" in result.stderr, result.stderr


def test_nothing_stored_yet(isolated_data: Path) -> None:
    """Listing creates no database; clearing what is not there says so."""
    assert listed() == [] and not (isolated_data / "kv.sqlite3").exists()
    result = cspm("session", "clear", "nope", "--yes")
    assert result.returncode == 0 and "nothing to clear" in result.stderr
    assert not (isolated_data / "kv.sqlite3").exists()
