"""Capture plug-in log lines and hand each to the plug-in that wrote it, within fixed bounds.

Extism logs process-wide and the first logger configured wins, so one collector per process parses
the buffered lines and routes them by the plug-in id Extism stamps on each.

Extism keeps every line in its own buffer until it is drained, however much a plug-in writes, so the
buffer is drained by a background thread every PUMP_INTERVAL_S while a request runs (`collecting`):
what piles up there is bounded by what a plug-in can write in that time, not by what it writes in
all. Each line is copied out cut to MAX_LINE_CHARS, and what waits to be routed is bounded per
plug-in (MAX_LOG_LINES lines, MAX_LOG_BYTES bytes); the rest is counted and reported as dropped.
"""

from __future__ import annotations

import re
import threading
import time
from collections.abc import Callable, Iterator
from contextlib import contextmanager
from dataclasses import dataclass, field
from typing import Any

import extism
from extism_sys import ffi, lib

MAX_LINE_CHARS = 4000  # of one line's message; longer ones are cut and end in "…"
MAX_LOG_LINES = 2000  # lines kept per plug-in (the runtime's bound; also what may wait to be routed)
MAX_LOG_BYTES = 1024 * 1024  # UTF-8 bytes of messages kept per plug-in, likewise
PUMP_INTERVAL_S = 0.01
DROPPED = "dropped"  # the level of a sink call whose message is a count of lines dropped before routing

_HEAD = 128 + 4 * MAX_LINE_CHARS  # bytes of a raw line read for its prefix and message (UTF-8: <= 4 a char)
_TAIL = 96  # bytes read from its end, for the plug-in id
_PREFIX = re.compile(r"^\S+\s+(?P<level>[A-Z]+)\s+\S+: ")
_SUFFIX = re.compile(r' plugin="(?P<id>[0-9a-f-]{36})"\s*$')


@dataclass
class LogLine:
    plugin: str
    level: str
    message: str


Sink = Callable[[str, str], None]  # (level, message), or (DROPPED, "<count>")


def clip(message: str) -> str:
    """A message cut to MAX_LINE_CHARS, so no single line can be large."""
    return message if len(message) <= MAX_LINE_CHARS else message[:MAX_LINE_CHARS] + "…"


def size(message: str) -> int:
    """What a message counts against MAX_LOG_BYTES: its UTF-8 length (lone surrogates included)."""
    return len(message.encode("utf-8", "surrogatepass"))


@dataclass
class _Waiting:
    """One plug-in's lines between two drains."""

    lines: list[tuple[str, str]] = field(default_factory=list)
    bytes: int = 0
    dropped: int = 0


class LogCollector:
    _instance: LogCollector | None = None

    def __init__(self) -> None:
        # set_log_custom configures Extism's buffer (once per process); its own drain would copy whole
        # lines, so lines are read here with a callback that copies only a bounded head and tail
        self._logger = extism.set_log_custom(lambda _line: None, "info")
        self._read = ffi.callback("void(char*, ExtismSize)", self._take)
        self._sinks: dict[str, Sink] = {}
        self._waiting: dict[str, _Waiting] = {}
        self._lock = threading.Lock()
        self._pumps = 0
        self._wake = threading.Event()  # set to wake the pump thread, which parks when no request runs
        self._parked = False
        self._thread: threading.Thread | None = None

    @classmethod
    def get(cls) -> LogCollector:
        if cls._instance is None:
            cls._instance = LogCollector()
        return cls._instance

    def register(self, plugin_id: str, sink: Sink) -> None:
        self._sinks[plugin_id] = sink

    def unregister(self, plugin_id: str) -> None:
        self._sinks.pop(plugin_id, None)
        with self._lock:
            self._waiting.pop(plugin_id, None)

    def drain(self) -> None:
        """Route every line written so far to its plug-in's sink (on the calling thread)."""
        self._pull()
        if not self._waiting:  # the common case, seen without the lock: _pull has returned, so every line
            return  # written before this drain is in _waiting already (Extism hands lines over under its lock)
        with self._lock:
            waiting, self._waiting = self._waiting, {}
        for plugin_id, got in waiting.items():
            sink = self._sinks.get(plugin_id)
            if sink is None:
                continue
            for level, message in got.lines:
                sink(level, message)
            if got.dropped:
                sink(DROPPED, str(got.dropped))

    @contextmanager
    def collecting(self) -> Iterator[None]:
        """While the block runs, move Extism's buffered lines here every PUMP_INTERVAL_S (bounded).

        One thread for the process, started once and parked while no request runs: starting and
        joining a thread per request cost more than a routed call. A request only counts itself in;
        the parked pump is woken by the first request after it parked, not by every request (setting
        and clearing an Event per request cost a short request a third of its time)."""
        with self._lock:
            self._pumps += 1
            if self._parked:
                self._parked = False
                self._wake.set()
            if self._thread is None:
                self._thread = threading.Thread(target=self._pump, name="cspm-log-pump", daemon=True)
                self._thread.start()
        try:
            yield
        finally:
            with self._lock:
                self._pumps -= 1

    def _pump(self) -> None:
        while True:
            with self._lock:
                park = self._pumps == 0
                if park:
                    self._parked = True
                    self._wake.clear()
            if park:
                self._wake.wait()
            self._pull()
            time.sleep(PUMP_INTERVAL_S)

    def _pull(self) -> None:
        # Extism holds its buffer's lock while it hands lines over: a plug-in logging meanwhile waits
        lib.extism_log_drain(self._read)

    def _take(self, pointer: Any, length: int) -> None:
        """One raw line from Extism: only its head and tail are copied, then it waits, bounded."""
        raw = ffi.buffer(pointer, length)
        whole = length <= _HEAD + _TAIL
        if whole:
            head = tail = raw[:].decode("utf-8", "replace")
        else:
            head, tail = raw[:_HEAD].decode("utf-8", "replace"), raw[length - _TAIL:].decode("utf-8", "replace")
        prefix, suffix = _PREFIX.match(head), _SUFFIX.search(tail)
        if prefix is None or suffix is None or suffix["id"] not in self._sinks:
            return
        # a long line's head holds more than MAX_LINE_CHARS of its message: clip() cuts it
        message = clip(head[prefix.end():suffix.start()] if whole else head[prefix.end():])
        cost = size(message)
        with self._lock:
            got = self._waiting.setdefault(suffix["id"], _Waiting())
            if len(got.lines) >= MAX_LOG_LINES or got.bytes + cost > MAX_LOG_BYTES:
                got.dropped += 1
                return
            got.lines.append((prefix["level"].lower(), message))
            got.bytes += cost
