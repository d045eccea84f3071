"""The registry's audit trail: every refused write is a warning line, and a token id means one token for ever.

A real `cspm-registry serve` on loopback; its log (stderr) is captured in a file and read back.
"""

from __future__ import annotations

import json
import os
import re
import sqlite3
from collections.abc import Callable, Iterator
from pathlib import Path
from typing import Any

import pytest

from tests.conftest import conformance_wasm
from tests.registry_support import Server, manifest, registry_cli

pytestmark = pytest.mark.timeout(180)

UNKNOWN = "csr_" + "U" * 43
Start = Callable[..., Server]


@pytest.fixture
def start(tmp_path: Path) -> Iterator[Start]:
    """Start `cspm-registry serve` on a data dir (default tmp_path/data), its log in its own file."""
    started: list[Server] = []

    def start_server(data: Path | None = None) -> Server:
        started.append(Server(data or tmp_path / "data", tmp_path / f"server-{len(started)}.log"))
        return started[-1]

    yield start_server
    for running in started:
        running.stop()


@pytest.fixture
def server(start: Start) -> Server:
    return start()


def json_list(data: Path) -> list[dict[str, Any]]:
    result = registry_cli("token", "list", "--data", str(data), "--json")
    assert result.returncode == 0, result.stderr
    return json.loads(result.stdout)


def refusals(server: Server) -> list[str]:
    return [line for line in server.log.read_text().splitlines() if "refused " in line]


def whoami(server: Server, token: str | None) -> Any:
    return server.request("GET", "/api/v1/whoami", token=token)


def test_every_refused_write_is_one_warning_line(server: Server) -> None:
    modules = {"c": conformance_wasm("c").read_bytes(), "random": os.urandom(4096)}
    token, other = server.token("test"), server.token("other")
    by_namespace = {row["namespaces"][0]: row["id"] for row in json_list(server.data)}
    ids = {token: by_namespace["test"], other: by_namespace["other"]}
    assert whoami(server, token).json()["id"] == ids[token]  # a success: logged at info, not as a refusal
    assert server.publish(token, manifest("test/echo", "1.0.0"), modules["c"]).status == 201
    assert refusals(server) == []

    cases = [  # (request, expected line after `refused `)
        (lambda: server.publish(None, manifest("test/echo", "1.1.0"), modules["c"]),
         "publish: reason=unauthorized status=401 token=none client=127.0.0.1"),
        (lambda: server.publish(UNKNOWN, manifest("test/echo", "1.1.0"), modules["c"]),
         "publish: reason=unauthorized status=401 token=unknown client=127.0.0.1"),
        (lambda: server.publish(other, manifest("test/echo", "1.1.0"), modules["c"]),
         f"publish: reason=forbidden status=403 package=test/echo token=#{ids[other]} client=127.0.0.1"),
        (lambda: server.publish(token, manifest("test/echo", "1.0"), modules["c"]),
         f"publish: reason=exists status=409 package=test/echo version=1.0 token=#{ids[token]} client=127.0.0.1"),
        (lambda: server.publish(token, manifest("test/echo", "2.0.0"), modules["random"]),
         f"publish: reason=invalid status=422 package=test/echo version=2.0.0 token=#{ids[token]} "
         f"client=127.0.0.1"),
        (lambda: server.request("PUT", "/api/v1/publish", b"\x05\x00", token=token),
         f"publish: reason=bad_request status=400 token=#{ids[token]} client=127.0.0.1"),
        (lambda: server.yank(token, "test/echo", "9.9.9", True),
         f"yank: reason=not_found status=404 package=test/echo version=9.9.9 token=#{ids[token]} client=127.0.0.1"),
        (lambda: server.yank(other, "test/echo", "1.0.0", "bad"),
         f"yank: reason=forbidden status=403 package=test/echo version=1.0.0 token=#{ids[other]} client=127.0.0.1"),
        (lambda: whoami(server, UNKNOWN), "whoami: reason=unauthorized status=401 token=unknown client=127.0.0.1"),
    ]
    for number, (send, expected) in enumerate(cases, 1):
        answer = send()
        assert answer.status >= 400, answer.body
        lines = refusals(server)
        assert len(lines) == number, lines  # one line per refusal, written before the answer
        level, _, rest = lines[-1].partition(":")
        assert level == "WARNING" and rest.strip().startswith(f"refused {expected} message=\""), lines[-1]
        assert answer.error()[1][:60] in lines[-1]  # the registry's own words, JSON-quoted

    failures = 3  # unauthenticated so far; the 10th failure from this address is rate-limited after
    for _ in range(10 - failures):
        assert whoami(server, UNKNOWN).status == 401
    assert server.yank(token, "test/echo", "1.0.0", True).status == 429
    assert "refused yank: reason=rate_limited status=429 token=unchecked client=127.0.0.1" in refusals(server)[-1]

    log = server.log.read_text()
    assert token not in log and other not in log and UNKNOWN not in log and UNKNOWN[4:] not in log
    assert "published test/echo 1.0.0" in log and f"token #{ids[token]} checked (whoami)" in log


def created(*args: str) -> tuple[int, str]:
    """`cspm-registry token create`: the id its note (stderr) names, and the token (stdout)."""
    result = registry_cli("token", "create", *args, "--publish")
    assert result.returncode == 0, result.stderr
    found = re.search(r"token #(\d+)", result.stderr)
    assert found, result.stderr
    return int(found.group(1)), result.stdout.strip()


def created_id(*args: str) -> int:
    return created(*args)[0]


def test_token_ids_are_never_reused_after_a_revoke_even_across_a_restart(tmp_path: Path, start: Start) -> None:
    data = tmp_path / "data"
    first = created_id("--data", str(data), "--namespace", "test")
    assert registry_cli("token", "revoke", "--data", str(data), str(first)).returncode == 0
    second, second_token = created("--data", str(data), "--namespace", "test")
    assert second > first

    running = start(data=data)
    assert whoami(running, second_token).json()["id"] == second
    assert registry_cli("token", "revoke", "--data", str(data), f"#{second}").returncode == 0  # while it serves
    running.stop()
    running = start(data=data)
    third, third_token = created("--data", str(data), "--namespace", "test")
    assert third > second
    assert whoami(running, second_token).status == 401 and whoami(running, third_token).json()["id"] == third
    assert [line["id"] for line in json_list(data)] == [third]


def test_a_schema_2_data_dir_keeps_the_ids_it_handed_out_retired(tmp_path: Path) -> None:
    """Upgraded in place: ids up to the highest a namespace remembers (`created_by`) are never handed out again."""
    data = tmp_path / "data"
    ids = [created_id("--data", str(data), "--namespace", ns) for ns in ("a", "b", "c")]
    for token_id in ids[1:]:
        assert registry_cli("token", "revoke", "--data", str(data), str(token_id)).returncode == 0
    db = sqlite3.connect(data / "registry.db", isolation_level=None)
    db.executescript("""  -- the tokens table as schema 2 had it: INTEGER PRIMARY KEY reuses the highest id
        BEGIN;
        CREATE TABLE tokens_v2 (id INTEGER PRIMARY KEY, hash TEXT NOT NULL UNIQUE, namespaces TEXT NOT NULL,
                                publish INTEGER NOT NULL, admin INTEGER NOT NULL, created REAL NOT NULL);
        INSERT INTO tokens_v2 SELECT * FROM tokens;
        DROP TABLE tokens;
        ALTER TABLE tokens_v2 RENAME TO tokens;
        DELETE FROM sqlite_sequence WHERE name = 'tokens';
        UPDATE meta SET value = '2' WHERE key = 'schema';
        COMMIT;
    """)
    db.close()
    assert created_id("--data", str(data), "--namespace", "a") == ids[2] + 1  # #3 created namespace c
    db = sqlite3.connect(data / "registry.db")
    assert db.execute("SELECT value FROM meta WHERE key = 'schema'").fetchone() == ("3",)
    assert [row[0] for row in db.execute("SELECT id FROM tokens ORDER BY id")] == [ids[0], ids[2] + 1]
    db.close()


def test_whoami_answers_who_a_token_is_and_counts_failures(server: Server) -> None:
    admin = server.token(admin=True)
    assert whoami(server, admin).json() == {"id": 1, "namespaces": [], "publish": True, "admin": True}
    read_only = server.token("test", publish=False)
    assert whoami(server, read_only).json() == {"id": 2, "namespaces": ["test"], "publish": False, "admin": False}
    answer = whoami(server, None)
    assert (answer.status, answer.error()[0], answer.headers["www-authenticate"]) == (401, "unauthorized", "Bearer")
