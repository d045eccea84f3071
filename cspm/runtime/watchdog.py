"""One thread that stops nested calls at their caller's deadline.

A nested call runs under Extism's own `timeout_ms`, which may end later than the call that made it;
the caller's deadline comes first, so the callee is cancelled then (and every CANCEL_AGAIN_S after,
since a cancel that lands before Extism has entered the call does nothing). Arming is a heap push:
a thread per call would cost more than the call (~60 µs against a ~70 µs routed hop).
"""

from __future__ import annotations

import heapq
import itertools
import threading
import time
from collections.abc import Callable

CANCEL_AGAIN_S = 0.05


class Armed:
    """One armed deadline; `disarm` when the call has ended (cheap: the heap forgets it lazily)."""

    __slots__ = ("cancel", "done")

    def __init__(self, cancel: Callable[[], None]) -> None:
        self.cancel = cancel
        self.done = False

    def disarm(self) -> None:
        self.done = True


class Watchdog:
    def __init__(self) -> None:
        self._cond = threading.Condition()
        self._heap: list[tuple[float, int, Armed]] = []
        self._order = itertools.count()
        self._thread: threading.Thread | None = None
        self._wake_at = float("inf")  # when the thread wakes next: an arm later than that need not wake it

    def arm(self, deadline: float, cancel: Callable[[], None]) -> Armed:
        armed = Armed(cancel)
        with self._cond:
            while self._heap and self._heap[0][2].done:  # calls that ended: forgotten here, not at their deadline
                heapq.heappop(self._heap)
            heapq.heappush(self._heap, (deadline, next(self._order), armed))
            if self._thread is None:
                self._thread = threading.Thread(target=self._run, name="cspm-watchdog", daemon=True)
                self._thread.start()
            elif deadline < self._wake_at:
                self._cond.notify()  # earlier than the thread's next wake-up (a context switch a call otherwise)
        return armed

    def _run(self) -> None:
        with self._cond:
            while True:
                while self._heap and self._heap[0][2].done:
                    heapq.heappop(self._heap)
                if not self._heap:
                    self._wake_at = float("inf")
                    self._cond.wait()
                    continue
                deadline, _, armed = self._heap[0]
                delay = deadline - time.monotonic()
                if delay > 0:
                    self._wake_at = deadline
                    self._cond.wait(delay)
                    continue
                heapq.heappop(self._heap)
                try:
                    armed.cancel()
                except Exception:  # the instance was closed meanwhile: nothing left to stop
                    armed.done = True
                    continue
                heapq.heappush(self._heap, (time.monotonic() + CANCEL_AGAIN_S, next(self._order), armed))


WATCHDOG = Watchdog()
