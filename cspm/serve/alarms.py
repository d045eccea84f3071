"""Coarse alarms for many short requests: one periodic check instead of a timer per request.

Every request has a deadline, and one still running after a short while starts watching for its
client's disconnect. With a loop timer each, a request that takes a fraction of a millisecond pays
for two timer handles pushed on and cancelled from the loop's heap, a noticeable share of its cost.
Here an alarm is a dict entry; while any is set, one task wakes every `resolution` seconds and fires
those that are due, so an alarm fires up to `resolution` late, which is fine for limits counted in
seconds and for noticing a client that left.
"""

from __future__ import annotations

import asyncio
import itertools
from collections.abc import Callable


class Alarms:
    """Use from one event loop."""

    def __init__(self, resolution: float = 0.05) -> None:
        self.resolution = resolution
        self._due: dict[int, tuple[float, Callable[[], None]]] = {}
        self._ids = itertools.count()
        self._ticker: asyncio.Task[None] | None = None

    def set(self, delay: float, callback: Callable[[], None]) -> int:
        """Call `callback` (on the loop) about `delay` seconds from now; the id is for `clear`."""
        loop = asyncio.get_running_loop()
        alarm = next(self._ids)
        self._due[alarm] = (loop.time() + delay, callback)
        if self._ticker is None:
            self._ticker = loop.create_task(self._tick())
        return alarm

    def clear(self, alarm: int) -> None:
        self._due.pop(alarm, None)

    async def _tick(self) -> None:
        loop = asyncio.get_running_loop()
        try:
            while self._due:
                await asyncio.sleep(self.resolution)
                now = loop.time()
                for alarm in [a for a, (when, _) in self._due.items() if when <= now]:
                    entry = self._due.pop(alarm, None)
                    if entry is not None:
                        entry[1]()
        finally:
            self._ticker = None
