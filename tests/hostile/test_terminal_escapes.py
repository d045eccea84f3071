"""A plug-in's answer, its log lines and its trace reach a terminal as text: escape sequences (OSC 52
clipboard writes, title changes, screen clears, C1 CSI) are shown, never sent raw; `--json` keeps the
exact value, written with JSON escapes."""

from __future__ import annotations

import json
from pathlib import Path

from tests.integration.test_cli import cspm

ANSWER = "A\x1b]52;c;cHduZWQ=\x07B\x1b[2JC\x9b31mD"
RAW = ("\x1b", "\x07", "\x9b")


def _app(tmp_path: Path, wat_modules: dict[str, bytes]) -> Path:
    (tmp_path / "escapes.wasm").write_bytes(wat_modules["escapes"])
    app = tmp_path / "app.yaml"
    app.write_text("entry: t\ntools:\n  - {name: t, description: d, plugin_name: escapes.wasm}\n")
    return app


def test_answer_log_and_trace_show_escapes_as_text(tmp_path: Path, wat_modules: dict[str, bytes]) -> None:
    result = cspm("run", str(_app(tmp_path, wat_modules)), "-i", "x", "-v", "--trace")
    assert result.returncode == 0, result.stderr
    for stream in (result.stdout, result.stderr):
        assert not any(ch in stream for ch in RAW), repr(stream)
    assert result.stdout.strip() == r"A\x1b]52;c;cHduZWQ=\x07B\x1b[2JC\x9b31mD"
    assert r"[t] info: log \x1b]0;pwned\x07 title \x1b[2J" in result.stderr
    assert r"\u001b]52;c;cHduZWQ=\u0007B" in result.stderr  # the trace quotes the step's output


def test_json_keeps_the_exact_answer_with_json_escapes(tmp_path: Path, wat_modules: dict[str, bytes]) -> None:
    result = cspm("run", str(_app(tmp_path, wat_modules)), "-i", "x", "--json", "--trace")
    assert result.returncode == 0, result.stderr
    assert not any(ch in result.stdout for ch in RAW), repr(result.stdout)
    data = json.loads(result.stdout)
    assert data["output"] == ANSWER and data["trace"]["output"] == ANSWER
