"""One app served to many callers: a bounded pool of loaded instances, a bounded queue, a deadline.

A `Runtime` runs one request at a time (its plug-ins are single-threaded Wasm instances), so the
service keeps up to `pool_size` of them, each built from the same run plan and loaded on first
need; compiled modules are shared by the process, so a second instance costs an instantiation,
not a compilation. A request takes an idle instance or waits in a queue of at most `queue_depth`;
past that it is refused at once with `Busy` (the HTTP layer answers 429 with `Retry-After`) rather
than piling up memory. Each request has a wall-clock deadline; when it passes, or when the caller
goes away (its task is cancelled), the instance's plug-ins are cancelled through Extism's cancel
handles, the worker thread ends, and the instance is replaced by a fresh one before it serves again,
so a request that was cut off leaves nothing behind (no vars, no guest memory, no instance leak).

The service is the seam the endpoints share: the OpenAI-compatible routes, MCP and any later
front end call `run`/`call` and never touch a Runtime themselves.
"""

from __future__ import annotations

import asyncio
import contextlib
import threading
import time
from collections.abc import Callable
from concurrent.futures import ThreadPoolExecutor
from dataclasses import dataclass, field
from typing import Any

from cspm import telemetry
from cspm.errors import Busy, CspmError, DeadlineExceeded
from cspm.formats.plan import Plan
from cspm.runtime.engine import RunFailed, RunResult, Runtime
from cspm.runtime.kv import KvFactory, open_default

CANCEL_POLL_S = 0.05  # how often a cut-off request's plug-ins are told to stop until its thread ends


@dataclass
class Stats:
    """What `/metrics` reports of the pool; counters only grow."""

    requests: int = 0
    completed: int = 0
    failed: int = 0
    refused: int = 0
    timeouts: int = 0
    cancelled: int = 0
    waiting: int = 0
    in_use: int = 0
    loaded: int = 0
    latencies: list[float] = field(default_factory=list)  # the last MAX_LATENCIES request times, seconds


MAX_LATENCIES = 4096


class Service:
    """A pool of instances of one planned app. Use from one asyncio event loop."""

    def __init__(self, plan: Plan, *, pool_size: int = 4, queue_depth: int = 64, timeout_s: float = 120.0,
                 kv_factory: KvFactory = open_default) -> None:
        if pool_size < 1 or queue_depth < 0 or timeout_s <= 0:
            raise CspmError("the pool needs at least one instance, a queue depth of 0 or more and a positive "
                            "timeout")
        self.plan = plan
        self.pool_size, self.queue_depth, self.timeout_s = pool_size, queue_depth, timeout_s
        self._kv_factory = kv_factory
        self._idle: list[Runtime] = []
        self._free = asyncio.Semaphore(pool_size)
        self._executor = ThreadPoolExecutor(max_workers=pool_size, thread_name_prefix="cspm-serve")
        self._lock = threading.Lock()
        self.stats = Stats()
        self._closed = False

    @property
    def closing(self) -> bool:
        """`aclose` has begun: requests are refused from now on."""
        return self._closed

    # ---- the pool --------------------------------------------------------------------------------

    def _new_instance(self) -> Runtime:
        runtime = Runtime(self.plan, kv_factory=self._kv_factory)
        with self._lock:
            self.stats.loaded += 1
        return runtime

    def _take(self) -> Runtime | None:
        with self._lock:
            return self._idle.pop() if self._idle else None

    def _give_back(self, runtime: Runtime) -> None:
        runtime.on_chunk = None
        with self._lock:
            if self._closed:
                runtime.close()
                return
            self._idle.append(runtime)

    def _discard(self, runtime: Runtime) -> None:
        runtime.close()
        with self._lock:
            self.stats.loaded -= 1

    # ---- requests --------------------------------------------------------------------------------

    async def run(self, text: str, *, component: str | None = None, session: str | None = None,
                  on_chunk: Callable[[str, str], None] | None = None) -> RunResult:
        """Run `text` through `component` (default: the entry) in `session` (default: a new one), as
        `cspm run` does. `on_chunk(component, text)` is called on the event loop for each chunk a
        plug-in emits. Raises Busy, DeadlineExceeded, or the run's own CspmError."""
        return await self._submit(lambda rt: rt.run(text, component, session=session), on_chunk)

    async def call(self, component: str, payload: dict[str, Any], *, session: str | None = None,
                   on_chunk: Callable[[str, str], None] | None = None) -> RunResult:
        """Send a whole request message (e.g. a tool's `{"arguments": {...}}`) to `component`."""
        return await self._submit(lambda rt: rt.run_message(component, payload, session=session), on_chunk)

    async def _submit(self, work: Callable[[Runtime], RunResult],
                      on_chunk: Callable[[str, str], None] | None) -> RunResult:
        if self._closed:
            raise CspmError("the service is shutting down")
        self.stats.requests += 1
        if self._free.locked() and self.stats.waiting >= self.queue_depth:
            self.stats.refused += 1
            raise Busy(f"all {self.pool_size} instances are busy and {self.stats.waiting} requests are waiting",
                       retry_after=max(1.0, self._typical_latency()))
        started = time.monotonic()
        self.stats.waiting += 1
        try:
            try:
                if self._free.locked():
                    async with asyncio.timeout(self.timeout_s):
                        await self._free.acquire()
                else:  # an instance is free: no timer to arm (a fifth of the service's own cost per request)
                    await self._free.acquire()
            except TimeoutError:
                self.stats.timeouts += 1
                raise DeadlineExceeded(f"no instance became free within {self.timeout_s:g} s") from None
        finally:
            self.stats.waiting -= 1
        self.stats.in_use += 1
        try:
            return await self._run_on_instance(work, on_chunk, started)
        finally:
            self.stats.in_use -= 1
            self._free.release()

    async def _run_on_instance(self, work: Callable[[Runtime], RunResult],
                               on_chunk: Callable[[str, str], None] | None, started: float) -> RunResult:
        loop = asyncio.get_running_loop()
        runtime = self._take()
        if runtime is None:
            runtime = await loop.run_in_executor(self._executor, self._new_instance)
        if on_chunk is not None:
            def forward(name: str, text: str) -> None:  # from the worker thread to the event loop
                loop.call_soon_threadsafe(on_chunk, name, text)

            runtime.on_chunk = forward
        done = threading.Event()

        def job() -> RunResult:
            try:
                result = work(runtime)
            except RunFailed as exc:  # what ran before the failure is a trace too
                telemetry.export(exc.trace)
                raise
            finally:
                done.set()
            telemetry.export(result.trace)  # OTLP, when configured: off the event loop
            return result

        future = loop.run_in_executor(self._executor, job)
        remaining = max(0.001, self.timeout_s - (time.monotonic() - started))
        try:
            async with asyncio.timeout(remaining):
                result = await asyncio.shield(future)
        except TimeoutError:
            self.stats.timeouts += 1
            await self._stop(runtime, future, done)
            raise DeadlineExceeded(f"the request ran past its {self.timeout_s:g} s deadline and was stopped") \
                from None
        except asyncio.CancelledError:  # the caller went away: stop its plug-ins, free the instance
            self.stats.cancelled += 1
            await self._stop(runtime, future, done)
            raise
        except BaseException:
            self.stats.failed += 1
            self._give_back(runtime)  # a failed run renews the plug-in that failed (Runtime._call)
            raise
        self.stats.completed += 1
        self._record(time.monotonic() - started)
        self._give_back(runtime)
        return result

    async def _stop(self, runtime: Runtime, future: asyncio.Future[RunResult], done: threading.Event) -> None:
        """Cancel every plug-in of the instance until its thread returns, then replace the instance."""
        while not done.is_set():
            for node in list(runtime.nodes.values()):
                node.plugin.cancel_handle().cancel()
            await asyncio.sleep(CANCEL_POLL_S)
        with contextlib.suppress(BaseException):  # the cut-off run's own error is not the caller's
            await future
        self._discard(runtime)

    def _record(self, seconds: float) -> None:
        latencies = self.stats.latencies
        latencies.append(seconds)
        if len(latencies) > MAX_LATENCIES:
            del latencies[: len(latencies) - MAX_LATENCIES]

    def _typical_latency(self) -> float:
        recent = sorted(self.stats.latencies[-256:])
        return recent[len(recent) // 2] if recent else 1.0

    async def aclose(self) -> None:
        """Stop taking requests and release every instance (waits for running ones)."""
        self._closed = True
        for _ in range(self.pool_size):
            await self._free.acquire()
        with self._lock:
            idle, self._idle = self._idle, []
        for runtime in idle:
            runtime.close()
        self._executor.shutdown(wait=True)
        telemetry.flush()
