"""Capture plug-in log lines and hand each to the plug-in that wrote it.

Extism logs process-wide and the first logger configured wins, so one collector per process parses
the buffered lines and routes them by the plug-in id Extism stamps on each.
"""

from __future__ import annotations

import re
from collections.abc import Callable
from dataclasses import dataclass

import extism

MAX_LINE_CHARS = 4000
_LINE = re.compile(r'^\S+\s+(?P<level>[A-Z]+)\s+(?P<target>\S+): (?P<msg>.*) plugin="(?P<id>[0-9a-f-]{36})"\s*$',
                   re.DOTALL)


@dataclass
class LogLine:
    plugin: str
    level: str
    message: str


Sink = Callable[[str, str], None]  # (level, message)


class LogCollector:
    _instance: LogCollector | None = None

    def __init__(self) -> None:
        self._pending: list[str] = []
        self._logger = extism.set_log_custom(self._pending.append, "info")
        self._sinks: dict[str, Sink] = {}

    @classmethod
    def get(cls) -> LogCollector:
        if cls._instance is None:
            cls._instance = LogCollector()
        return cls._instance

    def register(self, plugin_id: str, sink: Sink) -> None:
        self._sinks[plugin_id] = sink

    def unregister(self, plugin_id: str) -> None:
        self._sinks.pop(plugin_id, None)

    def drain(self) -> None:
        self._logger.drain()
        if not self._pending:
            return
        pending, self._pending[:] = list(self._pending), []
        for raw in pending:
            match = _LINE.match(raw)
            sink = self._sinks.get(match["id"]) if match else None
            if sink is not None:
                sink(match["level"].lower(), match["msg"][:MAX_LINE_CHARS])
