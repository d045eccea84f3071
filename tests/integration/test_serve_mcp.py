"""`cspm serve`'s MCP server (cspm/serve/mcp.py) through the official `mcp` client SDK: over stdio
(`cspm serve APP --mcp stdio`) and over streamable HTTP (`cspm serve APP`, and `http_app` on uvicorn on
loopback in this process, where the service's calls can be watched), at the current protocol revision
(2026-07-28, `server/discover`) and the handshake revisions; tools listed and called, the entry agent
called, a refused call, a tool's error."""

from __future__ import annotations

import asyncio
import json
import os
import re
import socket
import subprocess
import sys
import threading
import time
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import httpx
import pytest
import uvicorn
from mcp import Client, StdioServerParameters
from mcp.shared.exceptions import MCPError
from mcp.types import INTERNAL_ERROR, INVALID_PARAMS

from cspm import planner
from cspm.errors import Busy, DeadlineExceeded, RunFailed
from cspm.formats import app as app_format
from cspm.formats.plan import Plan
from cspm.runtime.engine import RunResult
from cspm.runtime.trace import Span
from cspm.serve import mcp as serve_mcp
from cspm.serve.service import Service
from tests.conftest import PLUGINS, ROOT, conformance_wasm, echo_chat_app, plugin_wasm, write_app

LONG = "a_tool_with_a_name_long_enough_to_push_the_mcp_name_past_64"
CALC, ECHO, AGENT = "mcp-test__calc", "mcp-test__echo", "mcp-test__helper"
TIMEOUT_S = 60


@pytest.fixture(scope="module")
def app_file(tmp_path_factory: pytest.TempPathFactory) -> Path:
    """Local modules only: the calculator (an input_schema), the Zig conformance tool (text input)
    twice, and the Rust conformance agent, which hands its request to the calculator."""
    plugin_wasm("calculator")
    echo = conformance_wasm("zig")
    return write_app(tmp_path_factory.mktemp("mcp-app"), f"""
name: mcp-test
entry: helper
tools:
  - {{name: calc, description: arithmetic, plugin_name: {PLUGINS / 'calculator'}}}
  - {{name: echo, description: returns its input unchanged, plugin_name: {echo}, config: {{kind: tool}}}}
  - {{name: {LONG}, description: returns its input too, plugin_name: {echo}, config: {{kind: tool}}}}
agents:
  - name: helper
    description: hands the request to the calculator
    plugin_name: {conformance_wasm('rust')}
    config: {{kind: agent}}
    tools: [calc]
    grant: {{kv: true, memory_pages: 64, timeout_ms: 5000}}
""")


@pytest.fixture(scope="module")
def plan(app_file: Path) -> Plan:
    return planner.build(app_format.load(app_file))


# ---- names and schemas ------------------------------------------------------------------------------

def test_tools_are_prefixed_short_and_carry_their_schemas(plan: Plan) -> None:
    tools = {t.component: t for t in serve_mcp.tools_of(plan)}
    assert set(tools) == {"calc", "echo", LONG, "helper"}
    for tool in tools.values():
        assert re.fullmatch(r"[A-Za-z0-9_-]{1,64}", tool.name), tool.name
        assert tool.name.startswith("mcp-test__")
        assert tool.input_schema["type"] == "object"
    assert tools["calc"].name == CALC and tools["calc"].structured
    assert tools["calc"].input_schema == plan.components["calc"].input_schema  # the plug-in's own
    assert tools["echo"].name == ECHO and not tools["echo"].structured
    assert tools["echo"].input_schema["required"] == ["input"]
    assert tools["helper"].name == AGENT and tools["helper"].kind == "agent"
    assert tools["helper"].description == "hands the request to the calculator"
    long_name = tools[LONG].name
    assert len(long_name) == 64 and re.fullmatch(r"mcp-test__a_tool_with_.*_[0-9a-f]{8}", long_name)
    assert serve_mcp.tool_name("mcp-test", LONG) == long_name  # the same on every run


def test_names_that_had_to_change_never_merge() -> None:
    assert serve_mcp.tool_name("hello", "web_search") == "hello__web_search"
    dotted, dashed = serve_mcp.tool_name("my.app", "x"), serve_mcp.tool_name("my_app", "x")
    assert dashed == "my_app__x" and dotted != dashed and re.fullmatch(r"my_app__x_[0-9a-f]{8}", dotted)
    long_a, long_b = serve_mcp.tool_name("a" * 64, "t1"), serve_mcp.tool_name("a" * 64, "t2")
    assert long_a != long_b and len(long_a) == len(long_b) == 64


# ---- what a call becomes ----------------------------------------------------------------------------

class Scripted:
    """A stand-in Service whose run/call raise or answer as told, and stream chunks first."""

    def __init__(self, plan: Plan, outcome: BaseException | RunResult, chunks: tuple[str, ...] = ()) -> None:
        self.plan, self.outcome, self.chunks = plan, outcome, chunks

    async def _answer(self, on_chunk: Any) -> RunResult:
        for chunk in self.chunks:
            if on_chunk is not None:
                on_chunk("helper", chunk)
            await asyncio.sleep(0.01)
        if isinstance(self.outcome, BaseException):
            raise self.outcome
        return self.outcome

    async def run(self, text: str, *, component: str | None = None, session: str | None = None,
                  on_chunk: Any = None) -> RunResult:
        return await self._answer(on_chunk)

    async def call(self, component: str, payload: dict[str, Any], *, session: str | None = None,
                   on_chunk: Any = None) -> RunResult:
        return await self._answer(on_chunk)


def _agent(plan: Plan) -> serve_mcp.McpTool:
    return next(t for t in serve_mcp.tools_of(plan) if t.kind == "agent")


def _call(plan: Plan, outcome: BaseException | RunResult, version: str = "2026-07-28") -> Any:
    return asyncio.run(serve_mcp.call_tool(Scripted(plan, outcome), _agent(plan), {"input": "hi"}, session="s",
                                           protocol_version=version))


def test_busy_and_deadline_are_protocol_errors_that_say_so(plan: Plan) -> None:
    with pytest.raises(MCPError) as busy:
        _call(plan, Busy("all 4 instances are busy and 64 requests are waiting", retry_after=3.0))
    assert busy.value.code == INTERNAL_ERROR
    assert busy.value.message == ("the server is busy: all 4 instances are busy and 64 requests are waiting "
                                  "(retry after 3 s)")
    assert busy.value.data == {"code": "serve.busy", "retryAfter": 3.0}
    with pytest.raises(MCPError) as late:
        _call(plan, DeadlineExceeded("the request ran past its 120 s deadline and was stopped"))
    assert late.value.message == "the call took too long: the request ran past its 120 s deadline and was stopped"
    assert late.value.data == {"code": "serve.timeout"}


def test_a_failed_run_and_an_agent_error_are_tool_errors(plan: Plan) -> None:
    failed = _call(plan, RunFailed("agent `helper` trapped: unreachable", Span("helper", "agent")))
    assert failed.is_error and failed.content[0].text == "agent `helper` trapped: unreachable"
    answer = RunResult("error: no llm", "error", {"output": "error: no llm", "finish_reason": "error"}, "s",
                       Span("helper", "agent"))
    erred = _call(plan, answer)
    assert erred.is_error and erred.content[0].text == "error: no llm"


def test_streamed_chunks_reach_a_client_that_asks_for_progress(plan: Plan) -> None:
    """In-process (the SDK's direct connection): each chunk is a progress notification with its text."""
    answer = RunResult("one two", "final_answer", {"output": "one two"}, "s", Span("helper", "agent"))
    server = serve_mcp.server_of(Scripted(plan, answer, chunks=("one", " two")))
    seen: list[tuple[float, str | None]] = []

    async def on_progress(progress: float, total: float | None, message: str | None) -> None:
        seen.append((progress, message))

    async def main() -> Any:
        async with Client(server, mode="legacy") as client:
            return await client.call_tool(AGENT, {"input": "count"}, progress_callback=on_progress)

    result = asyncio.run(main())
    assert result.content[0].text == "one two" and not result.is_error
    assert seen == [(1, "one"), (2, " two")]


# ---- over streamable HTTP ---------------------------------------------------------------------------

@pytest.fixture(scope="module")
def served(plan: Plan) -> Iterator[tuple[str, list[str | None]]]:
    """http_app on uvicorn on loopback, in a thread with its own event loop; yields the endpoint's URL
    and the kv session of every call the service got, in order."""
    sessions: list[str | None] = []

    class Recording(Service):
        async def run(self, text: str, **kwargs: Any) -> RunResult:
            sessions.append(kwargs.get("session"))
            return await super().run(text, **kwargs)

        async def call(self, component: str, payload: dict[str, Any], **kwargs: Any) -> RunResult:
            sessions.append(kwargs.get("session"))
            return await super().call(component, payload, **kwargs)

    sock = socket.socket()
    sock.bind(("127.0.0.1", 0))
    port = sock.getsockname()[1]
    servers: list[uvicorn.Server] = []

    async def main() -> None:
        service = Recording(plan, pool_size=2)
        server = uvicorn.Server(uvicorn.Config(serve_mcp.http_app(service), log_level="warning", lifespan="on"))
        servers.append(server)
        try:
            await server.serve(sockets=[sock])
        finally:
            await service.aclose()

    thread = threading.Thread(target=asyncio.run, args=(main(),), daemon=True)
    thread.start()
    deadline = time.monotonic() + 30
    while not (servers and servers[0].started):
        assert time.monotonic() < deadline and thread.is_alive(), "the MCP server did not start"
        time.sleep(0.05)
    yield f"http://127.0.0.1:{port}/mcp", sessions
    servers[0].should_exit = True
    thread.join(30)
    sock.close()


async def _exercise(client: Client) -> None:
    """What every transport and revision must do: list, call each tool and the agent, a tool's
    error, arguments that do not fit, an unknown tool. Five calls reach the service: the two whose
    arguments do not fit and the unknown tool are answered before it."""
    listed = {t.name: t for t in (await client.list_tools()).tools}
    assert set(listed) == {CALC, ECHO, AGENT, serve_mcp.tool_name("mcp-test", LONG)}
    assert all(len(name) <= 64 for name in listed)
    assert listed[CALC].input_schema["required"] == ["expression"]
    assert listed[AGENT].input_schema["properties"]["input"]["type"] == "string"
    assert listed[CALC].description == "arithmetic"

    calc = await client.call_tool(CALC, {"expression": "2 * (3 + 4)"})
    assert not calc.is_error and calc.content[0].text == "14"
    echo = await client.call_tool(ECHO, {"input": "hello there"})
    assert not echo.is_error and echo.content[0].text == "hello there"
    long = await client.call_tool(serve_mcp.tool_name("mcp-test", LONG), {"input": "long"})
    assert long.content[0].text == "long"
    agent = await client.call_tool(AGENT, {"input": "6 * 7"})
    assert not agent.is_error and agent.content[0].text == "42"

    failed = await client.call_tool(CALC, {"expression": "2 + * 3"})
    assert failed.is_error and failed.content[0].text.startswith("syntax error at position 5: unexpected '*'")

    misfit = await client.call_tool(CALC, {"expr": "1"})  # since 2025-11-25: a tool error the model can read
    assert misfit.is_error
    assert misfit.content[0].text == ("invalid arguments: tool `calc`: arguments: Additional properties are not "
                                      "allowed ('expr' was unexpected)")
    no_input = await client.call_tool(AGENT, {"text": "6 * 7"})
    assert no_input.is_error and no_input.content[0].text == "invalid arguments: `input` (a string) is required"

    with pytest.raises(MCPError) as unknown:
        await client.call_tool("mcp-test__nope", {"input": "x"})
    assert unknown.value.code == INVALID_PARAMS and unknown.value.message == "Unknown tool: mcp-test__nope"


def test_http_current_revision(served: tuple[str, list[str | None]]) -> None:
    url, sessions = served

    async def main() -> str:
        async with Client(url, read_timeout_seconds=TIMEOUT_S) as client:  # probes server/discover
            await _exercise(client)
            return client.protocol_version

    sessions.clear()
    assert asyncio.run(main()) == "2026-07-28"
    assert len(sessions) == 5 and len(set(sessions)) == 5  # stateless: every call its own kv session
    assert all(s is not None and s.startswith("mcp-") for s in sessions)


def test_http_handshake_revision_keeps_one_session(served: tuple[str, list[str | None]]) -> None:
    url, sessions = served

    async def main() -> str:
        async with Client(url, mode="legacy", read_timeout_seconds=TIMEOUT_S) as client:  # initialize
            await _exercise(client)
            return client.protocol_version

    sessions.clear()
    assert asyncio.run(main()) == "2025-11-25"
    assert len(sessions) == 5 and len(set(sessions)) == 1  # the Mcp-Session-Id is the conversation
    again = list(sessions)
    asyncio.run(main())
    assert sessions[-1] != again[0]  # a new MCP session, a new kv session


def _rpc(http: httpx.Client, url: str, message: dict[str, Any], headers: dict[str, str]) -> httpx.Response:
    return http.post(url, json=message, headers={"Accept": "application/json, text/event-stream", **headers})


def _answer(response: httpx.Response) -> dict[str, Any]:
    """The JSON-RPC answer of a POST, sent as JSON or as the last `data:` of an event stream."""
    if response.headers["content-type"].startswith("text/event-stream"):
        data = [line[5:].strip() for line in response.text.splitlines() if line.startswith("data:")]
        return json.loads(data[-1])
    return response.json()


def test_http_older_revision_refuses_arguments_that_do_not_fit(served: tuple[str, list[str | None]]) -> None:
    """2025-06-18 says invalid arguments are a protocol error: -32602, not a tool result."""
    url, _ = served
    with httpx.Client(timeout=TIMEOUT_S) as http:
        opened = _rpc(http, url, {"jsonrpc": "2.0", "id": 1, "method": "initialize", "params": {
            "protocolVersion": "2025-06-18", "capabilities": {}, "clientInfo": {"name": "raw", "version": "1"}}}, {})
        assert opened.status_code == 200
        assert _answer(opened)["result"]["protocolVersion"] == "2025-06-18"
        headers = {"mcp-session-id": opened.headers["mcp-session-id"], "mcp-protocol-version": "2025-06-18"}
        assert _rpc(http, url, {"jsonrpc": "2.0", "method": "notifications/initialized"}, headers).status_code == 202
        refused = _answer(_rpc(http, url, {"jsonrpc": "2.0", "id": 2, "method": "tools/call",
                                           "params": {"name": CALC, "arguments": {"expression": 3}}}, headers))
        assert refused["error"]["code"] == INVALID_PARAMS
        assert refused["error"]["message"] == ("Invalid arguments for tool mcp-test__calc: tool `calc`: "
                                               "arguments.expression: 3 is not of type 'string'")
        fine = _answer(_rpc(http, url, {"jsonrpc": "2.0", "id": 3, "method": "tools/call",
                                        "params": {"name": CALC, "arguments": {"expression": "1+1"}}}, headers))
        assert fine["result"]["content"] == [{"type": "text", "text": "2"}]


def test_http_refuses_a_foreign_origin_and_an_oversized_body(served: tuple[str, list[str | None]]) -> None:
    url, _ = served
    discover = {"jsonrpc": "2.0", "id": 1, "method": "server/discover", "params": {}}
    modern = {"mcp-protocol-version": "2026-07-28"}
    with httpx.Client(timeout=TIMEOUT_S) as http:
        assert _rpc(http, url, discover, {**modern, "Origin": "http://evil.example"}).status_code == 403
        big = {"jsonrpc": "2.0", "id": 2, "method": "tools/call",
               "params": {"name": ECHO, "arguments": {"input": "x" * (serve_mcp.MAX_REQUEST_BYTES + 1)}}}
        assert _rpc(http, url, big, modern).status_code == 413


# ---- from the command line: `cspm serve APP --mcp stdio`, and `cspm serve APP` (MCP at /mcp) -----------

def _stdio(app_file: Path) -> StdioServerParameters:
    return StdioServerParameters(command=sys.executable, cwd=str(ROOT),
                                 args=["-m", "cspm.cli.main", "serve", str(app_file), "--mcp", "stdio"])


@pytest.mark.parametrize(("mode", "version"), [("auto", "2026-07-28"), ("legacy", "2025-11-25")])
def test_stdio(app_file: Path, mode: str, version: str) -> None:
    async def main() -> str:
        async with Client(_stdio(app_file), mode=mode, read_timeout_seconds=TIMEOUT_S) as client:
            await _exercise(client)
            return client.protocol_version

    assert asyncio.run(main()) == version


@pytest.fixture
def cli_server(app_file: Path, tmp_path: Path) -> Iterator[str]:
    """`cspm serve APP --port 0 --json` on loopback; yields the MCP URL its first line names."""
    errors = tmp_path / "stderr.txt"
    with errors.open("w") as stderr:
        process = subprocess.Popen([sys.executable, "-m", "cspm.cli.main", "serve", str(app_file), "--port", "0",
                                    "--json"], cwd=ROOT, stdout=subprocess.PIPE, stderr=stderr, text=True)
    try:
        assert process.stdout is not None
        line = process.stdout.readline()
        assert line, f"cspm serve did not start: {errors.read_text()}"
        yield json.loads(line)["mcp"]
    finally:
        process.terminate()
        process.wait(timeout=30)


@pytest.mark.parametrize(("mode", "version"), [("auto", "2026-07-28"), ("legacy", "2025-11-25")])
def test_cli_http(cli_server: str, mode: str, version: str) -> None:
    assert cli_server.endswith("/mcp")

    async def main() -> str:
        async with Client(cli_server, mode=mode, read_timeout_seconds=TIMEOUT_S) as client:
            await _exercise(client)
            return client.protocol_version

    assert asyncio.run(main()) == version


def test_stdio_is_one_conversation_per_connection(tmp_path: Path) -> None:
    """Over stdio one client is one conversation: both calls of a connection share one kv session,
    whose history grows; another connection is another session."""
    app = echo_chat_app(tmp_path)
    env = {**os.environ, "CSPM_DATA_DIR": str(tmp_path / "data")}
    server = StdioServerParameters(command=sys.executable, cwd=str(ROOT), env=env,
                                   args=["-m", "cspm.cli.main", "serve", str(app), "--mcp", "stdio"])

    async def connection(*inputs: str) -> list[str]:
        async with Client(server, read_timeout_seconds=TIMEOUT_S) as client:
            return [(await client.call_tool("echo-chat__agent", {"input": text})).content[0].text
                    for text in inputs]

    def sessions() -> list[dict[str, Any]]:
        listed = subprocess.run([sys.executable, "-m", "cspm.cli.main", "session", "list", "--json"], env=env,
                                cwd=ROOT, capture_output=True, text=True, check=True)
        return json.loads(listed.stdout)["sessions"]

    assert asyncio.run(connection("one")) == ["echo: one"]
    [first] = sessions()
    assert first["app"] == "echo-chat" and first["session"].startswith("mcp-")
    assert asyncio.run(connection("two", "three")) == ["echo: two", "echo: three"]
    after = {s["session"]: s for s in sessions()}
    assert len(after) == 2 and after[first["session"]]["bytes"] == first["bytes"]  # the first is untouched
    [second] = [s for name, s in after.items() if name != first["session"]]
    assert second["bytes"] > first["bytes"]  # two exchanges in one history: more than the first's one
