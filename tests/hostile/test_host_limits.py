"""A hostile plug-in against the host's own limits: JSON it cannot parse safely, and behaviour that
would grow the host (logs, trace spans, kv). Every case is the real host running tests/hostile/wat/
limits.wat; where the finding was memory, the host's peak RSS is measured in a fresh process."""

from __future__ import annotations

import json
import sqlite3
import subprocess
import sys
from collections.abc import Iterator
from pathlib import Path

import pytest

from cspm.errors import PluginError
from cspm.formats.bounded_json import MAX_DEPTH
from cspm.planner import load_app
from cspm.runtime import kv, logs, trace
from cspm.runtime.engine import MAX_ANSWER_BYTES, MAX_CHUNK_CHARS, MAX_REQUEST_BYTES, Runtime
from tests.integration.test_cli import cspm

MiB = 1024 * 1024
APP = """name: limits
entry: t
tools:
  - {{name: t, description: pushes the host to its limits, plugin_name: limits.wasm, grant: {grant}}}
agents:
  - {{name: a, description: calls t, plugin_name: limits.wasm, tools: [t]}}
"""


@pytest.fixture
def app(tmp_path: Path, wat_modules: dict[str, bytes]) -> Path:
    (tmp_path / "limits.wasm").write_bytes(wat_modules["limits"])
    path = tmp_path / "app.yaml"
    path.write_text(APP.format(grant="{kv: true, timeout_ms: 60000}"))
    return path


@pytest.fixture
def rt(app: Path) -> Iterator[Runtime]:
    chunks: list[str] = []
    with load_app(app, kv=kv.SqliteKvStore(app.parent / "kv.sqlite3"), session="s1",
                  on_chunk=lambda _name, text: chunks.append(text)) as runtime:
        runtime.chunks = chunks  # type: ignore[attr-defined]
        yield runtime


def answer(rt: Runtime, command: str, node: str = "t") -> dict:
    """What the plug-in answered: for the host-function cases, the host's answer as it got it."""
    return json.loads(rt.call_export(node, "call", command.encode()))


# ---- hostile JSON: refused with the documented code, never `internal` ----------------------------

@pytest.mark.parametrize("command, says", [
    ("8 100000", f"emit: bad request: nested more than {MAX_DEPTH} levels deep"),
    ("8 65", f"emit: bad request: nested more than {MAX_DEPTH} levels deep"),
    ("9 5000", "emit: bad request: a number has more than 100 digits"),
], ids=["nested-100000", "nested-65", "integer-5000-digits"])
def test_a_hostile_request_is_bad_request(rt: Runtime, command: str, says: str) -> None:
    assert answer(rt, command) == {"error": {"code": "bad_request", "message": says}}


def test_nesting_within_the_limit_is_still_a_request(rt: Runtime) -> None:
    """The bound is the loader's depth, not a ban on nesting (the schema check then has its say)."""
    assert answer(rt, "8 60") == {}


@pytest.mark.parametrize("command, says", [
    ("11 100000", f"(nested more than {MAX_DEPTH} levels deep)"),
    ("12 5000", "(a number has more than 100 digits)"),
], ids=["nested-100000", "integer-5000-digits"])
def test_a_hostile_answer_is_callee_failed_for_the_caller(rt: Runtime, command: str, says: str) -> None:
    error = answer(rt, command, node="a")["error"]
    assert error["code"] == "callee_failed"
    assert error["message"].startswith("tool `t` returned invalid JSON: b'") and error["message"].endswith(says)


@pytest.mark.parametrize("command, says", [
    ("6 100000", f"nested more than {MAX_DEPTH} levels deep"),
    ("7 5000", "a number has more than 100 digits"),
], ids=["nested-100000", "integer-5000-digits"])
def test_a_hostile_answer_at_the_top_is_a_plugin_error(app: Path, command: str, says: str) -> None:
    """`cspm run` fails as for any other plug-in failure (exit 1), never as a bug in cspm (exit 70)."""
    result = cspm("run", str(app), "-i", command)
    assert result.returncode == 1, result.stderr
    assert "tool `t` returned invalid JSON" in result.stderr and says in result.stderr, result.stderr
    assert "internal error" not in result.stderr


def test_an_answer_over_the_size_limit_is_refused(rt: Runtime) -> None:
    with pytest.raises(PluginError, match=f"more than the {MAX_ANSWER_BYTES}-byte limit"):
        rt.run(f"6 {MAX_ANSWER_BYTES // 2 + 1}")


def test_a_request_over_the_size_limit_is_bad_request(tmp_path: Path, wat_modules: dict[str, bytes]) -> None:
    (tmp_path / "limits.wasm").write_bytes(wat_modules["limits"])
    (tmp_path / "app.yaml").write_text(APP.format(grant="{memory_pages: 1024}"))
    with load_app(tmp_path / "app.yaml") as rt:
        error = answer(rt, f"2 1 {MAX_REQUEST_BYTES}")["error"]
        assert error["code"] == "bad_request" and f"more than the {MAX_REQUEST_BYTES}-byte limit" in error["message"]
        assert rt.nodes["t"].logs == []


def test_a_stored_kv_value_past_the_json_limits_is_refused_on_read(rt: Runtime, app: Path) -> None:
    """A value an older cspm (or anything else) wrote to the database: too_large, not a crash."""
    assert answer(rt, "5 1 1") == {"output": "ok", "is_error": False}
    db = sqlite3.connect(app.parent / "kv.sqlite3")
    for stored, says in [("[" * 100_000 + "]" * 100_000, f"nested more than {MAX_DEPTH} levels deep"),
                         ("1" * 5000, "a number has more than 100 digits")]:
        with db:
            db.execute("UPDATE kv SET value=? WHERE key='k0'", (stored,))
        assert answer(rt, "10") == {"error": {"code": "too_large", "message": (
            f"kv_get: the stored value of key 'k0' cannot be read back: {says}")}}
    db.close()


def test_lone_surrogates_in_kv_are_refused_or_kept_not_a_crash(rt: Runtime) -> None:
    """JSON may escape a lone UTF-16 surrogate, which UTF-8 (and SQLite) cannot hold."""
    error = answer(rt, "13")["error"]
    assert error["code"] == "bad_request" and "is not valid Unicode" in error["message"]
    assert answer(rt, "14") == {}
    assert answer(rt, "10") == {"value": "\ud800"}


# ---- emit chunks ---------------------------------------------------------------------------------

def test_an_oversize_chunk_is_refused_whole(rt: Runtime) -> None:
    assert answer(rt, f"3 1 {MAX_CHUNK_CHARS}") == {"output": "ok", "is_error": False}
    assert answer(rt, f"3 3 {MAX_CHUNK_CHARS + 1}") == {"error": {"code": "bad_request", "message": (
        f"emit: a chunk of {MAX_CHUNK_CHARS + 1} characters is over the {MAX_CHUNK_CHARS}-character limit "
        f"(send it in several)")}}
    assert [len(text) for text in rt.chunks] == [MAX_CHUNK_CHARS]  # type: ignore[attr-defined]


# ---- logs ----------------------------------------------------------------------------------------

@pytest.mark.parametrize("command", ["1 300 10000", "2 300 10000"], ids=["log_info", "emit-log"])
def test_log_lines_are_cut_and_bytes_bounded(rt: Runtime, command: str) -> None:
    rt.run(command)
    rt.drain_logs()
    node = rt.nodes["t"]
    cut = "a" * logs.MAX_LINE_CHARS + "…"
    assert node.logs and all(line.message == cut for line in node.logs)
    assert len(node.logs) == logs.MAX_LOG_BYTES // len(cut.encode())
    assert node.log_bytes <= logs.MAX_LOG_BYTES
    assert len(node.logs) + node.dropped_logs == 300


@pytest.mark.parametrize("command, kept", [
    ("1 5000 10", logs.MAX_LOG_LINES), ("2 5000 10", logs.MAX_LOG_LINES),  # the number of lines
    ("1 5000 1000", logs.MAX_LOG_BYTES // 1000), ("2 5000 1000", logs.MAX_LOG_BYTES // 1000),  # their bytes
], ids=["log_info-lines", "emit-log-lines", "log_info-bytes", "emit-log-bytes"])
def test_log_lines_are_bounded_and_the_rest_reported(app: Path, command: str, kept: int) -> None:
    result = cspm("run", str(app), "-i", command, "-v")
    assert result.returncode == 0 and result.stdout.strip() == "ok", result.stderr[-500:]
    lines = result.stderr.splitlines()
    size = int(command.split()[2])
    assert len(lines) == kept + 1 and all(line == "[t] info: " + "a" * size for line in lines[:-1])
    assert lines[-1].startswith(f"[t] {5000 - kept} more log lines dropped")


def test_lines_waiting_to_be_routed_are_bounded(rt: Runtime) -> None:
    """Between two drains the collector holds at most MAX_LOG_LINES of a plug-in's lines; the rest are
    counted there and reach the plug-in's count on the next drain."""
    node = rt.nodes["t"]
    with rt._logs.collecting():
        node.plugin.call("call", b"1 5000 10")  # straight into the plug-in: nothing drains on the way out
        rt._logs._pull()
        waiting = rt._logs._waiting[str(node.plugin.id)]
        assert len(waiting.lines) == logs.MAX_LOG_LINES and waiting.dropped == 5000 - logs.MAX_LOG_LINES
    rt.drain_logs()
    assert (len(node.logs), node.dropped_logs) == (logs.MAX_LOG_LINES, 5000 - logs.MAX_LOG_LINES)


MEASURE = """
import json, sys
from pathlib import Path
from cspm.planner import load_app
from cspm.runtime.kv import SqliteKvStore

def peak() -> int:
    with open("/proc/self/status") as status:
        return next(int(line.split()[1]) * 1024 for line in status if line.startswith("VmHWM:"))

app = Path(sys.argv[1])
with load_app(app, kv=SqliteKvStore(app.parent / "kv.sqlite3")) as rt:
    rt.run("4 1 1")  # warm: compiled, httpx imported, a span, a refusal
    before = peak()
    result = rt.run(sys.argv[2])
    rt.drain_logs()
    node = rt.nodes["t"]
    print(json.dumps({"growth": peak() - before, "output": result.output, "lines": len(node.logs),
                      "dropped": node.dropped_logs, "trace": result.trace.to_dict()}))
"""


def measure(app: Path, command: str) -> dict:
    """Run `command` in a fresh host process: what it answered and kept, and how much its peak RSS grew."""
    done = subprocess.run([sys.executable, "-c", MEASURE, str(app), command], capture_output=True, text=True,
                          timeout=300)
    assert done.returncode == 0, done.stderr[-2000:]
    return json.loads(done.stdout)


@pytest.mark.parametrize("command, lines", [
    ("1 160 1048576", 160),  # 160 MiB of log_info, in 1 MiB lines
    ("1 1000000 1", 1_000_000),  # a million short lines: Extism's buffer between drains
    ("2 160 1048576", 160),  # 160 MiB of emit log events
], ids=["log_info-160MiB", "log_info-1M-lines", "emit-log-160MiB"])
def test_a_log_flood_does_not_grow_the_host(app: Path, command: str, lines: int) -> None:
    got = measure(app, command)
    assert got["output"] == "ok"
    assert got["lines"] + got["dropped"] == lines and got["lines"] <= logs.MAX_LOG_LINES
    assert got["growth"] < 40 * MiB, f"peak RSS grew {got['growth'] / MiB:.0f} MiB"


# ---- trace ---------------------------------------------------------------------------------------

def test_refused_fetches_keep_a_bounded_trace(app: Path) -> None:
    """5,000 refused fetches of an 8,000-character URL: MAX_SPANS kept, each cut, the rest counted."""
    got = measure(app, "4 5000 8000")
    root = got["trace"]
    assert got["output"] == "ok" and root["dropped_spans"] == 5000 - trace.MAX_SPANS
    kept, marker = root["children"][:-1], root["children"][-1]
    assert len(kept) == trace.MAX_SPANS and all(span["kind"] == "http" for span in kept)
    assert all(len(span["name"]) <= trace.NAME_LIMIT + 1 for span in kept)
    assert all(len(span["error"]) <= trace.TEXT_LIMIT + 1 for span in kept)
    assert (marker["kind"], marker["name"]) == ("dropped", f"{5000 - trace.MAX_SPANS} more spans dropped")
    assert len(json.dumps(root)) < trace.MAX_SPANS * 1024
    assert got["growth"] < 16 * MiB, f"peak RSS grew {got['growth'] / MiB:.0f} MiB"


def test_the_cli_trace_says_how_many_spans_were_dropped(app: Path) -> None:
    result = cspm("run", str(app), "-i", f"4 {trace.MAX_SPANS + 5} 10", "--json", "--trace")
    assert result.returncode == 0, result.stderr
    root = json.loads(result.stdout)["trace"]
    assert root["dropped_spans"] == 5 and root["children"][-1]["name"] == "5 more spans dropped"
    assert len(root["children"]) == trace.MAX_SPANS + 1


def test_span_text_is_cut_whoever_sets_it() -> None:
    span = trace.Span("n" * 10_000, "http", detail="d" * 10_000)
    span.finish("e" * 10_000)
    span.output = "o" * 10_000
    assert (len(span.name), len(span.detail or ""), len(span.error or ""), len(span.output)) == (
        trace.NAME_LIMIT + 1, trace.NAME_LIMIT + 1, trace.TEXT_LIMIT + 1, trace.TEXT_LIMIT + 1)


# ---- kv ------------------------------------------------------------------------------------------

def kv_rows(app: Path) -> tuple[int, int]:
    """(keys, bytes) really in the database, counted from the rows."""
    with sqlite3.connect(app.parent / "kv.sqlite3") as db:
        return db.execute("SELECT count(*), coalesce(sum(length(CAST(key AS BLOB)) + length(CAST(value AS BLOB))), 0) "
                          "FROM kv").fetchone()


def test_kv_bytes_quota(rt: Runtime, app: Path) -> None:
    """One call tries to write 80 values of 1 MiB: it stops at the quota, told why."""
    error = answer(rt, f"5 80 {kv.MAX_VALUE_BYTES - 2}")["error"]
    assert error["code"] == "too_large"
    assert error["message"].startswith("kv_set: kv quota: this plug-in holds ")
    assert error["message"].endswith(f"would pass its quota of {kv.QUOTA_BYTES // MiB} MiB (keys and values "
                                     f"over all sessions)")
    keys, used = kv_rows(app)
    assert keys == kv.QUOTA_BYTES // kv.MAX_VALUE_BYTES - 1 and used <= kv.QUOTA_BYTES
    (scope,) = _scopes(app)
    assert rt.kv.usage(scope) == (keys, used)  # what the quota counts is what is there
    assert answer(rt, "5 1 1") == {"output": "ok", "is_error": False}  # shrinking a value is always allowed
    assert kv_rows(app)[1] < used


def _scopes(app: Path) -> set[tuple[str, str, str]]:
    with sqlite3.connect(app.parent / "kv.sqlite3") as db:
        return set(db.execute("SELECT app, plugin, session FROM kv"))


def test_kv_keys_quota(rt: Runtime, app: Path) -> None:
    error = answer(rt, f"5 {kv.QUOTA_KEYS + 1} 1")["error"]
    assert error == {"code": "too_large", "message": (
        f"kv_set: kv quota: this plug-in already holds {kv.QUOTA_KEYS} keys in this app, the most it may "
        f"(at most {kv.QUOTA_KEYS} keys over all sessions)")}
    assert kv_rows(app)[0] == kv.QUOTA_KEYS
    assert answer(rt, "5 1 2") == {"output": "ok", "is_error": False}  # an existing key can still be set


def test_kv_quota_counts_every_session_of_the_plugin(app: Path) -> None:
    """A plug-in gets no more room by writing under more sessions (a caller picks an agent's session)."""
    store = kv.SqliteKvStore(app.parent / "kv.sqlite3")
    half = kv.QUOTA_BYTES // kv.MAX_VALUE_BYTES // 2 + 4
    with load_app(app, kv=store, session="one") as rt:
        assert answer(rt, f"5 {half} {kv.MAX_VALUE_BYTES - 2}") == {"output": "ok", "is_error": False}
    with load_app(app, kv=store, session="two") as rt:
        assert answer(rt, f"5 {half} {kv.MAX_VALUE_BYTES - 2}")["error"]["code"] == "too_large"
    assert kv_rows(app)[1] <= kv.QUOTA_BYTES
    assert len({session for _app, _plugin, session in _scopes(app)}) == 2


def test_a_database_from_before_the_quota_is_counted_once(tmp_path: Path) -> None:
    path = tmp_path / "kv.sqlite3"
    with sqlite3.connect(path) as db:
        db.executescript(kv.SCHEMA.split("CREATE TABLE IF NOT EXISTS kv_usage")[0])
        db.executemany("INSERT INTO kv VALUES (?, ?, ?, ?, ?, 0)",
                       [("app", "p", f"s{i}", f"k{i}", json.dumps("v" * 100)) for i in range(30)])
    store = kv.SqliteKvStore(path)
    assert store.usage(("app", "p", "s")) == (30, 30 * (102 + 1) + sum(len(str(i)) for i in range(30)))
    store.set(("app", "p", "s0"), "k0", 1)
    assert store.usage(("app", "p", "s"))[0] == 30
    store.close()
