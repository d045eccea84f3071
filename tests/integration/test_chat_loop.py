"""`cspm run`'s chat loop (issue 16), driven through a pseudo-terminal as a person would: line editing
and history (readline), Ctrl-C that stops an answer but not the session, JSON Lines with --json; and
`cspm run` with no app (./app.yaml) and the "compiling N modules…" notice of a cold start."""

from __future__ import annotations

import fcntl
import json
import os
import pty
import re
import select
import shutil
import signal
import struct
import subprocess
import sys
import termios
import time
from pathlib import Path

import pytest

from cspm.runtime.kv import SqliteKvStore
from tests.conftest import ROOT, conformance_wasm
from tests.integration.test_cli import cspm
from tests.integration.test_streaming import chat_app

HELLO = ROOT / "examples" / "hello-conformance.yaml"
ANSI = re.compile(r"\x1b\[[0-9;?]*[A-Za-z]|\x1b[=>]")


@pytest.fixture(scope="module", autouse=True)
def built() -> None:
    for lang in ("rust", "c", "zig"):
        conformance_wasm(lang)


class Terminal:
    """`cspm ARGS` in its own session with a pseudo-terminal as its controlling terminal, so Ctrl-C
    typed into it is a SIGINT to cspm, as at a real terminal."""

    def __init__(self, *args: str, cwd: Path = ROOT) -> None:
        leader, follower = pty.openpty()
        fcntl.ioctl(follower, termios.TIOCSWINSZ, struct.pack("HHHH", 50, 200, 0, 0))  # no wrapping

        def controlling() -> None:
            fcntl.ioctl(0, termios.TIOCSCTTY, 0)
            # as a terminal's shell starts it: a runner started in the background (`cmd &` in a script)
            # passes SIGINT on ignored, and Python then never turns it into KeyboardInterrupt
            signal.signal(signal.SIGINT, signal.SIG_DFL)

        self.process = subprocess.Popen([sys.executable, "-m", "cspm.cli.main", *args], stdin=follower,
                                        stdout=follower, stderr=follower, cwd=cwd, env=dict(os.environ),
                                        start_new_session=True, preexec_fn=controlling)
        os.close(follower)
        self.fd = leader
        self.seen = ""
        self.read_to = 0  # `expect` looks for its text after what the previous one matched

    def _read(self, timeout: float) -> bool:
        ready, _, _ = select.select([self.fd], [], [], timeout)
        if not ready:
            return True
        try:
            chunk = os.read(self.fd, 4096)
        except OSError:
            return False
        if not chunk:
            return False
        self.seen += ANSI.sub("", chunk.decode(errors="replace")).replace("\r", "")
        return True

    def expect(self, text: str, timeout: float = 60) -> str:
        """Everything up to `text` (which must arrive within `timeout` seconds)."""
        deadline = time.monotonic() + timeout
        while text not in self.seen[self.read_to:]:
            if time.monotonic() > deadline or not self._read(0.1):
                raise AssertionError(f"{text!r} did not come; the screen:\n{self.seen}")
        end = self.seen.index(text, self.read_to) + len(text)
        before, self.read_to = self.seen[self.read_to:end], end
        return before

    def type(self, keys: str) -> None:
        """Typed as a person would, not at once after a prompt: a signal that comes before readline
        waits for input is only seen at the next key (CPython's readline has no wake-up pipe)."""
        time.sleep(0.3)
        os.write(self.fd, keys.encode())

    def wait(self, timeout: float = 60) -> int:
        deadline = time.monotonic() + timeout
        while self.process.poll() is None and time.monotonic() < deadline:
            self._read(0.1)
        while self._read(0.05) and self.process.poll() is not None and select.select([self.fd], [], [], 0)[0]:
            pass
        code = self.process.wait(timeout=5)
        os.close(self.fd)
        return code


UP = "\x1b[A"
CTRL_C, CTRL_D = "\x03", "\x04"


def test_lines_are_edited_and_the_history_kept_across_sessions(isolated_data: Path) -> None:
    """Up-arrow recalls the line before (readline), within a session and in the next one, from a
    history file in the user data dir that only its owner can read."""
    term = Terminal("run", str(HELLO))
    term.expect("You > ")
    term.type("first line\r")
    assert "echo_agent > first line" in term.expect("You > ")
    term.type("secnd\x7f\x7fond line\r")  # backspace edits the line
    assert "echo_agent > second line" in term.expect("You > ")
    term.type(UP + UP + "\r")
    assert "echo_agent > first line" in term.expect("You > ")
    term.type(CTRL_D)
    assert term.wait() == 0
    history = isolated_data / "chat_history"
    assert "first line" in history.read_text() and history.stat().st_mode & 0o077 == 0

    again = Terminal("run", str(HELLO))
    again.expect("You > ")
    again.type(UP + "\r")
    assert "echo_agent > first line" in again.expect("You > ")
    again.type("exit\r")
    assert again.wait() == 0


def test_ctrl_c_at_the_prompt_twice_ends_the_session() -> None:
    term = Terminal("run", str(HELLO))
    term.expect("You > ")
    term.type(CTRL_C)
    assert "Ctrl-C again or Ctrl-D" in term.expect("You > ")
    term.type("still here\r")
    assert "echo_agent > still here" in term.expect("You > ")
    term.type(CTRL_C)
    term.expect("You > ")
    term.type(CTRL_C)
    assert term.wait() == 0, term.seen
    assert "interrupted" not in term.seen and "Traceback" not in term.seen


def test_ctrl_c_cancels_the_answer_being_generated_not_the_session(tmp_path: Path, isolated_data: Path) -> None:
    """A long answer (llm-local, streamed) is stopped at Ctrl-C; the next prompt comes at once, the
    session goes on, and the cancelled turn is not remembered."""
    app = chat_app(tmp_path, slow=True, max_tokens=1500)  # ~15 s if it ran to the end
    term = Terminal("run", str(app), "--session", "long")
    term.expect("You > ")
    term.type("tell me a long story\r")
    term.expect("agent > ")
    term._read(5)  # the first chunks
    started = time.monotonic()
    while not term.seen[term.read_to:].strip() and time.monotonic() - started < 30:
        term._read(0.1)
    assert term.seen[term.read_to:].strip(), "no chunk arrived"
    term.type(CTRL_C)
    term.expect("cancelled", timeout=5)
    term.expect("You > ", timeout=5)
    assert time.monotonic() - started < 10
    term.type(CTRL_D)
    assert term.wait() == 0, term.seen
    assert "interrupted" not in term.seen and "error" not in term.seen.lower(), term.seen
    memory = SqliteKvStore(isolated_data / "kv.sqlite3")
    assert memory.get(("chat", "agent", "long"), "history") in (None, [])


def test_json_in_the_loop_prints_one_object_per_line() -> None:
    result = cspm("run", str(HELLO), "--json", stdin="one\ntwo\nexit\n")
    assert result.returncode == 0, result.stderr
    lines = result.stdout.splitlines()
    assert [json.loads(line)["output"] for line in lines] == ["one", "two"]
    assert len({json.loads(line)["session"] for line in lines}) == 1


def test_run_without_an_app_runs_app_yaml_here(tmp_path: Path) -> None:
    shutil.copy(HELLO, tmp_path / "app.yaml")
    text = (tmp_path / "app.yaml").read_text()
    (tmp_path / "app.yaml").write_text(text.replace("plugin_name: ", f"plugin_name: {ROOT / 'examples'}/"))
    result = cspm("run", "-i", "hi", "--json", cwd=tmp_path)
    assert result.returncode == 0, result.stderr
    assert json.loads(result.stdout)["output"] == "hi"
    missing = cspm("run", "-i", "hi", cwd=tmp_path / "..")
    assert missing.returncode == 2 and "app.yaml" in missing.stderr, missing.stderr


def test_a_cold_start_says_it_compiles(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    """At a terminal, once per module and cache: the second run does not say so, nor does a script's
    stderr or --json."""
    monkeypatch.setenv("CSPM_CACHE_DIR", str(tmp_path / "cache"))
    first = Terminal("run", str(HELLO), "-i", "hi")
    assert first.wait() == 0
    assert "compiling 3 modules… (once: later runs start faster)" in first.seen, first.seen
    second = Terminal("run", str(HELLO), "-i", "hi")
    assert second.wait() == 0 and "hi" in second.seen and "compiling" not in second.seen, second.seen
    for cold in ("other", "third"):
        monkeypatch.setenv("CSPM_CACHE_DIR", str(tmp_path / cold))
        piped = cspm("run", str(HELLO), "-i", "hi", *(["--json"] if cold == "third" else []))
        assert piped.returncode == 0 and "compiling" not in piped.stdout + piped.stderr
