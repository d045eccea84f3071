"""The MCP front end of `cspm serve`: an app's tools and its entry agent as MCP tools, over stdio and
streamable HTTP, on the official `mcp` SDK's low-level server (imported only here, and only by
`cspm serve`).

Protocol revisions are the SDK's: the current one, 2026-07-28 (stateless: each request is a
self-contained POST, `server/discover` instead of a handshake), and the handshake revisions
2024-11-05, 2025-03-26, 2025-06-18 and 2025-11-25 (`initialize`; over HTTP a session with an
`Mcp-Session-Id`). The client's first message picks the era, on both transports.

Names: a client sees `<app>__<component>` (two apps served to one client never collide) in the
characters every client accepts (`[A-Za-z0-9_-]`, at most 64); a name that had to change (a dot in
it, too long) ends in a short hash of the original, so it stays the same from run to run and two
names never merge into one.

Every call goes through the Service (its pool, queue and deadline); the plug-ins never see MCP. A
tool's own failure is a result with `isError` (the model reads it and can try again); an unknown
tool, and a server that cannot take the call now (busy, past its deadline), are JSON-RPC errors.
"""

from __future__ import annotations

import asyncio
import contextlib
import hashlib
import re
import uuid
from collections.abc import AsyncIterator, Awaitable, Callable, Sequence
from dataclasses import dataclass
from typing import TYPE_CHECKING, Any, Protocol

from cspm.errors import Busy, CspmError, DeadlineExceeded, RunFailed
from cspm.formats.plan import Plan, PlanComponent
from cspm.runtime.engine import RunResult

if TYPE_CHECKING:
    import mcp.types as types
    from mcp.server.lowlevel import Server
    from mcp.server.streamable_http_manager import StreamableHTTPSessionManager

MAX_NAME = 64  # Claude, OpenAI and most other clients refuse a longer tool name
_NAME = re.compile(r"[A-Za-z0-9_-]{1,64}")
_HASH_CHARS = 8
MAX_SHOWN_NAME = 100  # of an unknown tool's name, echoed in the refusal
MAX_PROGRESS_BACKLOG = 256  # streamed chunks waiting to be sent as progress; more are dropped
# Stateful (handshake-era) HTTP sessions: each holds a server task and its streams until it ends.
MAX_SESSIONS = 1024
SESSION_IDLE_S = 15 * 60
MAX_REQUEST_BYTES = 1024 * 1024  # one JSON-RPC message over HTTP
LOOPBACK = ("127.0.0.1", "localhost", "::1")
# The handshake revisions that report invalid arguments as a JSON-RPC error; from 2025-11-25 on
# (SEP-1303) they are a tool execution error, so the model sees what was wrong and corrects it.
_ARGUMENTS_AS_PROTOCOL_ERROR = ("2024-11-05", "2025-03-26", "2025-06-18")


class Caller(Protocol):
    """What the MCP front end needs of `cspm.serve.service.Service`."""

    plan: Plan

    async def run(self, text: str, *, component: str | None = None, session: str | None = None,
                  on_chunk: Callable[[str, str], None] | None = None) -> RunResult: ...

    async def call(self, component: str, payload: dict[str, Any], *, session: str | None = None,
                   on_chunk: Callable[[str, str], None] | None = None) -> RunResult: ...


@dataclass(frozen=True)
class McpTool:
    """One MCP tool: which component it reaches and how its arguments travel."""

    name: str  # as clients see it
    component: str
    kind: str  # tool | agent | llm
    description: str
    input_schema: dict[str, Any]
    structured: bool  # True: `arguments` go to the tool whole (its input_schema); False: `{"input": text}`


# ---- the tools ------------------------------------------------------------------------------------

def tool_name(app: str, component: str) -> str:
    """`<app>__<component>` when every client accepts it as is, else a cleaned, shortened form that
    ends in 8 hex digits of the sha256 of the original (same app, same name; never two in one)."""
    name = f"{app}__{component}"
    if _NAME.fullmatch(name):
        return name
    digest = hashlib.sha256(name.encode()).hexdigest()[:_HASH_CHARS]
    cleaned = re.sub(r"[^A-Za-z0-9_-]", "_", name)[: MAX_NAME - _HASH_CHARS - 1]
    return f"{cleaned}_{digest}"


def _text_schema(what: str) -> dict[str, Any]:
    return {"type": "object", "properties": {"input": {"type": "string", "description": what}},
            "required": ["input"], "additionalProperties": False}


def _object_schema(schema: dict[str, Any] | None) -> dict[str, Any] | None:
    """The tool's schema when it describes an object (MCP requires `type: object` at the root; a
    schema that leaves `type` out gets it), else None: the tool is then offered with text input."""
    if not isinstance(schema, dict):
        return None
    declared = schema.get("type")
    if declared is None:
        return {"type": "object", **schema}
    if declared == "object":
        return schema
    return None


def tools_of(plan: Plan) -> list[McpTool]:
    """The app's tools (with their input schemas; `{"input": string}` for one without) and its entry
    when that is not a tool (an agent, or an llm), which takes `{"input": string}`."""
    tools: list[McpTool] = []
    for component in plan.components.values():
        if component.kind == "tool":
            tools.append(_tool(plan, component))
    entry = plan.components[plan.entry]
    if entry.kind != "tool":
        description = entry.description or f"the {plan.app_name} app's {entry.kind}: ask it in plain text"
        tools.append(McpTool(tool_name(plan.app_name, entry.name), entry.name, entry.kind, description,
                             _text_schema("your request, in plain text"), structured=False))
    names = [t.name for t in tools]
    if len(set(names)) != len(names):  # only if a component is named like another's hashed name
        raise CspmError(f"two components of {plan.app_name} have the same MCP tool name; rename one")
    return tools


def _tool(plan: Plan, component: PlanComponent) -> McpTool:
    schema = _object_schema(component.input_schema)
    description = component.description or f"the {component.name} tool"
    name = tool_name(plan.app_name, component.name)
    if schema is None:
        return McpTool(name, component.name, "tool", description, _text_schema("the tool's input"),
                       structured=False)
    return McpTool(name, component.name, "tool", description, schema, structured=True)


# ---- a call ---------------------------------------------------------------------------------------

async def call_tool(service: Caller, tool: McpTool, arguments: dict[str, Any], *, session: str,
                    protocol_version: str,
                    on_chunk: Callable[[str, str], None] | None = None) -> types.CallToolResult:
    """One tools/call through the service. Raises MCPError for what the protocol refuses (invalid
    arguments on the oldest revisions, a busy or timed-out server); returns an `isError` result for
    the tool's own failure and, from 2025-11-25 on, for arguments that do not fit its schema."""
    import mcp.types as types

    problem = _arguments_problem(service.plan.components[tool.component], tool, arguments)
    if problem is not None:
        if protocol_version in _ARGUMENTS_AS_PROTOCOL_ERROR:
            raise _mcp_error(types.INVALID_PARAMS, f"Invalid arguments for tool {tool.name}: {problem}")
        return _result(f"invalid arguments: {problem}", error=True)
    try:
        if tool.kind == "tool" and tool.structured:
            result = await service.call(tool.component, {"arguments": arguments}, session=session,
                                        on_chunk=on_chunk)
        elif tool.kind == "tool":
            result = await service.call(tool.component, {"input": arguments["input"]}, session=session,
                                        on_chunk=on_chunk)
        else:
            result = await service.run(arguments["input"], component=tool.component, session=session,
                                       on_chunk=on_chunk)
    except RunFailed as exc:
        return _result(str(exc), error=True)
    except Busy as exc:
        raise _mcp_error(types.INTERNAL_ERROR, f"the server is busy: {exc} (retry after {exc.retry_after:.0f} s)",
                         {"code": exc.code, "retryAfter": round(exc.retry_after, 1)}) from None
    except DeadlineExceeded as exc:
        raise _mcp_error(types.INTERNAL_ERROR, f"the call took too long: {exc}", {"code": exc.code}) from None
    except CspmError as exc:
        raise _mcp_error(types.INTERNAL_ERROR, str(exc), {"code": exc.code}) from None
    if result.finish_reason == "error":
        error = result.response.get("error")
        return _result(result.output or (str(error) if error else "the call failed"), error=True)
    return _result(result.output, error=False)


def _arguments_problem(component: PlanComponent, tool: McpTool, arguments: Any) -> str | None:
    """What is wrong with `arguments` (the check an agent's `call_tool` gets), or None."""
    if not isinstance(arguments, dict):
        return "arguments must be an object"
    if not tool.structured:
        extra = sorted(set(arguments) - {"input"})
        if not isinstance(arguments.get("input"), str):
            return "`input` (a string) is required"
        return f"unknown argument `{extra[0][:MAX_SHOWN_NAME]}`" if extra else None
    from cspm.runtime import arguments as argcheck

    try:
        argcheck.check(component, arguments)
    except argcheck.ArgumentsInvalid as exc:
        return str(exc)
    return None


def _result(text: str, *, error: bool) -> types.CallToolResult:
    import mcp.types as types

    return types.CallToolResult(content=[types.TextContent(type="text", text=text)], is_error=error)


def _mcp_error(code: int, message: str, data: Any = None) -> Exception:
    from mcp.shared.exceptions import MCPError

    return MCPError(code=code, message=message, data=data)


# ---- the server -----------------------------------------------------------------------------------

def server_of(service: Caller, *, connection_session: str | None = None) -> Server[Any]:
    """The low-level MCP server of one served app. `connection_session`: the kv session of every call
    (stdio: one client, one conversation); otherwise a handshake-era HTTP session's id is the kv
    session, and a call without one (2026-07-28 is stateless) gets a fresh session."""
    import mcp.types as types
    from mcp.server.lowlevel import Server

    from cspm import __version__

    plan = service.plan
    tools = tools_of(plan)
    by_name = {tool.name: tool for tool in tools}
    listed = [types.Tool(name=t.name, description=t.description, input_schema=t.input_schema) for t in tools]

    async def list_tools(ctx: Any, params: Any) -> types.ListToolsResult:
        return types.ListToolsResult(tools=listed)

    async def call(ctx: Any, params: types.CallToolRequestParams) -> types.CallToolResult:
        tool = by_name.get(params.name)
        if tool is None:
            raise _mcp_error(types.INVALID_PARAMS, f"Unknown tool: {params.name[:MAX_SHOWN_NAME]}")
        session = connection_session or _http_session(ctx)
        async with _progress(ctx) as on_chunk:
            return await call_tool(service, tool, params.arguments or {}, session=session,
                                   protocol_version=ctx.protocol_version, on_chunk=on_chunk)

    def input_schema(name: str) -> dict[str, Any] | None:
        tool = by_name.get(name)
        return tool.input_schema if tool is not None else None

    return Server(f"cspm-{plan.app_name}", version=__version__,
                  description=f"the {plan.app_name} app, served by cspm",
                  on_list_tools=list_tools, on_call_tool=call, get_tool_input_schema=input_schema)


def _http_session(ctx: Any) -> str:
    """A handshake-era HTTP session's id (the SDK has checked that it names a live session of this
    caller) as `mcp-<id>`; a fresh session for anything else."""
    from mcp.types.version import HANDSHAKE_PROTOCOL_VERSIONS

    request = getattr(ctx, "request", None)
    headers = getattr(request, "headers", None)
    if headers is not None and ctx.protocol_version in HANDSHAKE_PROTOCOL_VERSIONS:
        session_id = headers.get("mcp-session-id")
        if session_id:
            return f"mcp-{session_id[:64]}"
    return f"mcp-{uuid.uuid4().hex}"


@contextlib.asynccontextmanager
async def _progress(ctx: Any) -> AsyncIterator[Callable[[str, str], None] | None]:
    """When the client asked for progress, each chunk the app streams goes out as a progress
    notification carrying its text (best effort: past MAX_PROGRESS_BACKLOG waiting, chunks drop)."""
    meta = ctx.meta or {}
    if meta.get("progress_token") is None and meta.get("progressToken") is None:
        yield None
        return
    queue: asyncio.Queue[str] = asyncio.Queue(MAX_PROGRESS_BACKLOG)

    def on_chunk(_component: str, text: str) -> None:
        with contextlib.suppress(asyncio.QueueFull):
            queue.put_nowait(text)

    async def forward() -> None:
        sent = 0
        while True:
            text = await queue.get()
            sent += 1
            with contextlib.suppress(Exception):  # the client went away: the call itself notices
                await ctx.session.report_progress(sent, None, text)

    task = asyncio.create_task(forward())
    try:
        yield on_chunk
    finally:
        task.cancel()
        with contextlib.suppress(asyncio.CancelledError):
            await task


# ---- transports -----------------------------------------------------------------------------------

async def run_stdio(service: Caller) -> None:
    """Serve MCP over this process's stdin and stdout until stdin closes (`cspm serve --mcp stdio`).
    The SDK points fd 1 at stderr meanwhile, so nothing else can write into the protocol."""
    from mcp.server.stdio import stdio_server

    server = server_of(service, connection_session=f"mcp-{uuid.uuid4().hex}")
    async with stdio_server() as (read_stream, write_stream):
        await server.run(read_stream, write_stream, server.create_initialization_options())


class McpHttpApp:
    """Streamable HTTP as an ASGI app. Mounted in another Starlette app, route it exactly
    (`Route("/mcp", endpoint=app)`) and enter `app.lifespan()` in that app's lifespan (Starlette
    does not run a mounted app's lifespan); run alone, it handles the ASGI lifespan itself."""

    def __init__(self, manager: StreamableHTTPSessionManager, allowed_origins: Sequence[str],
                 check_origin: bool) -> None:
        self._manager = manager
        self._allowed_origins = frozenset(allowed_origins)
        self._check_origin = check_origin

    def lifespan(self) -> contextlib.AbstractAsyncContextManager[None]:
        """Runs the SDK's session manager (its task group and the handshake-era sessions)."""
        return self._manager.run()

    async def __call__(self, scope: dict[str, Any], receive: Callable[[], Awaitable[dict[str, Any]]],
                       send: Callable[[dict[str, Any]], Awaitable[None]]) -> None:
        if scope["type"] == "lifespan":
            await self._own_lifespan(receive, send)
            return
        if scope["type"] != "http":
            return
        if self._check_origin and not self._origin_allowed(scope):
            await _plain(send, 403, b"this Origin is not allowed to call the MCP endpoint")
            return
        await self._manager.handle_request(scope, receive, send)  # type: ignore[arg-type]

    def _origin_allowed(self, scope: dict[str, Any]) -> bool:
        """No Origin (not a browser) or a configured one: a web page elsewhere cannot use the endpoint."""
        for key, value in scope.get("headers", ()):
            if key == b"origin":
                return value.decode("latin-1") in self._allowed_origins
        return True

    async def _own_lifespan(self, receive: Callable[[], Awaitable[dict[str, Any]]],
                            send: Callable[[dict[str, Any]], Awaitable[None]]) -> None:
        message = await receive()
        if message["type"] != "lifespan.startup":
            return
        async with self.lifespan():
            await send({"type": "lifespan.startup.complete"})
            while (await receive())["type"] != "lifespan.shutdown":
                pass
        await send({"type": "lifespan.shutdown.complete"})


async def _plain(send: Callable[[dict[str, Any]], Awaitable[None]], status: int, body: bytes) -> None:
    await send({"type": "http.response.start", "status": status,
                "headers": [(b"content-type", b"text/plain; charset=utf-8"),
                            (b"content-length", str(len(body)).encode())]})
    await send({"type": "http.response.body", "body": body})


def http_app(service: Caller, *, host: str = "127.0.0.1", allowed_origins: Sequence[str] = (),
             max_request_bytes: int = MAX_REQUEST_BYTES, max_sessions: int = MAX_SESSIONS,
             session_idle_s: float = SESSION_IDLE_S) -> McpHttpApp:
    """The MCP endpoint (`cspm serve` routes it at `/mcp`). `host`: where the server listens; on
    loopback the SDK's DNS-rebinding protection admits only loopback Host and Origin headers (and
    `allowed_origins`); elsewhere a request that carries an Origin must name one of `allowed_origins`.
    Bodies past `max_request_bytes` are refused (413); at most `max_sessions` handshake-era sessions
    are open at once (then 503), each closed after `session_idle_s` without a request."""
    from mcp.server.streamable_http_manager import StreamableHTTPSessionManager
    from mcp.server.transport_security import TransportSecuritySettings

    loopback = host in LOOPBACK
    if loopback:
        security = TransportSecuritySettings(
            enable_dns_rebinding_protection=True,
            allowed_hosts=["127.0.0.1:*", "localhost:*", "[::1]:*", "127.0.0.1", "localhost", "[::1]"],
            allowed_origins=["http://127.0.0.1:*", "http://localhost:*", "http://[::1]:*", *allowed_origins])
    else:
        security = TransportSecuritySettings(enable_dns_rebinding_protection=False)
    manager = StreamableHTTPSessionManager(
        app=server_of(service), stateless=False, security_settings=security,
        max_request_body_size=max_request_bytes, max_sessions=max_sessions, session_idle_timeout=session_idle_s)
    return McpHttpApp(manager, allowed_origins, check_origin=not loopback)
