"""Output that needs no rich: untrusted text made safe, JSON documents, and an answer's plain text.

Split from cspm.cli.output so that a warm `cspm run --input` (cspm.cli.fast_run) prints without
importing rich (~15 ms). `answer` writes exactly what rich's `Console.print(text, markup=False)` of
cspm.cli.output.out writes, and hands rich the text whenever rich would change it.
"""

from __future__ import annotations

import json
import re
import sys
from typing import Any

# C0 controls but tab and newline, DEL, C1 controls (0x9b is a one-byte CSI to some terminals), and
# the bidirectional overrides that make text read differently from what it is ("Trojan Source").
_CONTROL = re.compile("[\x00-\x08\x0b-\x1f\x7f-\x9f\u061c\u200e\u200f\u202a-\u202e\u2066-\u2069]")

_JSON_RAW = re.compile("[\x7f-\x9f\u061c\u200e\u200f\u202a-\u202e\u2066-\u2069]")


def _visible(match: re.Match[str]) -> str:
    code = ord(match.group(0))
    return f"\\x{code:02x}" if code < 0x100 else f"\\u{code:04x}"


def plain(text: str) -> str:
    """Untrusted text (a plug-in's answer or log, a registry's words) made safe for a terminal: an
    escape sequence could write the clipboard (OSC 52), retitle or clear the screen, or hide text, so
    every control character is shown as `\\xNN` instead of acted on. `--json` output stays exact."""
    if "\r\n" in text:
        text = text.replace("\r\n", "\n")
    return _CONTROL.sub(_visible, text)


def print_json(data: Any) -> None:
    """The document exactly; json.dumps leaves DEL, C1 and bidi controls raw, so they are written as
    `\\uNNNN` escapes (the same JSON value) rather than reach a terminal."""
    text = json.dumps(data, ensure_ascii=False, indent=2)
    sys.stdout.write(_JSON_RAW.sub(lambda m: f"\\u{ord(m.group(0)):04x}", text) + "\n")
    sys.stdout.flush()


def _unchanged_by_rich(text: str) -> bool:
    """Text rich prints as it is (unstyled, soft-wrapped): rich expands tabs and replaces `:emoji:`
    codes, and strips the control codes that `plain` has already made visible. Anything else is
    written as is; ASCII is the common answer and is checked first."""
    return "\t" not in text and ":" not in text and not _CONTROL.search(text)


def _utf8(stream: Any) -> bool:
    """A stream that can take any text: otherwise rich writes it, and words the UnicodeEncodeError."""
    return str(getattr(stream, "encoding", "") or "").lower().replace("_", "-") in ("utf-8", "utf8")


def answer(text: str, end: str = "\n") -> None:
    """`plain(text)` on stdout, as cspm.cli.output.out.print(plain(text), end=end, markup=False)."""
    shown = plain(text)
    if _unchanged_by_rich(shown) and _unchanged_by_rich(end) and (shown.isascii() or _utf8(sys.stdout)):
        sys.stdout.write(shown + end)
        sys.stdout.flush()
        return
    from cspm.cli.output import out

    out.print(shown, end=end, markup=False)
