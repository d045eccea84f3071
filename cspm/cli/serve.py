"""`cspm serve [APP]`: one app behind OpenAI-compatible HTTP endpoints (and MCP) for many callers.

The app is planned as `cspm run` plans it (locked, installed, a published app's capabilities
approved), then served from a pool of instances (cspm/serve/service.py). Starlette, uvicorn and the
MCP SDK are imported here, inside the command, never at module level: `cspm --help` imports every
command module, and `cspm run` must not pay for a web server.
"""

from __future__ import annotations

import asyncio
import contextlib
import json
import signal
import socket
import sys
import threading
from collections.abc import Iterator
from enum import StrEnum
from pathlib import Path
from typing import TYPE_CHECKING, Annotated, Any

import typer

from cspm.cli.listening import cannot_listen, is_loopback
from cspm.cli.options import AllowCapabilitiesOpt, FrozenOpt, KvOpt, OfflineOpt, RefreshOpt
from cspm.cli.output import warner
from cspm.cli.run import planned
from cspm.errors import InputError

if TYPE_CHECKING:
    from cspm.formats.plan import Plan
    from cspm.runtime.kv import KvFactory
    from cspm.serve.auth import Keys


class Mcp(StrEnum):
    http = "http"
    stdio = "stdio"
    off = "off"


def serve(
    app: Annotated[str, typer.Argument(help="app config, or a published app NAMESPACE/NAME[@SPEC]")] = "app.yaml",
    host: Annotated[str, typer.Option("--host", help="address to listen on (loopback by default)")] = "127.0.0.1",
    port: Annotated[int, typer.Option("--port", min=0, max=65535, help="port to listen on; 0 picks a free one")
                    ] = 8000,
    pool: Annotated[int, typer.Option("--pool", min=1, max=1024, help="most instances of the app loaded at once")
                    ] = 4,
    queue: Annotated[int, typer.Option("--queue", min=0, max=100_000,
                                       help="most requests waiting for an instance; past it: 429")] = 64,
    timeout: Annotated[float, typer.Option("--timeout", min=0.001, max=86_400,
                                           help="seconds a request may take, waiting included; then 504")] = 120.0,
    api_key_file: Annotated[Path | None, typer.Option(
        "--api-key-file", help="API keys, one a line (also: env CSPM_SERVE_API_KEYS); none: no key asked")] = None,
    cors_origin: Annotated[list[str] | None, typer.Option(
        "--cors-origin", help="a web origin allowed to call the API from a browser (repeatable); none: no CORS")
                           ] = None,
    mcp: Annotated[Mcp | None, typer.Option(
        "--mcp", help="MCP: `http` at /mcp (the default when the mcp extra is installed), `stdio` on "
                      "stdin/stdout instead of HTTP, or `off`")] = None,
    json_out: Annotated[bool, typer.Option("--json", help="print the listening line as JSON")] = False,
    kv_url: KvOpt = None,
    offline: OfflineOpt = False,
    frozen: FrozenOpt = False,
    refresh: RefreshOpt = False,
    allow_capabilities: AllowCapabilitiesOpt = False,
) -> None:
    """Serve an app: OpenAI-compatible chat completions and responses, models, health, metrics, MCP (docs/serve.md)."""
    from cspm.runtime import kv
    from cspm.serve import auth

    kv_factory = kv.factory_for(kv_url)  # a bad URL is refused now; the database is reached at its first use
    keys = auth.load(api_key_file)
    origins = tuple(cors_origin or ())
    for origin in origins:
        if origin != "*" and not origin.startswith(("http://", "https://")):
            raise InputError(f"--cors-origin {origin!r} is not a web origin", hint="e.g. https://chat.example.com")
    warnings: list[str] = []
    plan = planned(app, offline=offline, frozen=frozen, refresh=refresh, json_out=json_out,
                   allow_capabilities=allow_capabilities, warnings=warnings)
    mode = mcp or (Mcp.http if _has_mcp() else Mcp.off)
    if mode is not Mcp.stdio and not keys and not is_loopback(host):
        warner()(f"serving on {host} without API keys: anyone who can reach it can use the app "
                 f"(give keys with --api-key-file or CSPM_SERVE_API_KEYS)")
    asyncio.run(_main(plan, host=host, port=port, pool=pool, queue=queue, timeout=timeout, keys=keys,
                      origins=origins, mcp=mode, json_out=json_out, kv_factory=kv_factory))


async def _main(plan: Plan, *, host: str, port: int, pool: int, queue: int, timeout: float, keys: Keys,
                origins: tuple[str, ...], mcp: Mcp, json_out: bool, kv_factory: KvFactory) -> None:
    from cspm.serve.service import Service

    service = Service(plan, pool_size=pool, queue_depth=queue, timeout_s=timeout, kv_factory=kv_factory)
    if mcp is Mcp.stdio:  # stdout is the protocol: nothing else is printed there
        mcp_module = _mcp_module()
        try:
            await mcp_module.run_stdio(service)
        finally:
            await service.aclose()
        return
    try:
        import uvicorn

        from cspm.serve.app import build
    except ImportError as exc:
        await service.aclose()
        raise InputError(f"`cspm serve` needs the serve extra ({exc.name} is not installed)",
                         hint="pip install 'cspm[serve]'") from None
    mcp_app = _mcp_module().http_app(service, host=host, allowed_origins=origins) if mcp is Mcp.http else None
    application = build(service, keys=keys, cors_origins=origins, mcp_app=mcp_app)
    listening = _listen(host, port)
    server = _new_server(uvicorn.Config(application, log_level="warning", access_log=False, lifespan="on",
                                    timeout_graceful_shutdown=5))
    task = asyncio.ensure_future(server.serve(sockets=[listening]))
    while not server.started and not task.done():
        await asyncio.sleep(0.01)
    if server.started:
        bound = listening.getsockname()[1]
        shown = f"[{host}]" if ":" in host else host
        url = f"http://{shown}:{bound}/"
        if json_out:
            line = json.dumps({"app": plan.app_name, "url": url, "mcp": f"{url}mcp" if mcp_app else None})
        else:
            line = f"cspm serve: {plan.app_name} at {url}" + (f" (MCP at {url}mcp)" if mcp_app else "")
        sys.stdout.write(line + "\n")
        sys.stdout.flush()
    await task
    if not server.started:  # startup failed (the lifespan): uvicorn said why on stderr
        raise InputError("the server did not start")


def _listen(host: str, port: int) -> socket.socket:
    """The listening socket, bound before uvicorn starts, so port 0's pick is known and printed. It is
    made with proto IPPROTO_TCP (socket.create_server leaves 0): asyncio turns Nagle's algorithm off
    only on such sockets' connections, and with it on, every answer waits ~40 ms for a delayed ACK."""
    try:
        family = socket.AF_INET6 if ":" in host else socket.AF_INET
        listening = socket.socket(family, socket.SOCK_STREAM, socket.IPPROTO_TCP)
        try:
            listening.setsockopt(socket.SOL_SOCKET, socket.SO_REUSEADDR, 1)
            listening.bind((host, port))
            listening.listen(1024)
        except BaseException:
            listening.close()
            raise
    except (OSError, UnicodeError) as exc:
        raise cannot_listen("cspm serve", host, port, exc) from None
    listening.setblocking(False)
    return listening


def _has_mcp() -> bool:
    import importlib.util

    return importlib.util.find_spec("mcp") is not None and importlib.util.find_spec("cspm.serve.mcp") is not None


def _mcp_module() -> Any:
    try:
        from cspm.serve import mcp as module
    except ImportError as exc:
        raise InputError(f"MCP needs the mcp extra ({exc.name} is not installed)",
                         hint="pip install 'cspm[mcp]', or serve without MCP: `cspm serve --mcp off`") from None
    return module


def _new_server(config: Any) -> Any:
    """A uvicorn server (its class is made here: uvicorn is imported only by this command)."""
    import uvicorn

    class Server(uvicorn.Server):
        """uvicorn's server, but Ctrl-C and SIGTERM only stop it (a graceful shutdown, exit 0): uvicorn
        would raise the signal again once stopped, ending `cspm serve` as interrupted."""

        @contextlib.contextmanager
        def capture_signals(self) -> Iterator[None]:
            if threading.current_thread() is not threading.main_thread():
                yield
                return
            previous = {sig: signal.signal(sig, self.handle_exit) for sig in (signal.SIGINT, signal.SIGTERM)}
            try:
                yield
            finally:
                for sig, handler in previous.items():
                    signal.signal(sig, handler)

    return Server(config)

