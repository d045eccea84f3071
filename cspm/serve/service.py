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
import queue
import threading
import time
from collections.abc import Callable
from dataclasses import dataclass, field
from typing import Any

from cspm import telemetry
from cspm.errors import Busy, CspmError, DeadlineExceeded
from cspm.formats.plan import Plan
from cspm.runtime.engine import RunFailed, RunResult, Runtime
from cspm.runtime.kv import KvFactory, open_default
from cspm.serve.alarms import Alarms

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
        self._workers = _Workers(pool_size)
        self._export = telemetry.enabled()  # read once: the environment does not change under a server
        self._lock = threading.Lock()
        self.stats = Stats()
        self.alarms = Alarms()  # deadlines, and the HTTP layer's disconnect watch
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
        deadline = _Deadline(self.alarms, self.timeout_s)  # one alarm for the wait and the run
        try:
            self.stats.waiting += 1
            try:
                await self._free.acquire()
            except asyncio.CancelledError:
                if deadline.passed():
                    self.stats.timeouts += 1
                    raise DeadlineExceeded(f"no instance became free within {self.timeout_s:g} s") from None
                raise
            finally:
                self.stats.waiting -= 1
            self.stats.in_use += 1
            try:
                return await self._run_on_instance(work, on_chunk, started, deadline)
            finally:
                self.stats.in_use -= 1
                self._free.release()
        finally:
            deadline.cancel()

    async def _run_on_instance(self, work: Callable[[Runtime], RunResult],
                               on_chunk: Callable[[str, str], None] | None, started: float,
                               deadline: _Deadline) -> RunResult:
        loop = asyncio.get_running_loop()
        runtime = self._take() or await self._load(loop, deadline)
        if on_chunk is not None:
            def forward(name: str, text: str) -> None:  # from the worker thread to the event loop
                loop.call_soon_threadsafe(on_chunk, name, text)

            runtime.on_chunk = forward
        # The worker resolves `answer` itself: no executor future chained to an asyncio one, no shield.
        # When this task is cancelled, `answer` is cancelled with it and the worker's late outcome is
        # dropped; `done` says when the thread has let go of the instance.
        answer: asyncio.Future[RunResult] = loop.create_future()
        done: list[bool] = []
        self._workers.submit(lambda: self._job(work, runtime, loop, answer, done))
        try:
            result = await answer
        except asyncio.CancelledError:
            timed_out = deadline.passed()
            if timed_out:
                self.stats.timeouts += 1
            else:
                self.stats.cancelled += 1  # the caller went away: stop its plug-ins, free the instance
            await self._stop(runtime, done)
            if timed_out:
                raise DeadlineExceeded(f"the request ran past its {self.timeout_s:g} s deadline and was stopped") \
                    from None
            raise
        except BaseException:
            self.stats.failed += 1
            self._give_back(runtime)  # a failed run renews the plug-in that failed (Runtime._call)
            raise
        self.stats.completed += 1
        self._record(time.monotonic() - started)
        self._give_back(runtime)
        return result

    async def _load(self, loop: asyncio.AbstractEventLoop, deadline: _Deadline) -> Runtime:
        """A new instance (in a worker thread: instantiating takes a while). If the request is cut off
        meanwhile, the instance still joins the pool when it is ready, so nothing is lost or leaked."""
        loading: asyncio.Future[Runtime] = loop.create_future()

        def job() -> None:
            try:
                runtime = self._new_instance()
            except BaseException as exc:
                _settle(loop, loading, None, exc)
            else:
                _settle(loop, loading, runtime, None)

        self._workers.submit(job)
        try:
            return await asyncio.shield(loading)
        except asyncio.CancelledError:
            loading.add_done_callback(self._adopt)
            if deadline.passed():
                self.stats.timeouts += 1
                raise DeadlineExceeded(f"the request ran past its {self.timeout_s:g} s deadline while its "
                                       f"instance was loading") from None
            raise

    def _adopt(self, loading: asyncio.Future[Runtime]) -> None:
        if not loading.cancelled() and loading.exception() is None:
            self._give_back(loading.result())

    def _job(self, work: Callable[[Runtime], RunResult], runtime: Runtime, loop: asyncio.AbstractEventLoop,
             answer: asyncio.Future[RunResult], done: list[bool]) -> None:
        """In a worker thread: run, export the trace (OTLP, when configured: off the event loop), hand
        the outcome to the event loop."""
        try:
            try:
                result = work(runtime)
            finally:
                done.append(True)  # a flag, polled by _stop: cheaper than an Event per request
        except RunFailed as exc:  # what ran before the failure is a trace too
            if self._export:
                telemetry.export(exc.trace)
            _settle(loop, answer, None, exc)
            return
        except BaseException as exc:
            _settle(loop, answer, None, exc)
            return
        if self._export:
            telemetry.export(result.trace)
        _settle(loop, answer, result, None)

    async def _stop(self, runtime: Runtime, done: list[bool]) -> None:
        """Cancel every plug-in of the instance until its thread returns, then replace the instance."""
        while not done:
            for node in list(runtime.nodes.values()):
                node.cancel()
            await asyncio.sleep(CANCEL_POLL_S)
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
        await asyncio.get_running_loop().run_in_executor(None, self._workers.shutdown)
        telemetry.flush()


def _settle(loop: asyncio.AbstractEventLoop, answer: asyncio.Future[Any], result: Any,
            error: BaseException | None) -> None:
    """Resolve `answer` on its loop, unless it was cancelled meanwhile (the caller went away)."""
    def resolve() -> None:
        if answer.done():
            return
        if error is not None:
            answer.set_exception(error)
        else:
            answer.set_result(result)

    with contextlib.suppress(RuntimeError):  # the loop is closed: nobody is waiting
        loop.call_soon_threadsafe(resolve)


class _Deadline:
    """A request's wall-clock limit: when it passes, the task waiting or running the request is
    cancelled, and `passed()` tells that cancellation from the caller's own (who went away)."""

    __slots__ = ("_alarm", "_alarms", "_fired", "_task")

    def __init__(self, alarms: Alarms, seconds: float) -> None:
        self._task = asyncio.current_task()
        self._fired = False
        self._alarms = alarms
        self._alarm = alarms.set(seconds, self._fire)

    def _fire(self) -> None:
        if self._task is not None and not self._task.done():
            self._fired = True
            self._task.cancel()

    def passed(self) -> bool:
        """The deadline cancelled the task: take that cancellation back (it is answered as a timeout)."""
        if self._fired and self._task is not None:
            self._fired = False
            return self._task.uncancel() == 0
        return False

    def cancel(self) -> None:
        self._alarms.clear(self._alarm)


class _Workers:
    """The threads requests run on: one queue of jobs, a thread started per job running at once, up
    to `count` (the pool size: no more jobs than instances run at once). What ThreadPoolExecutor does,
    without a Future, its lock and a condition per job, which a sub-millisecond request notices."""

    def __init__(self, count: int) -> None:
        self._count = count
        self._jobs: queue.SimpleQueue[Callable[[], None] | None] = queue.SimpleQueue()
        self._threads: list[threading.Thread] = []
        self._running = 0
        self._lock = threading.Lock()

    def submit(self, job: Callable[[], None]) -> None:
        with self._lock:
            self._running += 1
            if self._running > len(self._threads) and len(self._threads) < self._count:
                thread = threading.Thread(target=self._serve, name=f"cspm-serve-{len(self._threads)}", daemon=True)
                self._threads.append(thread)
                thread.start()
        self._jobs.put(job)

    def _serve(self) -> None:
        while (job := self._jobs.get()) is not None:
            try:
                job()
            finally:
                with self._lock:
                    self._running -= 1

    def shutdown(self) -> None:
        """Let the queued jobs finish, then end every thread."""
        with self._lock:
            threads = list(self._threads)
        for _ in threads:
            self._jobs.put(None)
        for thread in threads:
            thread.join()
