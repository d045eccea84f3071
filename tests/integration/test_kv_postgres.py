"""kv memory on PostgreSQL (issue 19 §6): the KvStore interface's bounds and atomicity hold there as on
SQLite (the same behaviour tests, run on a throwaway cluster), two processes cannot both pass the quota,
two runtimes ("replicas") on one database continue one conversation, a restart of the server fails
the requests made during the outage with `kv.unavailable` and the later ones succeed; the store is
picked by URL (`CSPM_KV_URL`) without importing psycopg before the first request."""

from __future__ import annotations

import json
import os
import subprocess
import sys
import time
from collections.abc import Callable, Iterator
from pathlib import Path
from typing import Any

import psycopg
import pytest

from cspm.errors import InputError, KvUnavailable
from cspm.planner import load_app
from cspm.runtime import kv
from cspm.runtime.engine import Runtime
from cspm.runtime.kv import KvStore, Scope, SqliteKvStore, TooLarge
from cspm.runtime.kv_postgres import SCHEMA_VERSION, PostgresKvStore
from tests.conftest import PLUGINS, ROOT, plugin_wasm, write_app
from tests.integration.test_kv_store import (  # the SQLite store's behaviour tests, run here on PostgreSQL
    small_quota,  # noqa: F401
    test_a_key_past_the_bounds_is_refused_and_nothing_written,  # noqa: F401
    test_a_value_over_the_limit_is_refused_and_the_old_one_kept,  # noqa: F401
    test_scopes_never_see_each_other,  # noqa: F401
    test_the_quota_counts_every_session_and_shrinking_is_always_allowed,  # noqa: F401
)
from tests.postgres_support import Cluster, pg_cluster, postgres_url  # noqa: F401
from tests.scripted import ScriptedServer, openai_chat

A: Scope = ("app", "p", "s1")


@pytest.fixture
def store(postgres_url: str) -> Iterator[KvStore]:  # noqa: F811
    made = PostgresKvStore(postgres_url)
    yield made
    made.close()


def recount(url: str) -> tuple[list[tuple[Any, ...]], list[tuple[Any, ...]]]:
    """(cspm_kv_usage, the same counted from cspm_kv), read directly from the database."""
    with psycopg.connect(url) as conn:
        usage = conn.execute("SELECT app, plugin, keys, bytes FROM cspm_kv_usage WHERE keys > 0 "
                             "ORDER BY app, plugin").fetchall()
        counted = conn.execute("SELECT app, plugin, count(*), sum(octet_length(key) + octet_length(value)) "
                               "FROM cspm_kv GROUP BY app, plugin ORDER BY app, plugin").fetchall()
    return usage, counted


# ---- the interface, on PostgreSQL ------------------------------------------------------------------

def test_usage_is_exact_in_the_same_transaction_as_the_rows(store: PostgresKvStore, postgres_url: str) -> None:  # noqa: F811
    store.set(A, "a", [1, 2])
    store.set(("app", "p", "s2"), "b", "é")
    store.set(("pkg:ns/x@r", "p", "s2"), "c", {"deep": "ü" * 3})
    store.delete(A, "a")
    usage, counted = recount(postgres_url)
    assert usage == counted and [row[:3] for row in usage] == [("app", "p", 1), ("pkg:ns/x@r", "p", 1)]
    assert store.usage(A) == (1, 1 + len('"é"'.encode()))
    assert store.clear(app="ns/x") == 1  # a published app's memory, from every registry
    assert store.clear(session="nope") == 0
    usage, counted = recount(postgres_url)
    assert usage == counted == [("app", "p", 1, 5)]


def test_keys_are_bytes_in_python_order_nul_and_all(store: PostgresKvStore) -> None:
    names = ["b", "a\x00z", "é", "a", "Z", "\U0001f600", "a\x00"]
    for name in names:
        store.set(A, name, name)
    assert store.keys(A) == sorted(names)  # code-point order, whatever the database's collation
    assert store.get(A, "a\x00z") == "a\x00z" and store.get(A, "a") == "a"
    assert store.usage(A) == (len(names), sum(len(n.encode()) + len(json.dumps(n, ensure_ascii=False).encode())
                                              for n in names))
    session = "s\x00ß"
    store.set(("app", "p", session), "k", None)
    assert [u.session for u in store.sessions(session=session)] == [session]
    assert store.get(("app", "p", session), "k") is None and store.keys(("app", "p", session)) == ["k"]


def test_sessions_are_newest_first_and_cleared_by_app_or_session(store: PostgresKvStore) -> None:
    store.set(("one", "p", "s1"), "k", 1)
    store.set(("one", "q", "s2"), "k", "xx")
    store.set(("pkg:ns/two@reg", "p", "s1"), "k", 1)
    found = store.sessions()
    assert [(u.app, u.plugin, u.session) for u in found] == [("pkg:ns/two@reg", "p", "s1"), ("one", "q", "s2"),
                                                           ("one", "p", "s1")]
    assert found[1].keys == 1 and found[1].bytes == 1 + 4 and found[0].updated >= found[1].updated > 0
    assert [u.app for u in store.sessions(app="ns/two")] == ["pkg:ns/two@reg"]
    assert store.clear(session="s1") == 2
    assert [(u.app, u.session) for u in store.sessions()] == [("one", "s2")]
    assert store.usage(("one", "p", "x")) == (0, 0) and store.usage(("one", "q", "x")) == (1, 5)


def test_the_schema_is_made_on_first_use_and_a_newer_one_refused(postgres_url: str) -> None:  # noqa: F811
    store = PostgresKvStore(postgres_url)
    assert store.keys(A) == []
    with psycopg.connect(postgres_url, autocommit=True) as conn:
        assert conn.execute("SELECT version FROM cspm_kv_schema").fetchall() == [(SCHEMA_VERSION,)]
        conn.execute("UPDATE cspm_kv_schema SET version = %s", (SCHEMA_VERSION + 1,))
    store.close()
    with pytest.raises(KvUnavailable, match=f"schema version {SCHEMA_VERSION + 1}, newer than this cspm"):
        PostgresKvStore(postgres_url).get(A, "k")


def test_once_made_a_user_without_create_right_can_use_it(postgres_url: str) -> None:  # noqa: F811
    PostgresKvStore(postgres_url).close()  # not even a connection yet
    owner = PostgresKvStore(postgres_url)
    owner.set(A, "k", 1)
    owner.close()
    role = "app_" + postgres_url.split("/")[3].split("?")[0]  # roles are the cluster's: one per database
    with psycopg.connect(postgres_url, autocommit=True) as conn:
        conn.execute(f"CREATE ROLE {role} LOGIN".encode())
        conn.execute("REVOKE CREATE ON SCHEMA public FROM PUBLIC")
        tables = "cspm_kv, cspm_kv_usage, cspm_kv_schema"
        conn.execute(f"GRANT SELECT, INSERT, UPDATE, DELETE ON {tables} TO {role}".encode())
    app = PostgresKvStore(postgres_url.replace("cspm@", f"{role}@"))
    app.set(A, "j", 2)
    assert app.keys(A) == ["j", "k"] and app.usage(A)[0] == 2
    app.close()


WRITER = """
import sys
from cspm.runtime import kv
from cspm.runtime.kv_postgres import PostgresKvStore
kv.QUOTA_KEYS = 15
store = PostgresKvStore(sys.argv[1])
written = 0
for i in range(12):
    try:
        store.set(("app", "p", sys.argv[2]), f"k{i}", "v" * 100)
        written += 1
    except kv.TooLarge:
        pass
print(written)
"""


def test_two_processes_writing_at_once_cannot_both_pass_the_quota(postgres_url: str) -> None:  # noqa: F811
    """On a fresh database: both also race to make the schema."""
    procs = [subprocess.Popen([sys.executable, "-c", WRITER, postgres_url, session], stdout=subprocess.PIPE,
                              stderr=subprocess.PIPE, text=True, cwd=ROOT) for session in ("one", "two")]
    outs = [p.communicate(timeout=120) for p in procs]
    assert all(p.returncode == 0 for p in procs), [err for _, err in outs]
    assert sum(int(out) for out, _ in outs) == 15
    store = PostgresKvStore(postgres_url)
    assert store.usage(A)[0] == 15 and sum(u.keys for u in store.sessions()) == 15
    usage, counted = recount(postgres_url)
    assert usage == counted
    store.close()


def test_threads_sharing_one_store_keep_the_quota(store: PostgresKvStore, monkeypatch: pytest.MonkeyPatch) -> None:
    """A serve pool shares one store between its threads: each request takes its own connection."""
    from concurrent.futures import ThreadPoolExecutor

    monkeypatch.setattr(kv, "QUOTA_KEYS", 20)

    def write(i: int) -> bool:
        try:
            store.set(("app", "p", f"s{i % 4}"), f"k{i}", i)
            return True
        except TooLarge:
            return False

    with ThreadPoolExecutor(8) as pool:
        assert sum(pool.map(write, range(40))) == 20
    assert store.usage(A)[0] == 20


# ---- an unreachable database, a restarted one ------------------------------------------------------

def test_an_unreachable_database_is_kv_unavailable_quickly(tmp_path: Path) -> None:
    store = PostgresKvStore(f"postgresql://cspm:s3cret@/db?host={tmp_path}&port=5999")  # no server there
    started = time.monotonic()
    with pytest.raises(KvUnavailable) as caught:
        store.set(A, "k", 1)
    assert time.monotonic() - started < 10
    error = caught.value
    assert error.code == "kv.unavailable" and error.hint and "retried" in error.hint
    assert f"kv memory on PostgreSQL ({tmp_path}:5999/db) is unavailable: " in error.message
    assert "s3cret" not in error.message
    with pytest.raises(KvUnavailable):
        store.get(A, "k")


@pytest.fixture
def own_cluster() -> Iterator[Cluster]:
    """A cluster of its own, for a test that stops it."""
    cluster = Cluster()
    yield cluster
    cluster.remove()


def test_a_restart_fails_the_requests_during_the_outage_and_then_recovers(own_cluster: Cluster) -> None:
    url = own_cluster.new_database()
    store = PostgresKvStore(url)
    store.set(A, "before", 1)
    own_cluster.stop()
    for attempt in (lambda: store.get(A, "before"), lambda: store.set(A, "during", 2), lambda: store.keys(A)):
        with pytest.raises(KvUnavailable, match="is unavailable"):
            attempt()
    own_cluster.start()
    assert store.get(A, "before") == 1  # a new connection, with no error shown for the dead one
    store.set(A, "after", 3)
    assert store.keys(A) == ["after", "before"] and store.usage(A)[0] == 2

    other = PostgresKvStore(url)  # idle connections of a store, all dead after a restart, are all dropped
    other.get(A, "before")
    own_cluster.stop("immediate")
    own_cluster.start()
    assert other.get(A, "after") == 3 and store.get(A, "after") == 3


# ---- two replicas, one conversation ----------------------------------------------------------------

PIRATE = "You are a pirate."
APP = """
name: chat-replicas
entry: agent
llms:
  - name: gpt
    description: chat completions
    plugin_name: {openai}
    config: {{base_url: "{url}/v1"}}
    secrets: {{api_key: env:OPENAI_API_KEY}}
    grant: {{hosts: ["{url}"]}}
agents:
  - name: agent
    description: a chat with memory
    plugin_name: {conversational}
    prompt: {prompt}
    llms: [gpt]
"""


@pytest.fixture
def chat_app(tmp_path: Path, scripted: Callable[[], ScriptedServer],
             monkeypatch: pytest.MonkeyPatch) -> tuple[Path, ScriptedServer]:
    for name in ("conversational", "openai-chat"):
        plugin_wasm(name)
    monkeypatch.setenv("OPENAI_API_KEY", "sk-test")
    llm = scripted()
    return write_app(tmp_path, APP.format(openai=PLUGINS / "openai-chat", conversational=PLUGINS / "conversational",
                                          url=llm.url, prompt=json.dumps(PIRATE))), llm


def received(llm: ScriptedServer, i: int = -1) -> list[tuple[str, str]]:
    return [(m["role"], m["content"]) for m in llm.seen[i].json["messages"]]


def cspm_run(path: Path, text: str, *options: str, env: dict[str, str] | None = None) -> dict[str, Any]:
    result = subprocess.run([sys.executable, "-m", "cspm.cli.main", "run", str(path), "--input", text, "--json",
                             *options], capture_output=True, text=True, cwd=ROOT, timeout=120,
                            env={**os.environ, "CSPM_DATA_DIR": str(path.parent / "unused"), **(env or {})})
    return {"status": result.returncode, **json.loads(result.stdout or result.stderr)}


def test_two_replicas_and_cspm_run_continue_one_conversation(
        chat_app: tuple[Path, ScriptedServer], postgres_url: str) -> None:  # noqa: F811
    path, llm = chat_app
    for text in ("Ahoy Ada!", "Ye be Ada.", "Aye, Ada.", "Still Ada.", "Ahoy Bob!"):
        llm.reply(openai_chat(text))
    one = load_app(path, kv=PostgresKvStore(postgres_url))  # two replicas: each its own store, connections
    two = load_app(path, kv=PostgresKvStore(postgres_url))
    try:
        assert one.run("I am Ada.", session="conv-1").output == "Ahoy Ada!"
        assert two.run("Who am I?", session="conv-1").output == "Ye be Ada."
        assert received(llm) == [("system", PIRATE), ("user", "I am Ada."), ("assistant", "Ahoy Ada!"),
                                 ("user", "Who am I?")]

        # more hosts: `cspm run` in other processes, told where the memory is by CSPM_KV_URL, then by --kv
        said = cspm_run(path, "Sure?", "--session", "conv-1", env={kv.ENV_URL: postgres_url})
        assert (said["status"], said["output"]) == (0, "Aye, Ada."), said
        said = cspm_run(path, "Really?", "--session", "conv-1", "--kv", postgres_url)
        assert (said["status"], said["output"]) == (0, "Still Ada."), said
        assert received(llm)[-3:] == [("user", "Sure?"), ("assistant", "Aye, Ada."), ("user", "Really?")]
        assert not (path.parent / "unused" / kv.FILE).exists()  # nothing went to SQLite

        assert two.run("I am Bob.", session="conv-2").output == "Ahoy Bob!"  # another conversation: its own
        assert received(llm) == [("system", PIRATE), ("user", "I am Bob.")]
        history = one.kv.get(("chat-replicas", "agent", "conv-1"), "history")
        assert [m["content"] for m in history] == ["I am Ada.", "Ahoy Ada!", "Who am I?", "Ye be Ada.", "Sure?",
                                                   "Aye, Ada.", "Really?", "Still Ada."]
    finally:
        for rt in (one, two):
            rt.close()
            rt.kv.close()

    refused = cspm_run(path, "hi", "--kv", "mysql://h/db")  # refused before anything is loaded
    assert refused["status"] == 2 and refused["error"]["code"] == "input", refused
    assert "scheme 'mysql' is not supported" in refused["error"]["message"]
    assert len(llm.seen) == 5


def test_a_run_during_an_outage_fails_with_kv_unavailable(chat_app: tuple[Path, ScriptedServer],
                                                           own_cluster: Cluster) -> None:
    path, llm = chat_app
    for text in ("Ahoy Ada!", "Ye be Ada."):
        llm.reply(openai_chat(text))
    rt: Runtime = load_app(path, kv=PostgresKvStore(own_cluster.new_database()), session="conv")
    try:
        rt.run("I am Ada.")
        own_cluster.stop()
        with pytest.raises(KvUnavailable, match=r"kv memory on PostgreSQL \(.*\) is unavailable"):
            rt.run("Who am I?")
        own_cluster.start()
        assert rt.run("Who am I?").output == "Ye be Ada."
        assert received(llm) == [("system", PIRATE), ("user", "I am Ada."), ("assistant", "Ahoy Ada!"),
                                 ("user", "Who am I?")]
    finally:
        rt.close()
        rt.kv.close()


# ---- choosing the store by URL ---------------------------------------------------------------------

def test_urls_name_the_store(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    for url, path in ((f"sqlite://{tmp_path}/a.db", tmp_path / "a.db"), (f"sqlite:{tmp_path}/b.db", tmp_path / "b.db"),
                      (str(tmp_path / "c.db"), tmp_path / "c.db")):
        made = kv.open_url(url)
        assert isinstance(made, SqliteKvStore) and made.path == path
    monkeypatch.chdir(tmp_path)
    assert getattr(kv.open_url("sqlite:rel.db"), "path", None) == Path("rel.db")
    for url in ("postgresql://u@h/db", "postgres://h/db", "POSTGRESQL://h/db"):
        assert isinstance(kv.open_url(url), PostgresKvStore)
    for url, says in (("mysql://h/db", "scheme 'mysql' is not supported"), ("", "empty"), ("sqlite://", "no file"),
                      ("x" * 5000, "over 4096"), ("a\x00b", "NUL")):
        with pytest.raises(InputError, match=says):
            kv.open_url(url)
        if url:
            with pytest.raises(InputError, match=says):
                kv.factory_for(url)  # said when the host starts, before any request


def test_cspm_kv_url_is_honoured_and_a_shared_database_is_one_store(tmp_path: Path, isolated_data: Path,
                                                                    monkeypatch: pytest.MonkeyPatch) -> None:
    assert isinstance(kv.open_default(), SqliteKvStore)
    assert kv.factory_for() is kv.open_default
    monkeypatch.setenv(kv.ENV_URL, f"sqlite://{tmp_path}/env.db")
    assert getattr(kv.open_default(), "path", None) == tmp_path / "env.db"
    assert getattr(kv.factory_for()(), "path", None) == tmp_path / "env.db"
    monkeypatch.setenv(kv.ENV_URL, "postgresql://cspm@/db?host=/nowhere")
    assert isinstance(kv.open_default(), PostgresKvStore)
    factory = kv.factory_for()
    assert factory() is factory()  # every runtime of a serve pool shares its connections
    assert getattr(kv.factory_for(f"sqlite:{tmp_path}/flag.db")(), "path", None) == tmp_path / "flag.db"


def test_psycopg_is_imported_only_at_the_first_request(postgres_url: str) -> None:  # noqa: F811
    code = f"""
import sys
import cspm.cli.main, cspm.runtime.engine
from cspm.runtime import kv
store = kv.factory_for({postgres_url!r})()
assert "psycopg" not in sys.modules, "before"
store.set(("a", "p", "s"), "k", 1)
assert "psycopg" in sys.modules
print(store.get(("a", "p", "s"), "k"))
"""
    result = subprocess.run([sys.executable, "-c", code], capture_output=True, text=True, cwd=ROOT, timeout=120,
                            env={**os.environ, kv.ENV_URL: postgres_url})
    assert (result.returncode, result.stdout) == (0, "1\n"), result.stderr
