"""The HTTP face of `cspm serve` (Starlette): OpenAI's chat completions and models, health, metrics,
and MCP at `/mcp` when it is given, all in front of one `Service` (docs/serve.md).

A request's run is a task of its own, raced against the client's disconnect: when the client goes
away first, the task is cancelled and the Service stops the instance's plug-ins and replaces it, so
an abandoned request never keeps an instance busy. A streamed answer waits for the first chunk (or
the end) before it commits to `200 text/event-stream`, so a refusal (429) or an early failure is
still answered with its status.
"""

from __future__ import annotations

import asyncio
import contextlib
import logging
import math
import time
from collections import deque
from collections.abc import AsyncIterator, Awaitable, Callable, Coroutine
from typing import Any

from starlette.applications import Starlette
from starlette.exceptions import HTTPException
from starlette.middleware import Middleware
from starlette.middleware.cors import CORSMiddleware
from starlette.requests import Request
from starlette.responses import JSONResponse, Response, StreamingResponse
from starlette.routing import Route
from starlette.types import ASGIApp, Message, Receive, Scope, Send

from cspm.errors import Busy, CspmError, DeadlineExceeded, KvUnavailable
from cspm.runtime.engine import RunResult
from cspm.serve import openai_api as api
from cspm.serve.alarms import Alarms
from cspm.serve.auth import Keys
from cspm.serve.metrics import CONTENT_TYPE, Metrics
from cspm.serve.service import Service

log = logging.getLogger("cspm.serve")
OPEN_PATHS = frozenset({"/healthz"})  # answered without a key: a load balancer's probe has none
MAX_PENDING_CHARS = 8 * 1024 * 1024  # streamed text waiting for a slow client before the request is dropped
WATCH_AFTER_S = 0.05  # a request still running this long starts watching for its client's disconnect
CLIENT_GONE = 499  # nginx's "client closed request", counted in the metrics only


class ClientGone(Exception):
    """The client disconnected before its answer was ready."""


def build(service: Service, *, keys: Keys, cors_origins: tuple[str, ...] = (),
          mcp_app: ASGIApp | None = None) -> Starlette:
    """The ASGI app serving `service`; `mcp_app` answers at /mcp, and its `lifespan()` (when it has one)
    runs with ours."""
    metrics = Metrics()
    plan = service.plan
    name = plan.app_name
    started = int(time.time())

    async def chat(request: Request) -> Response:
        return await _answer(request, api.parse_chat,
                             lambda result: api.completion(api.completion_id(), name, result),
                             lambda chat: api.ChatStream(name, chat.include_usage))

    async def responses(request: Request) -> Response:
        def whole(result: RunResult) -> dict[str, Any]:
            return api.response(api.response_id(), name, int(time.time()), api.response_status(result),
                                result.output, result)

        return await _answer(request, api.parse_responses, whole, lambda _chat: api.ResponsesStream(name))

    async def _answer(request: Request, parse: Callable[[bytes, str, str | None], api.ChatRequest],
                      whole: Callable[[RunResult], dict[str, Any]],
                      stream: Callable[[api.ChatRequest], api.ChatStream | api.ResponsesStream]) -> Response:
        """One request in either wire format: parsed and bounded, run, answered whole or streamed."""
        began = time.monotonic()
        try:
            body = await _body(request)
            chat = parse(body, name, request.headers.get(api.SESSION_HEADER))
            session = chat.session or api.new_session()
            headers = {"X-Cspm-Session": session}
            if chat.stream:
                return await _streamed(request, chat, session, headers, began, stream(chat))
            result = await _until_gone(service.alarms, request, _run(chat, session, None))
            _check_answer(result)
        except ClientGone:
            return Response(status_code=CLIENT_GONE)
        except Exception as exc:  # every failure is answered in OpenAI's error shape
            return _error(exc, service)
        answer = whole(result)
        _account(result, began)
        return JSONResponse(answer, headers=headers)

    def _run(chat: api.ChatRequest, session: str,
             on_chunk: Callable[[str, str], None] | None) -> Coroutine[Any, Any, RunResult]:
        entry = plan.components[plan.entry]
        if entry.kind == "llm":  # an llm gets the whole conversation; agents and tools keep their own
            payload = {"messages": chat.messages, **chat.llm_fields, **({"stream": True} if on_chunk else {})}
            return service.call(entry.name, payload, session=session, on_chunk=on_chunk)
        return service.run(chat.text, session=session, on_chunk=on_chunk)

    def _account(result: RunResult, began: float) -> None:
        tokens = api.usage(result)
        metrics.tokens(tokens["prompt_tokens"], tokens["completion_tokens"])
        metrics.latency(time.monotonic() - began)

    async def _streamed(request: Request, chat: api.ChatRequest, session: str, headers: dict[str, str],
                        began: float, encoder: api.ChatStream | api.ResponsesStream) -> Response:
        pending: deque[str] = deque()
        ready = asyncio.Event()
        size = [0]

        def on_chunk(_component: str, text: str) -> None:
            if size[0] > MAX_PENDING_CHARS:
                return
            size[0] += len(text)
            pending.append(text)
            ready.set()

        task = asyncio.ensure_future(_run(chat, session, on_chunk))
        task.add_done_callback(lambda _t: ready.set())
        try:
            await _until_gone(service.alarms, request, ready.wait(), task)
        except ClientGone:
            return Response(status_code=CLIENT_GONE)
        if task.done() and not pending:  # over before anything streamed: answered with its own status
            try:
                _check_answer(task.result())
            except Exception as exc:
                return _error(exc, service)

        async def events() -> AsyncIterator[bytes]:
            streamed = False
            try:
                for line in encoder.start():
                    yield line
                while True:
                    while pending:
                        text = pending.popleft()
                        size[0] -= len(text)
                        streamed = True
                        yield encoder.delta(text)
                    if size[0] > MAX_PENDING_CHARS:
                        task.cancel()
                        for line in encoder.failed(api.ApiError(
                                500, "the client read the stream too slowly; the request was stopped",
                                type_="server_error", code="slow_reader")):
                            yield line
                        return
                    if task.done():
                        break
                    ready.clear()
                    if not pending and not task.done():
                        await ready.wait()
                try:
                    result = task.result()
                    _check_answer(result)
                except Exception as exc:  # after a 200: the error is the stream's last event
                    for line in encoder.failed(_api_error(exc, service)):
                        yield line
                    return
                for line in encoder.done(result, streamed):
                    yield line
                _account(result, began)
            finally:
                if not task.done():  # the client went away mid-stream: the Service stops the instance
                    task.cancel()
                    task.add_done_callback(_quiet)

        return StreamingResponse(events(), media_type="text/event-stream",
                                 headers={**headers, "Cache-Control": "no-cache", "X-Accel-Buffering": "no"})

    async def models(_request: Request) -> Response:
        return JSONResponse(api.models(name, started))

    async def healthz(_request: Request) -> Response:
        stats = service.stats
        return JSONResponse({"status": "ok", "app": name, "pool": {
            "size": service.pool_size, "in_use": stats.in_use, "loaded": stats.loaded, "waiting": stats.waiting}})

    async def prometheus(_request: Request) -> Response:
        return Response(metrics.render(service.stats, service.pool_size, service.queue_depth),
                        media_type=CONTENT_TYPE)

    async def not_found(_request: Request, exc: Exception) -> Response:
        status = exc.status_code if isinstance(exc, HTTPException) else 404
        message = "no such endpoint" if status == 404 else "method not allowed"
        return JSONResponse(api.ApiError(status, message, code="not_found" if status == 404 else
                                         "method_not_allowed").body(), status_code=status)

    @contextlib.asynccontextmanager
    async def lifespan(_app: Starlette) -> AsyncIterator[None]:
        async with contextlib.AsyncExitStack() as stack:
            own = getattr(mcp_app, "lifespan", None)  # a mounted app's lifespan is not run by Starlette
            if callable(own):
                await stack.enter_async_context(own())
            try:
                yield
            finally:
                await service.aclose()

    routes: list[Route] = [
        Route("/v1/chat/completions", chat, methods=["POST"]),
        Route("/v1/responses", responses, methods=["POST"]),
        Route("/v1/models", models, methods=["GET"]),
        Route("/healthz", healthz, methods=["GET"]),
        Route("/metrics", prometheus, methods=["GET"]),
    ]
    if mcp_app is not None:
        routes.append(Route("/mcp", mcp_app))  # exactly /mcp: a Mount would redirect it to /mcp/
    middleware = [Middleware(CORSMiddleware, allow_origins=list(cors_origins), allow_methods=["GET", "POST"],
                             allow_headers=["Authorization", "Content-Type", "X-Cspm-Session"],
                             expose_headers=["X-Cspm-Session", "Retry-After"])] if cors_origins else []
    middleware.append(Middleware(Gate, metrics=metrics, keys=keys))
    return Starlette(routes=routes, middleware=middleware, lifespan=lifespan,
                     exception_handlers={404: not_found, 405: not_found})


# ---- middleware ------------------------------------------------------------------------------------

class Gate:
    """Every HTTP request passes here once: 401 in OpenAI's shape without a valid `Authorization:
    Bearer KEY` (when keys are set), and every answer counted by route and status (401s and 404s
    included). One middleware, not two: each layer costs every request a call and a wrapped `send`."""

    def __init__(self, app: ASGIApp, metrics: Metrics, keys: Keys) -> None:
        self.app, self.metrics, self.keys = app, metrics, keys

    async def __call__(self, scope: Scope, receive: Receive, send: Send) -> None:
        if scope["type"] != "http":
            await self.app(scope, receive, send)
            return
        path = scope["path"]
        route = "/mcp" if path == "/mcp" or path.startswith("/mcp/") else path
        metrics = self.metrics

        async def counting(message: Message) -> None:
            if message["type"] == "http.response.start":
                metrics.request(route, message["status"])
            await send(message)

        if not self.keys or path in OPEN_PATHS:
            await self.app(scope, receive, counting)
            return
        header = next((v.decode("latin-1") for k, v in scope["headers"] if k == b"authorization"), None)
        if self.keys.allows(header):
            await self.app(scope, receive, counting)
            return
        error = api.ApiError(401, "a valid API key is required: send `Authorization: Bearer KEY`",
                             code="invalid_api_key")
        response = JSONResponse(error.body(), status_code=401, headers={"WWW-Authenticate": "Bearer"})
        await response(scope, receive, counting)


# ---- helpers ---------------------------------------------------------------------------------------

async def _body(request: Request) -> bytes:
    """The body, refused with 413 past MAX_BODY_BYTES whatever Content-Length says."""
    declared = request.headers.get("content-length")
    if declared is not None and declared.isdigit() and int(declared) > api.MAX_BODY_BYTES:
        raise api.too_large()
    body = bytearray()
    async for part in request.stream():
        body += part
        if len(body) > api.MAX_BODY_BYTES:
            raise api.too_large()
    return bytes(body)


async def _until_gone(alarms: Alarms, request: Request, work: Awaitable[Any],
                      task: asyncio.Future[Any] | None = None) -> Any:
    """`work`'s result, or ClientGone (with `work` and `task` cancelled) if the client disconnects
    first. `work` runs in this task (no task of its own: a request costs less). A watcher, started
    only once the work has taken WATCH_AFTER_S (most answers are ready sooner, and a watcher task
    costs a fast request a sixth of its time), cancels this task on a disconnect. A cancelled run is
    awaited, so its instance is back in the pool (or being replaced) when this returns."""
    current = asyncio.current_task()
    assert current is not None
    gone = finished = False
    watcher: asyncio.Future[None] | None = None

    def on_disconnect(watched: asyncio.Future[None]) -> None:
        nonlocal gone
        if not finished and not watched.cancelled() and watched.exception() is None:
            gone = True
            current.cancel()

    def watch() -> None:
        nonlocal watcher
        watcher = asyncio.ensure_future(_disconnect(request))
        watcher.add_done_callback(on_disconnect)

    alarm = alarms.set(WATCH_AFTER_S, watch)
    try:
        return await work
    except asyncio.CancelledError:
        if not gone:
            raise
        current.uncancel()
    finally:
        finished = True  # a callback already scheduled must not cancel what comes next
        alarms.clear(alarm)
        if watcher is not None:
            watcher.cancel()
    if task is not None and not task.done():
        task.cancel()
        with contextlib.suppress(BaseException):
            await task
    raise ClientGone


async def _disconnect(request: Request) -> None:
    while (await request.receive())["type"] != "http.disconnect":
        pass


def _check_answer(result: RunResult) -> None:
    if result.finish_reason == "error":
        reason = result.response.get("error") if isinstance(result.response.get("error"), str) else None
        raise api.ApiError(500, f"the app answered with an error: {reason or result.output}",
                           type_="server_error", code="app_error")


def _api_error(exc: Exception, service: Service) -> api.ApiError:
    if isinstance(exc, api.ApiError):
        return exc
    if isinstance(exc, Busy):
        return api.ApiError(429, exc.message, type_="rate_limit_error", code=exc.code,
                            headers={"Retry-After": str(max(1, math.ceil(exc.retry_after)))})
    if isinstance(exc, DeadlineExceeded):
        return api.ApiError(504, exc.message, type_="timeout_error", code=exc.code)
    if isinstance(exc, KvUnavailable):  # the shared memory is down: a replica is not at fault, retry later
        return api.ApiError(503, exc.message, type_="server_error", code=exc.code, headers={"Retry-After": "1"})
    if isinstance(exc, CspmError):
        if service.closing:
            return api.ApiError(503, "the server is shutting down", type_="server_error", code="shutting_down",
                                headers={"Retry-After": "1"})
        return api.ApiError(500, exc.message, type_="server_error", code=exc.code)
    log.exception("internal error answering a request", exc_info=exc)
    return api.ApiError(500, f"internal error: {type(exc).__name__}", type_="server_error", code="bug")


def _error(exc: Exception, service: Service) -> Response:
    error = _api_error(exc, service)
    return JSONResponse(error.body(), status_code=error.status, headers=error.headers)


def _quiet(task: asyncio.Future[Any]) -> None:
    """A cancelled run's outcome is nobody's: read it so asyncio does not report it as lost."""
    if not task.cancelled():
        task.exception()

