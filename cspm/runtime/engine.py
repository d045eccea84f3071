"""The Chainsocket host: loads an app's plug-ins and routes JSON requests between them.

Each component becomes one Extism plug-in instance (compiled once per module and limits). A call
into a plug-in carries a `Frame` as Extism host context, so a host function knows who is calling,
for which session, and how deep in the call tree; routing checks the caller's declarations.
"""

from __future__ import annotations

import json
import secrets
import time
from collections.abc import Callable
from dataclasses import dataclass, field
from pathlib import Path
from typing import TYPE_CHECKING, Any

import extism
from extism.extism import CompiledPlugin
from extism_sys import ffi, lib

from cspm.errors import (
    CapabilityError,
    CspmError,
    InputError,
    KvUnavailable,
    PluginError,
    PluginFileMissing,
    RunFailed,
)
from cspm.formats import bounded_json
from cspm.formats.plan import MAX_MODULE_BYTES, Plan, PlanComponent
from cspm.runtime import compiler, fastcheck, hostfns, logs
from cspm.runtime.http import READ_BYTES, FetchRefused, HttpGateway, Streams
from cspm.runtime.kv import KvFactory, KvKeyInvalid, KvStore, TooLarge, open_default
from cspm.runtime.logs import MAX_LOG_BYTES, MAX_LOG_LINES, LogCollector, LogLine
from cspm.runtime.secrets import ResolvedSecret, resolve
from cspm.runtime.trace import Span
from cspm.runtime.watchdog import WATCHDOG
from cspm.schemas import MessageInvalid, message_check
from cspm.store import digest_of
from cspm.verify.wasm import Interface, WasmFormatError, read_interface

if TYPE_CHECKING:  # cspm.runtime.abi0 is imported only when a module is ABI 0
    from cspm.runtime.abi0 import State as Abi0State

MAX_DEPTH = 8
MAX_REQUEST_BYTES = 16 * 1024 * 1024  # one host-function request (JSON)
MAX_ANSWER_BYTES = 16 * 1024 * 1024  # what one `call` returns (JSON)
MAX_CHUNK_CHARS = 64 * 1024  # the text of one `emit` chunk; a longer one is refused, never buffered
KIND_MESSAGES = {"llm": ("llm_input", "llm_output"), "tool": ("tool_input", "tool_output"),
                 "agent": ("agent_input", "agent_output")}
ROUTED = {"call_llm": "llm", "call_tool": "tool", "call_agent": "agent"}


class CalleeFailed(Exception):
    """A plug-in trapped, timed out, ran out of memory or answered malformed JSON."""


class HostRefusal(Exception):
    def __init__(self, code: str, message: str) -> None:
        super().__init__(message)
        self.code = code


@dataclass
class Node:
    component: PlanComponent
    interface: Interface
    secrets: tuple[ResolvedSecret, ...]
    compiled: CompiledPlugin
    config: dict[str, str]
    on_instance: Callable[[Node], None]  # the runtime's: routes the new instance's log lines to this node
    logs: list[LogLine] = field(default_factory=list)
    log_bytes: int = 0  # UTF-8 bytes of `logs`' messages, bounded by MAX_LOG_BYTES
    dropped_logs: int = 0
    busy: bool = False
    abi0: Abi0State | None = None  # an Extism 0.x module's state (cspm.runtime.abi0), else None
    instance: extism.Plugin | None = None  # made at the first call (`plugin`), None until then

    @property
    def name(self) -> str:
        return self.component.name

    @property
    def plugin(self) -> extism.Plugin:
        """The Extism instance, made when first needed: a component an app never calls (the LLM an
        agent may ask, a tool it did not pick) costs no instance (~3 ms each of every start). Every
        check of the module ran when it loaded and it is compiled, so what is left to fail here is
        only the instantiation itself."""
        if self.instance is None:
            try:
                self.instance = extism.Plugin(self.compiled, config=self.config)
            except extism.Error as exc:
                raise PluginError(f"{self.component.where}: {self.component.module.path} could not be "
                                  f"instantiated: {exc}") from None
            self.on_instance(self)
        return self.instance

    def cancel(self) -> None:
        """Stop what this node's instance runs, from any thread (nothing to stop without one)."""
        instance = self.instance
        if instance is not None:
            instance.cancel_handle().cancel()

    def descriptor(self) -> dict[str, Any]:
        out: dict[str, Any] = {"name": self.name, "description": self.component.description}
        if self.component.input_schema is not None:
            out["input_schema"] = self.component.input_schema
        return out


class Frame:
    """Host context of one call into a plug-in.

    `deadline` (time.monotonic()) is wall-clock: the call started + the plug-in's `timeout_ms`, never
    later than its caller's. Extism counts only this plug-in's own limit, and only while Wasm runs; the
    host holds the rest (host functions, nested calls, HTTP) to the deadline.
    """

    __slots__ = ("deadline", "depth", "limiter", "node", "parent", "runtime", "session", "span", "streams")

    def __init__(self, runtime: Runtime, node: Node, parent: Frame | None, session: str, span: Span) -> None:
        self.runtime, self.node, self.parent, self.session, self.span = runtime, node, parent, session, span
        self.depth: int = 0 if parent is None else parent.depth + 1
        self.streams: Streams | None = None  # http_open's streams, made at the first; closed when the call ends
        self.deadline = time.monotonic() + node.component.grant.timeout_ms / 1000
        self.limiter = node  # whose limit the deadline is
        if parent is not None and parent.deadline < self.deadline:
            self.deadline, self.limiter = parent.deadline, parent.limiter

    @property
    def limit(self) -> str:
        """Whose time limit the deadline is, for a message (worded only when one needs it)."""
        component = self.limiter.component
        return f"{component.grant.timeout_ms} ms of {component.kind} `{component.name}`"

    def handle(self, function: str, request: bytes) -> bytes:
        if time.monotonic() >= self.deadline:
            return hostfns.error_document("timeout", f"{function}: the call's time limit ({self.limit}) ran out")
        return self.runtime.dispatch(self, function, request)

    def host_failure(self, function: str, exc: BaseException) -> bytes:
        return self.runtime.host_failure(self, function, exc)

    def chain(self) -> list[str]:
        names: list[str] = []
        frame: Frame | None = self
        while frame is not None:
            names.append(frame.node.name)
            frame = frame.parent
        return names[::-1]


@dataclass
class RunResult:
    output: str
    finish_reason: str
    response: dict[str, Any]
    session: str
    trace: Span


class Runtime:
    """A loaded app, ready to run; `close()` releases its plug-ins."""

    def __init__(self, plan: Plan, *, session: str | None = None, kv: KvStore | None = None,
                 kv_factory: KvFactory = open_default, on_chunk: Callable[[str, str], None] | None = None,
                 on_log: Callable[[LogLine], None] | None = None) -> None:
        if plan.origin is not None and not plan.approved:  # every host runs through here: none can forget
            raise CapabilityError(f"{plan.origin.name} {plan.origin.version} is a published app whose capabilities "
                                  f"were not approved", hint="approve them: `cspm run NAME --allow-capabilities`")
        self.plan = plan
        self.session = session or secrets.token_hex(8)  # not uuid: it imports `platform` (~3 ms of start-up)
        self._kv = kv  # or, at the first kv call, kv_factory(): a run that uses no kv opens no store
        self._kv_factory = kv_factory
        self.on_chunk = on_chunk
        self.on_log = on_log
        self.http = HttpGateway()
        self.nodes: dict[str, Node] = {}
        self._interrupt: BaseException | None = None
        self._logs = LogCollector.get()
        for component in plan.components.values():
            self.nodes[component.name] = self._load(component)
        self._checked_names: frozenset[str] | None = None  # made at the first routed request (checked_names)
        self._descriptors: dict[str, dict[str, list[dict[str, Any]]]] = {}  # per agent, made at its first call

    # ---- loading -------------------------------------------------------------------------------

    def _load(self, component: PlanComponent) -> Node:
        where = component.where
        path = Path(component.module.path)
        try:
            if path.stat().st_size > MAX_MODULE_BYTES:
                raise PluginError(f"{where}: {path} is larger than {MAX_MODULE_BYTES // 2**20} MiB")
            wasm = path.read_bytes()
        except FileNotFoundError:
            raise PluginFileMissing(f"{where}: plug-in file {path} does not exist",
                                    hint="build it first (see the plug-in's build.sh) or fix `plugin_name`") from None
        except OSError as exc:
            raise PluginError(f"{where}: cannot read {path}: {exc.strerror}") from None
        if digest_of(wasm) != component.module.digest:  # the plan names the bytes; a host runs only those
            if path.name == component.module.digest.removeprefix("sha256:"):  # a content-addressed store blob
                raise PluginError(f"{where}: the stored module {component.module.digest} is corrupted",
                                  hint="run `cspm cache verify` and then `cspm install`")
            raise PluginError(f"{where}: {path} is not the module {component.module.digest} the plan names "
                              f"(it changed since it was planned)", hint="run again, so that it is planned anew")
        try:
            interface = read_interface(wasm)
        except WasmFormatError as exc:
            raise PluginError(f"{where}: {path} is not a usable wasm module: {exc}") from None
        problems = interface.problems()
        if problems:
            raise PluginError(f"{where}: {path} is not a Chainsocket plug-in: {'; '.join(problems)}")
        grant = component.grant
        if interface.memory_min_pages is not None and interface.memory_min_pages > grant.memory_pages:
            raise PluginError(f"{where}: the module needs {interface.memory_min_pages} memory pages at start, "
                              f"more than the {grant.memory_pages} granted",
                              hint="raise `grant: {memory_pages: N}` if you trust it")
        mounts = tuple((("" if m.writable else "ro:") + m.host, m.guest) for m in grant.mounts)
        wasi = grant.wasi if grant.wasi is not None else (interface.uses_wasi or bool(mounts))
        limits = compiler.Limits(grant.memory_pages, grant.timeout_ms, wasi, mounts)
        secrets = tuple(resolve(f"{component.kind} `{component.name}`", s) for s in component.secrets)
        config = dict(component.config)
        functions, variant, state = hostfns.FUNCTIONS, "", None
        if interface.abi0:  # built for Extism 0.x: its imports are renamed to what 1.x and cspm link
            from cspm.runtime import abi0

            try:
                wasm = abi0.rewritten(wasm, component.module.digest)
            except WasmFormatError as exc:
                raise PluginError(f"{where}: {path} is built for Extism 0.x and cspm cannot link it: {exc}") from None
            functions, variant = abi0.FUNCTIONS, abi0.VARIANT
            state = abi0.make_state(component, config, secrets)
        try:
            compiled = compiler.compile_module(wasm, limits, functions, component.module.digest, variant=variant)
        except extism.Error as exc:
            raise PluginError(f"{where}: {path} could not be compiled: {exc}") from None
        return Node(component, interface, secrets, compiled, config, self._route_logs, abi0=state)

    def _route_logs(self, node: Node) -> None:
        assert node.instance is not None
        self._logs.register(str(node.instance.id), lambda level, message: self._log(node, level, message))

    def _renew(self, node: Node) -> None:
        """A fresh instance after any failure (`_call`): vars and guest memory start over (made at the
        node's next call)."""
        self._logs.drain()
        if node.instance is not None:
            self._logs.unregister(str(node.instance.id))
            node.instance = None
        if node.abi0 is not None:
            node.abi0.renew()

    def _log(self, node: Node, level: str, message: str) -> None:
        """Keep a line within the plug-in's bounds (each line cut to MAX_LINE_CHARS; MAX_LOG_LINES lines
        and MAX_LOG_BYTES in all): a plug-in's logging must not grow the host. What does not fit, and
        what the collector dropped before routing (level DROPPED), is counted in `dropped_logs`."""
        if level == logs.DROPPED:
            node.dropped_logs += int(message)
            return
        message = logs.clip(message)
        cost = logs.size(message)
        if len(node.logs) >= MAX_LOG_LINES or node.log_bytes + cost > MAX_LOG_BYTES:
            node.dropped_logs += 1
            return
        line = LogLine(node.name, level, message)
        node.logs.append(line)
        node.log_bytes += cost
        if self.on_log is not None:
            self.on_log(line)

    @property
    def checked_names(self) -> frozenset[str]:
        """The names of this app's components that pass the ABI's own `name` check: a request that
        names one may take fastcheck's quick path (every other request gets the full check)."""
        if self._checked_names is None:
            self._checked_names = frozenset(name for name in self.nodes if fastcheck.name_passes(name))
        return self._checked_names

    @property
    def kv(self) -> KvStore:
        if self._kv is None:
            self._kv = self._kv_factory()
        return self._kv

    def close(self) -> None:
        for node in self.nodes.values():
            if node.instance is not None:
                self._logs.unregister(str(node.instance.id))
        self.nodes.clear()
        self.http.close()

    def __enter__(self) -> Runtime:
        return self

    def __exit__(self, *exc: object) -> None:
        self.close()

    # ---- running -------------------------------------------------------------------------------

    def run(self, text: str, entry: str | None = None, *, session: str | None = None) -> RunResult:
        """One request to the entry component (or another one), as `cspm run --input` does; `session`
        (default: this runtime's) scopes kv memory, so one instance can serve many conversations."""
        node = self.nodes[entry or self.plan.entry]
        kind = node.component.kind
        session = session or self.session
        if kind == "agent":
            payload: dict[str, Any] = self._agent_payload(node, text, session)
        elif kind == "tool":
            payload = {"input": text}
        else:
            payload = {"messages": [{"role": "user", "content": text}]}
        return self._request(node, payload, session)

    def run_message(self, name: str, payload: dict[str, Any], *, session: str | None = None) -> RunResult:
        """One request whose whole message the caller wrote (a tool's `arguments`, an llm's messages);
        an agent's descriptors of what it may call are added as `run` adds them. A tool's `arguments`
        are checked against its input_schema first, as an agent's `call_tool` is (InputError)."""
        node = self.nodes[name]
        session = session or self.session
        if node.component.kind == "tool" and "arguments" in payload:
            from cspm.runtime import arguments

            try:
                arguments.check(node.component, payload["arguments"])
            except arguments.ArgumentsInvalid as exc:
                raise InputError(f"bad_request: {exc}") from None
        if node.component.kind == "agent":
            payload = {**self._agent_payload(node, str(payload.get("input", "")), session), **payload}
        return self._request(node, payload, session)

    def _request(self, node: Node, payload: dict[str, Any], session: str) -> RunResult:
        kind = node.component.kind
        span = Span(node.name, kind, model=node.component.config.get("model") if kind == "llm" else None)
        try:
            response, _ = self.invoke(node, payload, None, span, session)
        except CalleeFailed as exc:
            span.finish(str(exc))
            raise RunFailed(str(exc), span) from None
        finally:
            self._logs.drain()
        span.finish(response.get("error") if kind == "llm" and response.get("finish_reason") == "error" else None)
        span.record(payload, response)
        if kind == "llm":
            _usage(span, response)
            return RunResult(response["content"], response["finish_reason"], response, session, span)
        reason = response.get("finish_reason", "error" if response.get("is_error") else "final_answer")
        return RunResult(response["output"], reason, response, session, span)

    def call_export(self, name: str, export: str, data: bytes) -> bytes:
        """Call any export of a plug-in with raw bytes (conformance tests, benchmarks)."""
        node = self.nodes[name]
        frame = Frame(self, node, None, self.session, Span(name, node.component.kind, detail=export))
        try:
            return self._call(node, export, data, frame)
        except CalleeFailed as exc:
            raise PluginError(str(exc)) from None
        finally:
            self._logs.drain()

    def _call(self, node: Node, export: str, data: bytes, frame: Frame) -> bytes:
        """The one place a plug-in is entered: marks it busy (cycles) and renews it after any failure.

        Any failure (a trap, a timeout, oom, or an error the plug-in set itself) replaces the instance
        before the next call: a trap skips the guest's unwinding (Rust counts panics in a static and
        stops reporting them after two; AssemblyScript's and Zig's shadow stacks are never popped, so a
        few hundred failures overflow them; Go's runtime is left half-way), and a failed call with its
        fresh instance costs ~0.3 ms (Go ~2 ms). One rule for every language (docs/abi.md §1).

        Extism stops a plug-in at its own `timeout_ms`; when a caller's deadline comes first, a
        watchdog cancels the plug-in then, so a nested call never outlives the call that made it.
        """
        node.busy = True
        if node.abi0 is not None:
            node.abi0.begin()
        inherited = frame.parent is not None and frame.deadline == frame.parent.deadline
        armed = WATCHDOG.arm(frame.deadline, node.cancel) if inherited else None
        try:
            try:
                answer = _plugin_call(node.plugin, export, data, frame)
            except extism.Error as exc:
                if not str(exc).startswith(_STALE_INSTANCE):
                    raise
                # Extism stops a call by advancing the epoch of an engine that every instance of the same
                # module and limits shares: an instance not yet called then traps before any guest code
                # runs. A new instance runs the call as if nothing happened.
                self._renew(node)
                answer = _plugin_call(node.plugin, export, data, frame)
            if node.abi0 is not None and node.abi0.error is not None:
                raise extism.Error(node.abi0.error)  # a 0.x `error_set` fails the call, as one in 1.x does
            return answer
        except extism.Error as exc:
            error, note = (str(exc), "") if node.abi0 is None else node.abi0.failure(str(exc))
            self._renew(node)
            if error == "timeout" and inherited and time.monotonic() >= frame.deadline:
                raise CalleeFailed(f"{node.component.kind} `{node.name}` was stopped: the call's time limit "
                                   f"({frame.limit}) ran out{note}") from None
            raise CalleeFailed(self._explain(node, error) + note) from None
        finally:
            if frame.streams is not None:
                frame.streams.close_all()
            if armed is not None:
                armed.disarm()
            node.busy = False
            if self._interrupt is not None and frame.parent is None:
                interrupt, self._interrupt = self._interrupt, None
                raise interrupt

    def drain_logs(self) -> None:
        self._logs.drain()

    def _agent_payload(self, node: Node, text: str, session: str) -> dict[str, Any]:
        """The descriptors are made once per agent (a plan's components do not change while it is
        loaded); the payload only reads them (json.dumps, Span.record), never changes them."""
        lists = self._descriptors.get(node.name)
        if lists is None:
            calls = node.component.calls
            lists = self._descriptors[node.name] = {
                section: [self.nodes[n].descriptor() for n in getattr(calls, section)]
                for section in ("llms", "tools", "agents")}
        return {"input": text, "session": session, **lists}

    def invoke(self, node: Node, payload: dict[str, Any], parent: Frame | None, span: Span,
               session: str) -> tuple[dict[str, Any], bytes]:
        """Call a plug-in's `call`; its answer, checked against the schema of its kind, and its bytes.

        The answer is untrusted: bounded_json refuses what would crash or bloat the host (nesting, huge
        numbers, size) as one CalleeFailed, so a caller gets `callee_failed` and `run` a PluginError.
        A request (the top-level call) collects log lines while it runs, so they never pile up.
        """
        frame = Frame(self, node, parent, session, span)
        kind = node.component.kind
        if node.abi0 is not None:  # an Extism 0.x plug-in takes and gives the original shapes
            from cspm.runtime import abi0

            data = abi0.original_input(kind, node.name, payload)
        else:
            data = json.dumps(payload).encode()
        if parent is None:
            with self._logs.collecting():
                raw = self._call(node, "call", data, frame)
        else:
            raw = self._call(node, "call", data, frame)
        if node.abi0 is not None:
            return self._abi0_answer(node, raw)
        try:
            response = bounded_json.loads(raw, max_bytes=MAX_ANSWER_BYTES)
        except bounded_json.JsonRejected as exc:
            raise CalleeFailed(f"{node.component.kind} `{node.name}` returned invalid JSON: "
                               f"{raw[:80]!r} ({exc})") from None
        try:
            if not fastcheck.ANSWERS[kind](response):  # a common shape is accepted here, all else checked
                message_check(KIND_MESSAGES[kind][1])(response)
        except MessageInvalid as exc:
            raise CalleeFailed(f"{node.component.kind} `{node.name}` returned a malformed "
                               f"{node.component.kind} response: {exc}") from None
        return response, raw

    def _abi0_answer(self, node: Node, raw: bytes) -> tuple[dict[str, Any], bytes]:
        """An ABI 0 plug-in's raw text output as the ABI 1 answer of its kind (built here, so valid)."""
        from cspm.runtime import abi0

        try:
            response = abi0.answer_of(node.component.kind, raw)
        except ValueError as exc:
            raise CalleeFailed(f"{node.component.kind} `{node.name}` returned an unusable answer: {exc}") from None
        return response, json.dumps(response).encode()

    def _explain(self, node: Node, error: str) -> str:
        who = f"{node.component.kind} `{node.name}`"
        grant = node.component.grant
        if error == "timeout":
            return f"{who} timed out after {grant.timeout_ms} ms (raise `grant: {{timeout_ms: N}}` if it needs longer)"
        if error == "oom":
            return f"{who} ran out of memory (limit {grant.memory_pages} pages = {grant.memory_pages * 64} KiB)"
        if "wasm backtrace" in error or "wasm trap" in error:
            first = error.strip().splitlines()[0]
            if not node.interface.uses_wasi:
                return f"{who} crashed (wasm trap): {first}"
            # Extism discards WASI output (a Go fatal error's reason) unless the CLI captures it
            # (guest_output: a one-shot `cspm run`/`cspm call`); the chat loop shows it under -v
            from cspm.runtime import guest_output

            said = guest_output.last_lines()
            hint = f"; it wrote: {said}" if said else " (what it wrote to stderr is shown by `cspm run -v`)"
            return f"{who} crashed (wasm trap): {first}{hint}"
        return f"{who} failed: {error}"

    # ---- host functions ------------------------------------------------------------------------

    def dispatch(self, frame: Frame, function: str, request: bytes) -> bytes:
        """One host-function request. It is untrusted: bounded_json refuses what would crash or bloat
        the host (nesting, huge numbers, size) as `bad_request`. Log lines written before it are routed
        first, so they keep their order with what it does."""
        self._logs.drain()
        try:
            try:
                message = bounded_json.loads(request, max_bytes=MAX_REQUEST_BYTES)
            except bounded_json.JsonRejected as exc:
                raise HostRefusal("bad_request", f"{function}: bad request: {exc}") from None
            try:
                quick = fastcheck.REQUESTS.get(function)
                if quick is None or not quick(message, self.checked_names):
                    message_check(f"{function}_request")(message)
            except MessageInvalid as exc:
                raise HostRefusal("bad_request", f"{function}: {_worded(function, message, exc)}") from None
            kind = ROUTED.get(function)
            if kind:
                return self._route(frame, kind, message)
            return json.dumps(getattr(self, f"_host_{function}")(frame, message)).encode()
        except HostRefusal as exc:
            return hostfns.error_document(exc.code, str(exc))

    def host_failure(self, frame: Frame, function: str, exc: BaseException) -> bytes:
        if isinstance(exc, KeyboardInterrupt | SystemExit):
            self._interrupt = exc
            return hostfns.error_document("internal", "interrupted")
        if isinstance(exc, KvUnavailable):  # the shared kv database is down: the request fails with it,
            self._interrupt = self._interrupt or exc  # whatever the plug-in makes of the error it is given
            return hostfns.error_document("internal", f"{function}: {exc}")
        return hostfns.error_document("internal", f"{function}: {type(exc).__name__}: {exc}")

    def _route(self, frame: Frame, kind: str, message: dict[str, Any]) -> bytes:
        """Forward a call to a declared plug-in; its checked answer goes back as the bytes it wrote."""
        caller = frame.node
        name = message["name"]
        if name not in caller.component.calls.of(kind):  # type: ignore[arg-type]
            declared = ", ".join(caller.component.calls.of(kind)) or "none"  # type: ignore[arg-type]
            raise HostRefusal("not_declared", f"{caller.component.kind} `{caller.name}` did not declare {kind} "
                                              f"`{name}` (it declared: {declared})")
        target = self.nodes[name]
        if target.busy:
            raise HostRefusal("cycle", f"call cycle: {' -> '.join([*frame.chain(), name])}")
        if frame.depth + 1 >= MAX_DEPTH:
            raise HostRefusal("depth", f"call depth over {MAX_DEPTH}: {' -> '.join([*frame.chain(), name])}")
        package = target.component.package
        if kind == "llm" and message.get("tools") and package is not None \
                and "tool_calling" not in target.component.features:
            raise HostRefusal("unsupported", f"llm `{name}` ({package}) does not do native tool calling; "
                                             f"describe the tools in the prompt instead")
        if kind == "tool" and "arguments" in message:
            from cspm.runtime import arguments
            try:
                arguments.check(target.component, message["arguments"])
            except arguments.ArgumentsInvalid as exc:
                raise HostRefusal("bad_request", f"call_tool: {exc}") from None
        payload = {k: v for k, v in message.items() if k != "name"}
        session = frame.session
        if kind == "agent":
            session = message.get("session") or frame.session
            payload = self._agent_payload(target, message["input"], session)
        span = frame.span.child(name, kind)
        if kind == "llm":
            span.model = target.component.config.get("model")
        try:
            response, raw = self.invoke(target, payload, frame, span, session)
        except CalleeFailed as exc:
            span.finish(str(exc))
            raise HostRefusal("callee_failed", str(exc)) from None
        if kind == "llm":
            _usage(span, response)
        span.record(payload, response)
        failed = response.get("finish_reason") == "error" or response.get("is_error") is True
        span.finish(str(response.get("error") or response.get("output") or "error") if failed else None)
        return raw

    def _host_http_fetch(self, frame: Frame, message: dict[str, Any]) -> dict[str, Any]:
        """The span keeps the URL without its query, both cut short: a refused call costs < 1 KiB of trace."""
        node = frame.node
        url = message["url"].split("?", 1)[0]
        span = frame.span.child(url if len(url) <= 200 else url[:199] + "…", "http",
                                detail=message.get("method", "GET"))
        try:
            placeholders = node.abi0.placeholders if node.abi0 is not None else ()
            response = self.http.fetch(message, node.component.grant.hosts, node.secrets, deadline=frame.deadline,
                                       placeholders=placeholders)
        except FetchRefused as exc:  # its message is redacted and at most 300 characters
            refusal = f"{exc} ({frame.limit})" if exc.code == "timeout" else str(exc)
            span.finish(refusal)
            raise HostRefusal(exc.code, refusal) from None
        span.detail = f"{message.get('method', 'GET')} {response['status']}"
        span.finish()
        return response

    def _host_http_open(self, frame: Frame, message: dict[str, Any]) -> dict[str, Any]:
        """http_fetch's rules and span, but the body stays on the wire until `http_read` asks for it."""
        node = frame.node
        if frame.streams is None:
            frame.streams = Streams()
        url = message["url"].split("?", 1)[0]
        span = frame.span.child(url if len(url) <= 200 else url[:199] + "…", "http",
                                detail=f"{message.get('method', 'GET')} (stream)")
        try:
            if not frame.streams.room():
                frame.streams.add_refused()
            stream = self.http.open(message, node.component.grant.hosts, node.secrets, deadline=frame.deadline)
            number = frame.streams.add(stream)
        except FetchRefused as exc:
            refusal = f"{exc} ({frame.limit})" if exc.code == "timeout" else str(exc)
            span.finish(refusal)
            raise HostRefusal(exc.code, refusal) from None
        span.detail = f"{message.get('method', 'GET')} {stream.status} (stream)"
        span.finish()
        return {"status": stream.status, "headers": stream.headers, "stream": number}

    def _host_http_read(self, frame: Frame, message: dict[str, Any]) -> dict[str, Any]:
        streams = frame.streams or Streams()
        try:
            return streams.read(message["stream"], message.get("max_bytes", READ_BYTES))
        except FetchRefused as exc:
            raise HostRefusal(exc.code, f"{exc} ({frame.limit})" if exc.code == "timeout" else str(exc)) from None

    def _host_http_close(self, frame: Frame, message: dict[str, Any]) -> dict[str, Any]:
        if frame.streams is not None:
            frame.streams.close(message["stream"])
        return {}

    def _kv_scope(self, frame: Frame) -> tuple[str, str, str]:
        if not frame.node.component.grant.kv:
            raise HostRefusal("not_granted", f"kv is not granted to `{frame.node.name}` (add `grant: {{kv: true}}`)")
        return (self.plan.kv_scope, frame.node.name, frame.session)

    def _host_kv_get(self, frame: Frame, message: dict[str, Any]) -> dict[str, Any]:
        scope = self._kv_scope(frame)
        try:
            return {"value": self.kv.get(scope, message["key"])}
        except KvKeyInvalid as exc:
            raise HostRefusal("bad_request", f"kv_get: {exc}") from None
        except TooLarge as exc:  # a stored value past the JSON limits
            raise HostRefusal("too_large", f"kv_get: {exc}") from None

    def _host_kv_set(self, frame: Frame, message: dict[str, Any]) -> dict[str, Any]:
        scope = self._kv_scope(frame)
        try:
            self.kv.set(scope, message["key"], message["value"])
        except KvKeyInvalid as exc:
            raise HostRefusal("bad_request", f"kv_set: {exc}") from None
        except TooLarge as exc:  # the value, or the plug-in's quota
            raise HostRefusal("too_large", f"kv_set: {exc}") from None
        return {}

    def _host_emit(self, frame: Frame, message: dict[str, Any]) -> dict[str, Any]:
        """A chunk goes straight to on_chunk, so one is bounded (MAX_CHUNK_CHARS) and refused whole
        when longer; log and progress lines go through `_log`'s bounds."""
        kind = message["type"]
        if kind == "chunk":
            text = message["text"]
            if len(text) > MAX_CHUNK_CHARS:
                raise HostRefusal("bad_request", f"emit: a chunk of {len(text)} characters is over the "
                                                 f"{MAX_CHUNK_CHARS}-character limit (send it in several)")
            if self.on_chunk is not None:
                self.on_chunk(frame.node.name, text)
        elif kind == "log":
            self._log(frame.node, message.get("level", "info"), message["message"])
        else:
            done, total = message.get("done"), message.get("total")
            text = message.get("message", "")
            self._log(frame.node, "info", f"progress {done}/{total} {text}".strip() if total else text)
        return {}


_STALE_INSTANCE = "unable to clear error message"  # Extism's first step of a call trapped: no guest code ran
_EXPORTS: dict[str, bytes] = {}  # export names as C strings, encoded once (bounded)


def _plugin_call(plugin: extism.Plugin, export: str, data: bytes, context: Frame) -> bytes:
    """extism.Plugin.call(export, data, host_context=context) without its per-call Python layers: the
    same C calls in the same order and the same extism.Error on failure (test_runtime_fastcheck.py
    holds the two to agreement), ~1 µs less per call. `handle` lives until the call has returned."""
    name = _EXPORTS.get(export)
    if name is None:
        name = export.encode()
        if len(_EXPORTS) < 16:  # `call` and the few others tests and `cspm call` name
            _EXPORTS[export] = name
    if isinstance(data, str):
        data = data.encode()
    pointer = plugin.plugin
    handle = ffi.new_handle(context)
    rc = lib.extism_plugin_call_with_host_context(pointer, name, data, len(data), handle)
    error = lib.extism_plugin_error(pointer)
    if error != ffi.NULL:
        raise extism.Error(ffi.string(error).decode())
    if rc != 0:
        raise extism.Error(f"Error code: {rc}")
    return ffi.buffer(lib.extism_plugin_output_data(pointer), lib.extism_plugin_output_length(pointer))[:]


def _worded(function: str, message: Any, exc: MessageInvalid) -> str:
    """The compiled check's message, or what a tool input must be when that is what is wrong: its
    `oneOf` reads "data must be valid exactly by one definition (0 matches found)", which helps nobody."""
    if function == "call_tool" and isinstance(message, dict):
        text, args = message.get("input"), message.get("arguments")
        if ("input" in message) == ("arguments" in message) or ("input" in message and not isinstance(text, str)) \
                or ("arguments" in message and not isinstance(args, dict)):
            return "a tool input needs `input` (text) or `arguments` (an object), not both"
    return str(exc)


def _usage(span: Span, response: dict[str, Any]) -> None:
    usage = response.get("usage") or {}
    span.input_tokens = usage.get("input_tokens")
    span.output_tokens = usage.get("output_tokens")


__all__ = ["CalleeFailed", "CspmError", "RunResult", "Runtime"]
