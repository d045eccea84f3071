"""kv behind the `KvStore` interface (issue 18 §4): the runtime runs with any implementation passed in
(here a dict), and the interface's bounds hold for the SQLite store and the dict alike, down to two
processes writing to one database at once."""

from __future__ import annotations

import json
import shutil
import sqlite3
import subprocess
import sys
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import pytest

from cspm.planner import load_app
from cspm.runtime import kv
from cspm.runtime.kv import KvKeyInvalid, KvStore, Scope, SessionUsage, SqliteKvStore, TooLarge

LIMITS_WAT = Path(__file__).parents[1] / "hostile" / "wat" / "limits.wat"
APP = """name: limits
entry: t
tools:
  - {name: t, description: writes and reads kv as its input says, plugin_name: limits.wasm, grant: {kv: true}}
"""


class DictKvStore:
    """A second KvStore: memory in a dict, with the interface's bounds (no persistence)."""

    def __init__(self) -> None:
        self.data: dict[Scope, dict[str, str]] = {}
        self.closed = False

    def get(self, scope: Scope, key: str) -> Any:
        kv.check_key(key)
        text = self.data.get(scope, {}).get(key)
        return None if text is None else kv.decode(text, key)

    def set(self, scope: Scope, key: str, value: Any) -> None:
        key_size, text = kv.check_key(key), kv.encode(value)
        old = self.data.get(scope, {}).get(key)
        keys, used = self.usage(scope)
        grow = len(text.encode()) - (len(old.encode()) if old is not None else -key_size)
        kv.check_quota(keys, used, old is None, grow)
        self.data.setdefault(scope, {})[key] = text

    def delete(self, scope: Scope, key: str) -> bool:
        kv.check_key(key)
        return self.data.get(scope, {}).pop(key, None) is not None

    def keys(self, scope: Scope) -> list[str]:
        return sorted(self.data.get(scope, {}))

    def usage(self, scope: Scope) -> tuple[int, int]:
        rows = [(k, v) for s, held in self.data.items() if s[:2] == scope[:2] for k, v in held.items()]
        return len(rows), sum(len(k.encode()) + len(v.encode()) for k, v in rows)

    def sessions(self, app: str | None = None, session: str | None = None) -> list[SessionUsage]:
        return [SessionUsage(*s, len(held), sum(len(k.encode()) + len(v.encode()) for k, v in held.items()), 0.0)
                for s, held in self.data.items() if held and app in (None, s[0]) and session in (None, s[2])]

    def clear(self, app: str | None = None, session: str | None = None) -> int:
        gone = [s for s in self.data if app in (None, s[0]) and session in (None, s[2])]
        return sum(len(self.data.pop(s)) for s in gone)

    def close(self) -> None:
        self.closed = True


@pytest.fixture(scope="module")
def limits_app(tmp_path_factory: pytest.TempPathFactory) -> Path:
    tool = shutil.which("wat2wasm")
    if tool is None:
        pytest.fail("wat2wasm (Debian package wabt) is required: .ci/setup installs it")
    folder = tmp_path_factory.mktemp("kv-app")
    subprocess.run([tool, str(LIMITS_WAT), "-o", str(folder / "limits.wasm")], check=True)
    (folder / "app.yaml").write_text(APP)
    return folder / "app.yaml"


def answer(rt: Any, command: str) -> dict[str, Any]:
    return json.loads(rt.call_export("t", "call", command.encode()))


def test_the_runtime_runs_on_another_implementation_passed_in(limits_app: Path, isolated_data: Path) -> None:
    store = DictKvStore()
    assert isinstance(store, KvStore)
    with load_app(limits_app, kv=store, session="s1") as rt:
        assert answer(rt, "5 3 4") == {"output": "ok", "is_error": False}  # kv_set k0..k2 = "aaaa"
        assert answer(rt, "10") == {"value": "aaaa"}  # kv_get k0
        error = answer(rt, f"5 1 {kv.MAX_VALUE_BYTES}")["error"]  # the store's refusal, as the ABI's code
        assert error["code"] == "too_large" and "over the 1048576-byte limit" in error["message"]
    assert store.keys(("limits", "t", "s1")) == ["k0", "k1", "k2"]
    assert store.data[("limits", "t", "s1")]["k0"] == '"aaaa"'
    assert not (isolated_data / kv.FILE).exists()  # the default SQLite store was never opened


def test_the_factory_is_called_once_and_only_when_kv_is_used(limits_app: Path, isolated_data: Path) -> None:
    made: list[DictKvStore] = []

    def factory() -> KvStore:
        made.append(DictKvStore())
        return made[-1]

    with load_app(limits_app, kv_factory=factory, session="s1") as rt:
        assert answer(rt, "1 1 1") == {"output": "ok", "is_error": False}  # a log line: no kv
        assert made == []
        answer(rt, "5 2 1")
        answer(rt, "10")
    assert len(made) == 1 and made[0].keys(("limits", "t", "s1")) == ["k0", "k1"]
    assert not (isolated_data / kv.FILE).exists()


@pytest.fixture(params=["sqlite", "dict"])
def store(request: pytest.FixtureRequest, tmp_path: Path) -> Iterator[KvStore]:
    made: KvStore = SqliteKvStore(tmp_path / kv.FILE) if request.param == "sqlite" else DictKvStore()
    yield made
    made.close()


@pytest.fixture
def small_quota(monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setattr(kv, "QUOTA_KEYS", 3)
    monkeypatch.setattr(kv, "QUOTA_BYTES", 100)


A: Scope = ("app", "p", "s1")


@pytest.mark.parametrize("key, says", [
    ("k" * (kv.MAX_KEY_CHARS + 1), "over the 512-character limit"),
    ("\ud800", "not valid Unicode"),
    ("", "non-empty"),
])
def test_a_key_past_the_bounds_is_refused_and_nothing_written(store: KvStore, key: str, says: str) -> None:
    for attempt in (lambda: store.set(A, key, 1), lambda: store.get(A, key), lambda: store.delete(A, key)):
        with pytest.raises(KvKeyInvalid, match=says):
            attempt()
    assert store.keys(A) == [] and store.usage(A) == (0, 0)
    store.set(A, "k" * kv.MAX_KEY_CHARS, 1)  # the longest key is fine
    assert store.get(A, "k" * kv.MAX_KEY_CHARS) == 1


def test_a_value_over_the_limit_is_refused_and_the_old_one_kept(store: KvStore) -> None:
    store.set(A, "k", "small")
    with pytest.raises(TooLarge, match="over the 1048576-byte limit"):
        store.set(A, "k", "x" * kv.MAX_VALUE_BYTES)  # its JSON text has two quotes more
    store.set(A, "j", "x" * (kv.MAX_VALUE_BYTES - 2))  # exactly at the limit
    assert store.get(A, "k") == "small" and store.keys(A) == ["j", "k"]


def test_the_quota_counts_every_session_and_shrinking_is_always_allowed(store: KvStore, small_quota: None) -> None:
    for session, key in (("s1", "a"), ("s2", "b"), ("s3", "c")):
        store.set(("app", "p", session), key, 1)
    with pytest.raises(TooLarge, match="already holds 3 keys"):
        store.set(("app", "p", "s4"), "d", 1)
    store.set(("app", "other", "s1"), "d", 1)  # another plug-in has its own quota
    store.set(("app", "p", "s1"), "a", "x" * 80)  # grows to 83 + 2 + 2 = 87 bytes of 100
    with pytest.raises(TooLarge, match="would pass its quota"):
        store.set(("app", "p", "s2"), "b", "x" * 20)
    assert store.get(("app", "p", "s2"), "b") == 1
    store.set(("app", "p", "s1"), "a", "x" * 10)  # smaller: allowed
    assert store.usage(A) == (3, 13 + 2 + 2)
    assert store.delete(("app", "p", "s3"), "c") and not store.delete(("app", "p", "s3"), "c")
    assert store.usage(A) == (2, 15)
    store.set(("app", "p", "s4"), "d", 1)  # room again


def test_scopes_never_see_each_other(store: KvStore) -> None:
    store.set(A, "k", {"n": 1})
    for other in (("app", "p", "s2"), ("app", "q", "s1"), ("pkg:a/b@r", "p", "s1")):
        assert store.get(other, "k") is None and store.keys(other) == []
    assert [(u.app, u.plugin, u.session, u.keys) for u in store.sessions()] == [("app", "p", "s1", 1)]
    assert store.clear(session="s1") == 1 and store.get(A, "k") is None


def test_sqlite_keeps_usage_exact_in_the_same_transaction_as_the_rows(tmp_path: Path, small_quota: None) -> None:
    store = SqliteKvStore(tmp_path / kv.FILE)
    store.set(A, "a", [1, 2])
    store.set(("app", "p", "s2"), "b", "é")
    store.delete(A, "a")
    store.close()
    with sqlite3.connect(tmp_path / kv.FILE) as db:
        assert db.execute("SELECT keys, bytes FROM kv_usage").fetchall() == db.execute(
            "SELECT count(*), sum(length(CAST(key AS BLOB)) + length(CAST(value AS BLOB))) FROM kv").fetchall()
        assert db.execute("SELECT app, plugin, session, key, value FROM kv").fetchall() == [
            ("app", "p", "s2", "b", '"é"')]


WRITER = """
import sys
from pathlib import Path
from cspm.runtime import kv
kv.QUOTA_KEYS = 15
store = kv.SqliteKvStore(Path(sys.argv[1]))
written = 0
for i in range(12):
    try:
        store.set(("app", "p", sys.argv[2]), f"k{i}", "v" * 100)
        written += 1
    except kv.TooLarge:
        pass
print(written)
"""


def test_two_processes_writing_at_once_cannot_both_pass_the_quota(tmp_path: Path) -> None:
    path = tmp_path / kv.FILE
    SqliteKvStore(path).usage(A)  # the schema, made once
    procs = [subprocess.Popen([sys.executable, "-c", WRITER, str(path), session], stdout=subprocess.PIPE, text=True)
             for session in ("one", "two")]
    written = [int(p.communicate(timeout=120)[0]) for p in procs]
    assert all(p.returncode == 0 for p in procs)
    assert sum(written) == 15
    store = SqliteKvStore(path)
    assert store.usage(A)[0] == 15 and sum(u.keys for u in store.sessions()) == 15
    store.close()



OPENER = """
import contextlib, sys, threading
from pathlib import Path
from cspm.runtime import kv
kv._SETUP_LOCK = contextlib.nullcontext()  # as separate processes: no lock in common but SQLite's
errors = []
for round_ in range(int(sys.argv[2])):
    path = Path(sys.argv[1]) / f"{round_}.sqlite3"
    start = threading.Barrier(4)
    def first_use(i: int) -> None:
        store = kv.SqliteKvStore(path)
        start.wait()
        try:
            store.get(("app", "p", str(i)), "memory")
            store.set(("app", "p", str(i)), "memory", ["x" * 200])
        except Exception as exc:
            errors.append(repr(exc))
        finally:
            store.close()
    threads = [threading.Thread(target=first_use, args=(i,)) for i in range(4)]
    for t in threads: t.start()
    for t in threads: t.join()
print(errors)
"""


def test_connections_opening_a_new_file_at_once_all_get_their_answer(tmp_path: Path) -> None:
    """A serve pool's runtimes open the kv file at their first request, at once: the first use sets up
    WAL mode and the tables, and none may meet SQLite's immediate "database is locked" (the old set-up
    did in ~8% of these rounds)."""
    out = subprocess.run([sys.executable, "-c", OPENER, str(tmp_path), "150"], capture_output=True, text=True,
                         timeout=300)
    assert out.returncode == 0, out.stderr[-2000:]
    assert out.stdout.strip() == "[]"
    for round_ in (0, 149):
        store = SqliteKvStore(tmp_path / f"{round_}.sqlite3")
        assert store.usage(A) == (4, 4 * (len("memory") + len(json.dumps(["x" * 200], separators=(",", ":")))))
        store.close()
