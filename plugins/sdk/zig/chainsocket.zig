//! Chainsocket SDK for Zig plug-ins (ABI 1, see docs/abi.md and docs/sdk/zig.md).
//!
//! Three layers, smallest first:
//!   * `kernel`: the raw imports of the Extism kernel (`extism:host/env`);
//!   * plug-in I/O: `input`, `output`, `config`, `varGet`/`varSet`, `log`, `setError`;
//!   * Chainsocket host functions (`extism:host/user`): `hostCall` (raw bytes) and the typed
//!     `callLlm`, `callTool`, `callAgent`, `httpFetch`, `kvGet`, `kvSet`, `emit`.
//! `run` glues them into an exported `call`: JSON in, JSON out, errors to `error_set`.
//!
//! Memory: every function that returns data takes an allocator and allocates the result in it
//! (JSON is parsed "leaky": pass an arena, as `run` does, and free it all at once).
//! Extism memory handles never escape this file, so the ownership rules of the kernel
//! (config_get/var_*/log_*/error_set take the handles passed to them) are handled once, here.

const std = @import("std");
const json = std.json;
const Allocator = std.mem.Allocator;

// ---------------------------------------------------------------------------------------------
// Kernel ABI
// ---------------------------------------------------------------------------------------------

/// The Extism kernel imports. Handles and offsets are addresses in the kernel's own memory, not
/// in this module's linear memory: bytes cross over only through the load/store functions.
/// `u64` is wasm `i64`; `u8` is wasm `i32`.
pub const kernel = struct {
    pub extern "extism:host/env" fn alloc(len: u64) u64;
    pub extern "extism:host/env" fn free(h: u64) void;
    pub extern "extism:host/env" fn length(h: u64) u64;
    pub extern "extism:host/env" fn load_u8(off: u64) u8;
    pub extern "extism:host/env" fn load_u64(off: u64) u64;
    pub extern "extism:host/env" fn store_u8(off: u64, v: u8) void;
    pub extern "extism:host/env" fn store_u64(off: u64, v: u64) void;
    pub extern "extism:host/env" fn input_length() u64;
    pub extern "extism:host/env" fn input_load_u8(off: u64) u8;
    pub extern "extism:host/env" fn input_load_u64(off: u64) u64;
    pub extern "extism:host/env" fn output_set(h: u64, len: u64) void;
    /// Takes ownership of `h`.
    pub extern "extism:host/env" fn error_set(h: u64) void;
    /// Takes ownership of `key`; returns 0 when the key is missing.
    pub extern "extism:host/env" fn config_get(key: u64) u64;
    /// Takes ownership of `key`; returns 0 when the var is missing.
    pub extern "extism:host/env" fn var_get(key: u64) u64;
    /// Takes ownership of both handles; `val == 0` deletes the var.
    pub extern "extism:host/env" fn var_set(key: u64, val: u64) void;
    /// The log functions take ownership of `h`.
    pub extern "extism:host/env" fn log_info(h: u64) void;
    pub extern "extism:host/env" fn log_debug(h: u64) void;
    pub extern "extism:host/env" fn log_warn(h: u64) void;
    pub extern "extism:host/env" fn log_error(h: u64) void;
};

/// The Chainsocket host functions: JSON request handle in (not taken), JSON response handle out
/// (ours to free). Kept private: `hostCall` is the public raw entry point.
const user = struct {
    extern "extism:host/user" fn call_llm(h: u64) u64;
    extern "extism:host/user" fn call_tool(h: u64) u64;
    extern "extism:host/user" fn call_agent(h: u64) u64;
    extern "extism:host/user" fn http_fetch(h: u64) u64;
    extern "extism:host/user" fn kv_get(h: u64) u64;
    extern "extism:host/user" fn kv_set(h: u64) u64;
    extern "extism:host/user" fn emit(h: u64) u64;
    // the streaming extension (docs/abi.md, "Streaming HTTP")
    extern "extism:host/user" fn http_open(h: u64) u64;
    extern "extism:host/user" fn http_read(h: u64) u64;
    extern "extism:host/user" fn http_close(h: u64) u64;
};

/// Copies `bytes` into a fresh kernel block. Word-wise (one host call per 8 bytes, not per byte):
/// that is what keeps a 1 MiB payload at milliseconds. Returns 0 for an empty slice (the kernel
/// never allocates 0 bytes).
fn toKernel(bytes: []const u8) error{OutOfMemory}!u64 {
    if (bytes.len == 0) return 0;
    const h = kernel.alloc(bytes.len);
    if (h == 0) return error.OutOfMemory;
    var i: usize = 0;
    while (i + 8 <= bytes.len) : (i += 8)
        kernel.store_u64(h + i, std.mem.readInt(u64, bytes[i..][0..8], .little));
    while (i < bytes.len) : (i += 1) kernel.store_u8(h + i, bytes[i]);
    return h;
}

/// Copies a kernel block into memory from `a` and frees the block (we own every handle we read).
fn fromKernel(a: Allocator, h: u64) error{OutOfMemory}![]u8 {
    if (h == 0) return &.{};
    defer kernel.free(h);
    const buf = try a.alloc(u8, @intCast(kernel.length(h)));
    var i: usize = 0;
    while (i + 8 <= buf.len) : (i += 8)
        std.mem.writeInt(u64, buf[i..][0..8], kernel.load_u64(h + i), .little);
    while (i < buf.len) : (i += 1) buf[i] = kernel.load_u8(h + i);
    return buf;
}

// ---------------------------------------------------------------------------------------------
// Plug-in I/O
// ---------------------------------------------------------------------------------------------

/// Options for all JSON parsing: unknown fields are ignored because ABI 1 may gain optional
/// fields (docs/abi.md §6) and an old plug-in must keep working.
pub const parse_options: json.ParseOptions = .{
    .ignore_unknown_fields = true,
    .duplicate_field_behavior = .use_last,
};
/// Options for all JSON writing: absent optional fields are left out instead of sent as null
/// (the host's schemas reject `"stop": null`).
pub const stringify_options: json.Stringify.Options = .{ .emit_null_optional_fields = false };

/// The raw input of the current call.
pub fn input(a: Allocator) error{OutOfMemory}![]u8 {
    const buf = try a.alloc(u8, @intCast(kernel.input_length()));
    var i: usize = 0;
    while (i + 8 <= buf.len) : (i += 8)
        std.mem.writeInt(u64, buf[i..][0..8], kernel.input_load_u64(i), .little);
    while (i < buf.len) : (i += 1) buf[i] = kernel.input_load_u8(i);
    return buf;
}

/// The input parsed as JSON into `T` (strings may point into memory from `a`).
pub fn inputJson(comptime T: type, a: Allocator) !T {
    return json.parseFromSliceLeaky(T, a, try input(a), parse_options);
}

/// Sets the output of the current call (the last call wins).
pub fn output(bytes: []const u8) error{OutOfMemory}!void {
    kernel.output_set(try toKernel(bytes), bytes.len);
}

/// Serialises `value` as compact JSON and sets it as the output.
pub fn outputJson(a: Allocator, value: anytype) error{OutOfMemory}!void {
    const bytes = try stringify(a, value);
    defer a.free(bytes);
    try output(bytes);
}

/// `value` as compact JSON, without null optional fields.
pub fn stringify(a: Allocator, value: anytype) error{OutOfMemory}![]u8 {
    return json.Stringify.valueAlloc(a, value, stringify_options);
}

/// Sets the error message of the current call; the export must then return non-zero.
/// An empty message would be no error at all for the kernel (`error_set(0)` clears it), so it
/// becomes "plug-in failed".
pub fn setError(msg: []const u8) void {
    const h = toKernel(if (msg.len == 0) "plug-in failed" else msg) catch return;
    kernel.error_set(h);
}

/// A config value (Extism config values are strings; non-string YAML values arrive as JSON text),
/// or null when the key is missing.
pub fn config(a: Allocator, key: []const u8) error{OutOfMemory}!?[]u8 {
    if (key.len == 0) return null; // no block for "": the kernel would be handed handle 0
    const h = kernel.config_get(try toKernel(key));
    if (h == 0) return null;
    return try fromKernel(a, h);
}

/// A plug-in var (kept across calls of this instance), or null when unset.
pub fn varGet(a: Allocator, key: []const u8) error{OutOfMemory}!?[]u8 {
    if (key.len == 0) return null;
    const h = kernel.var_get(try toKernel(key));
    if (h == 0) return null;
    return try fromKernel(a, h);
}

/// Sets a plug-in var; `null` (or an empty value, which the kernel cannot store) deletes it.
pub fn varSet(key: []const u8, value: ?[]const u8) error{OutOfMemory}!void {
    if (key.len == 0) return;
    const k = try toKernel(key);
    kernel.var_set(k, try toKernel(value orelse ""));
}

pub const LogLevel = enum { debug, info, warn, @"error" };

/// Logs through the kernel; the host shows these lines with `cspm run -v`. Never fails: a log
/// line that cannot be allocated is dropped.
pub fn log(level: LogLevel, msg: []const u8) void {
    const h = toKernel(msg) catch return;
    if (h == 0) return;
    switch (level) {
        .debug => kernel.log_debug(h),
        .info => kernel.log_info(h),
        .warn => kernel.log_warn(h),
        .@"error" => kernel.log_error(h),
    }
}

// ---------------------------------------------------------------------------------------------
// Host functions: raw
// ---------------------------------------------------------------------------------------------

pub const HostFn = enum { call_llm, call_tool, call_agent, http_fetch, kv_get, kv_set, emit, http_open, http_read, http_close };

pub const Error = error{
    /// The host answered with an error document: see `lastError()`.
    HostError,
    /// The host answered with JSON that does not match the expected response.
    BadResponse,
    /// `hostCall` with a name that is not a Chainsocket host function.
    UnknownHostFunction,
    OutOfMemory,
};

/// The body of an error document `{"error": {"code", "message"}}`. `code` is one of the ABI codes
/// (docs/abi.md): `bad_request`, `not_declared`, `cycle`, `depth`, `not_granted`, `unsupported`,
/// `callee_failed`, `http_error`, `timeout` (the call's wall-clock limit, its `timeout_ms` or its
/// caller's, ran out), `too_large`, `internal`.
pub const HostError = struct { code: []const u8, message: []const u8 };

var last_error: ?HostError = null;

/// The error document behind the latest `error.HostError` (its strings live in the allocator
/// that was passed to the failing call).
pub fn lastError() ?HostError {
    return last_error;
}

/// Calls host function `f` with `request` bytes as they are and returns the response bytes as
/// they are (an error document included: the raw layer does not interpret JSON).
/// `f` is comptime so that a module imports only the host functions it really calls (the
/// import section is what tells a reader which host functions a plug-in uses).
pub fn hostCallFn(a: Allocator, comptime f: HostFn, request: []const u8) error{OutOfMemory}![]u8 {
    const req = try toKernel(request);
    // The host does not take the request handle: free it ourselves once answered.
    defer if (req != 0) kernel.free(req);
    const resp = switch (f) {
        .call_llm => user.call_llm(req),
        .call_tool => user.call_tool(req),
        .call_agent => user.call_agent(req),
        .http_fetch => user.http_fetch(req),
        .kv_get => user.kv_get(req),
        .kv_set => user.kv_set(req),
        .emit => user.emit(req),
        .http_open => user.http_open(req),
        .http_read => user.http_read(req),
        .http_close => user.http_close(req),
    };
    return fromKernel(a, resp);
}

/// `hostCallFn` by run-time name (e.g. "call_tool"): the raw `host_call(fn_name, bytes) -> bytes`.
/// Using it imports all ten host functions.
pub fn hostCall(a: Allocator, fn_name: []const u8, request: []const u8) Error![]u8 {
    const f = std.meta.stringToEnum(HostFn, fn_name) orelse return error.UnknownHostFunction;
    return switch (f) {
        inline else => |cf| hostCallFn(a, cf, request),
    };
}

/// Serialises `request`, calls `f`, and parses the response into `T`; an error document
/// becomes `error.HostError` (and `lastError()`).
fn typedCall(comptime T: type, a: Allocator, comptime f: HostFn, request: anytype) Error!T {
    const req = try stringify(a, request);
    defer a.free(req);
    const raw = try hostCallFn(a, f, req);
    // First pass: only the top-level `error`, skipping everything else without allocating.
    // Only an object counts: `call_llm` responses may carry an `error` *string*.
    const Probe = struct { @"error": ?json.Value = null };
    const probe = json.parseFromSliceLeaky(Probe, a, raw, parse_options) catch |err| switch (err) {
        error.OutOfMemory => return error.OutOfMemory,
        else => return error.BadResponse,
    };
    if (probe.@"error") |e| if (e == .object) {
        const doc = json.parseFromValueLeaky(HostError, a, e, parse_options) catch
            HostError{ .code = "internal", .message = "malformed error document" };
        last_error = doc;
        return error.HostError;
    };
    return json.parseFromSliceLeaky(T, a, raw, parse_options) catch |err| switch (err) {
        error.OutOfMemory => error.OutOfMemory,
        else => error.BadResponse,
    };
}

// ---------------------------------------------------------------------------------------------
// Host functions: typed (fields as in docs/abi.md and cspm/schemas/abi/v1.json)
// ---------------------------------------------------------------------------------------------

pub const Role = enum { system, user, assistant, tool };

pub const ToolCall = struct { id: []const u8, name: []const u8, arguments: json.Value };

pub const Message = struct {
    role: Role,
    content: []const u8,
    tool_call_id: ?[]const u8 = null,
    tool_calls: ?[]const ToolCall = null,
};

pub const ToolSpec = struct {
    name: []const u8,
    description: ?[]const u8 = null,
    input_schema: ?json.Value = null,
};

/// What an llm plug-in receives, and (with a name) what `callLlm` sends.
pub const LlmInput = struct {
    messages: []const Message,
    stop: ?[]const []const u8 = null,
    max_tokens: ?u32 = null,
    temperature: ?f64 = null,
    top_p: ?f64 = null,
    seed: ?i64 = null,
    stream: ?bool = null,
    tools: ?[]const ToolSpec = null,
    tool_choice: ?[]const u8 = null,
};

pub const FinishReason = enum { stop, length, @"error", tool_calls };
pub const Usage = struct { input_tokens: u64, output_tokens: u64 };

/// What an llm plug-in returns and `callLlm` answers.
pub const LlmOutput = struct {
    content: []const u8,
    finish_reason: FinishReason,
    usage: Usage,
    tool_calls: ?[]const ToolCall = null,
    @"error": ?[]const u8 = null,
};

/// What a tool plug-in receives: exactly one of `input` (free text) or `arguments` (an object).
pub const ToolInput = struct {
    input: ?[]const u8 = null,
    arguments: ?json.Value = null,
};

pub const ToolOutput = struct { output: []const u8, is_error: bool = false };

/// Describes an llm/tool/agent the app gave an agent, so that it never hard-codes names.
pub const Descriptor = struct {
    name: []const u8,
    description: []const u8 = "",
    input_schema: ?json.Value = null,
};

/// What an agent plug-in receives.
pub const AgentInput = struct {
    input: []const u8,
    session: []const u8 = "",
    llms: []const Descriptor = &.{},
    tools: []const Descriptor = &.{},
    agents: []const Descriptor = &.{},
};

/// What `callAgent` sends (with a name).
pub const AgentRequest = struct { input: []const u8, session: ?[]const u8 = null };

pub const AgentFinishReason = enum { final_answer, max_steps, @"error" };
pub const AgentOutput = struct { output: []const u8, finish_reason: AgentFinishReason };

pub const Method = enum { GET, POST, PUT, PATCH, DELETE, HEAD, OPTIONS };
/// A string-to-string JSON object (`headers.map.put(a, k, v)`).
pub const Headers = json.ArrayHashMap([]const u8);

pub const HttpRequest = struct {
    method: Method = .GET,
    url: []const u8,
    headers: ?Headers = null,
    body: ?[]const u8 = null,
};

pub const HttpResponse = struct { status: u16, headers: Headers = .{}, body: []const u8 };

/// An `emit` event: a streamed chunk of the answer, progress, or a log line.
pub const Event = union(enum) {
    chunk: struct { text: []const u8 },
    progress: struct { message: ?[]const u8 = null, done: ?u64 = null, total: ?u64 = null },
    log: struct { level: ?LogLevel = null, message: []const u8 },

    /// Flat on the wire: `{"type": "<tag>", <payload fields>}`.
    pub fn jsonStringify(self: Event, jw: anytype) !void {
        try jw.beginObject();
        try jw.objectField("type");
        try jw.write(@tagName(self));
        switch (self) {
            inline else => |payload| try writeFields(jw, payload),
        }
        try jw.endObject();
    }
};

/// Writes the fields of struct `v` into the object being written, skipping null optionals.
fn writeFields(jw: anytype, v: anytype) !void {
    const S = @typeInfo(@TypeOf(v)).@"struct";
    inline for (S.field_names) |name| {
        const field = @field(v, name);
        const absent = @typeInfo(@TypeOf(field)) == .optional and field == null;
        if (!absent) {
            try jw.objectField(name);
            try jw.write(field);
        }
    }
}

/// `{"name": ..., <fields of body>}`: the callee's input type plus the routing name, so that
/// `callLlm` takes the very `LlmInput` an llm plug-in receives.
fn Named(comptime T: type) type {
    return struct {
        name: []const u8,
        body: T,
        pub fn jsonStringify(self: @This(), jw: anytype) !void {
            try jw.beginObject();
            try jw.objectField("name");
            try jw.write(self.name);
            try writeFields(jw, self.body);
            try jw.endObject();
        }
    };
}

/// Calls the LLM the app config names `name` (e.g. "openai", never a package name).
pub fn callLlm(a: Allocator, name: []const u8, request: LlmInput) Error!LlmOutput {
    return typedCall(LlmOutput, a, .call_llm, Named(LlmInput){ .name = name, .body = request });
}

/// Calls the tool the app config names `name`.
pub fn callTool(a: Allocator, name: []const u8, request: ToolInput) Error!ToolOutput {
    return typedCall(ToolOutput, a, .call_tool, Named(ToolInput){ .name = name, .body = request });
}

/// Calls the agent the app config names `name`.
pub fn callAgent(a: Allocator, name: []const u8, request: AgentRequest) Error!AgentOutput {
    return typedCall(AgentOutput, a, .call_agent, Named(AgentRequest){ .name = name, .body = request });
}

/// An HTTP request through the host (only to granted hosts; secrets are injected by the host).
pub fn httpFetch(a: Allocator, request: HttpRequest) Error!HttpResponse {
    return typedCall(HttpResponse, a, .http_fetch, request);
}

/// A value of the persistent key-value store; `.null` when absent.
pub fn kvGet(a: Allocator, key: []const u8) Error!json.Value {
    const R = struct { value: json.Value = .null };
    return (try typedCall(R, a, .kv_get, .{ .key = key })).value;
}

/// Stores any JSON-serialisable `value` (max 1 MiB once serialised).
pub fn kvSet(a: Allocator, key: []const u8, value: anytype) Error!void {
    _ = try typedCall(struct {}, a, .kv_set, .{ .key = key, .value = value });
}

/// Sends an event to whoever runs the app (stream chunks, progress, logs).
pub fn emit(a: Allocator, event: Event) Error!void {
    _ = try typedCall(struct {}, a, .emit, event);
}

/// Streams a piece of the answer (`emit` of a chunk).
pub fn emitChunk(a: Allocator, text: []const u8) Error!void {
    return emit(a, .{ .chunk = .{ .text = text } });
}

/// Reports progress (`emit` of progress); each of `message`, `done` and `total` may be null.
pub fn emitProgress(a: Allocator, message: ?[]const u8, done: ?u64, total: ?u64) Error!void {
    return emit(a, .{ .progress = .{ .message = message, .done = done, .total = total } });
}

/// Logs through the Chainsocket layer (`emit` of a log line), level first like `log` here, `EmitLog`
/// in Go and `cs_emit_log` in C; a null level is the host's default.
pub fn emitLog(a: Allocator, level: ?LogLevel, message: []const u8) Error!void {
    return emit(a, .{ .log = .{ .level = level, .message = message } });
}

// ---------------------------------------------------------------------------------------------
// Writing exports
// ---------------------------------------------------------------------------------------------

var pending_error: ?[]const u8 = null;

/// Fails the current `run` with a formatted message (instead of the error's name):
/// `return cs.fail(a, "missing config key: {s}", .{key});`
pub fn fail(a: Allocator, comptime fmt: []const u8, args: anytype) error{ PluginFailed, OutOfMemory } {
    pending_error = try std.fmt.allocPrint(a, fmt, args);
    return error.PluginFailed;
}

/// Runs `handler(allocator, input) !output` as the body of an export and returns its status:
/// `export fn call() i32 { return cs.run(handle); }`.
/// The input is parsed as JSON into the handler's second parameter type and the result is
/// written as JSON, except `[]const u8`, which passes bytes through unchanged (and `void`, which
/// writes no output). The allocator is
/// an arena freed when the call returns. An error becomes `error_set` and status 1: the message
/// of `fail`, "<code>: <message>" for `error.HostError`, else the error's name.
pub fn run(comptime handler: anytype) i32 {
    const info = @typeInfo(@TypeOf(handler)).@"fn";
    const In = info.param_types[1].?;
    var arena = std.heap.ArenaAllocator.init(std.heap.wasm_allocator);
    defer arena.deinit();
    const a = arena.allocator();
    pending_error = null;
    last_error = null;
    // The messages live in the arena: forget them before it goes.
    defer pending_error = null;
    defer last_error = null;

    body: {
        const in: In = if (In == []const u8)
            input(a) catch |err| break :body reportError(a, err)
        else
            inputJson(In, a) catch |err| {
                setError(std.fmt.allocPrint(a, "invalid input: {s}", .{@errorName(err)}) catch "invalid input");
                break :body;
            };
        const out = handler(a, in) catch |err| break :body reportError(a, err);
        if (@TypeOf(out) == void) {} else if (@TypeOf(out) == []const u8 or @TypeOf(out) == []u8)
            output(out) catch |err| break :body reportError(a, err)
        else
            outputJson(a, out) catch |err| break :body reportError(a, err);
        return 0;
    }
    return 1;
}

/// Exports `func` under the wasm export name `name` when `export fn name` cannot be used because
/// the name is also a libm/compiler_rt symbol that Zig links in (`log`, `exp`, `round`, ...):
/// the linker then reports "function signature mismatch" and drops the export. The function gets
/// a hidden symbol name and an LLVM `.export_name` directive sets the real export name.
/// Use at container level: `comptime { _ = cs.ExportAs("log", logExport); }`.
/// Needs a release mode (LLVM): Debug builds ignore the directive and would silently lose the
/// export, so they are refused at compile time.
pub fn ExportAs(comptime name: []const u8, comptime func: fn () callconv(.c) i32) type {
    if (@import("builtin").mode == .debug)
        @compileError("chainsocket.ExportAs(\"" ++ name ++ "\") needs -O ReleaseSmall/ReleaseSafe/ReleaseFast");
    return struct {
        const symbol = "chainsocket_export_" ++ name;
        comptime {
            @export(&func, .{ .name = symbol, .visibility = .hidden });
            asm (".export_name " ++ symbol ++ ", " ++ name ++ "\n.no_dead_strip " ++ symbol);
        }
    };
}

fn reportError(a: Allocator, err: anyerror) void {
    if (pending_error) |msg| return setError(msg);
    if (err == error.HostError) if (last_error) |e| {
        const msg = std.fmt.allocPrint(a, "{s}: {s}", .{ e.code, e.message }) catch e.message;
        return setError(msg);
    };
    setError(@errorName(err));
}
