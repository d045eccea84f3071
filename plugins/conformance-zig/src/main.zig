//! The Zig SDK conformance plug-in: the exports of docs/sdk/conformance.md, written with the
//! `chainsocket` module only (no direct kernel imports).

const std = @import("std");
const cs = @import("chainsocket");
const json = std.json;
const Allocator = std.mem.Allocator;

// ---- call, by config `kind` ------------------------------------------------------------------

export fn call() i32 {
    const gpa = std.heap.wasm_allocator;
    const kind = cs.config(gpa, "kind") catch null;
    defer if (kind) |k| gpa.free(k);
    const k = kind orelse "tool";
    if (std.mem.eql(u8, k, "llm")) return cs.run(llm);
    if (std.mem.eql(u8, k, "agent")) return cs.run(agent);
    return cs.run(tool);
}

fn tool(a: Allocator, in: cs.ToolInput) !cs.ToolOutput {
    if (in.arguments) |args| return .{ .output = try cs.stringify(a, args) };
    const s = in.input orelse "";
    if (std.mem.startsWith(u8, s, "http://") or std.mem.startsWith(u8, s, "https://")) {
        const r = cs.httpFetch(a, .{ .method = .GET, .url = s }) catch |err| switch (err) {
            error.HostError => return .{
                .output = try std.mem.concat(a, u8, &.{ "error: ", cs.lastError().?.message }),
                .is_error = true,
            },
            else => return err,
        };
        if (r.status >= 400) return .{ .output = try std.fmt.allocPrint(a, "HTTP {d}", .{r.status}), .is_error = true };
        return .{ .output = r.body };
    }
    return .{ .output = s };
}

fn llm(a: Allocator, in: cs.LlmInput) !cs.LlmOutput {
    const last = if (in.messages.len > 0) in.messages[in.messages.len - 1].content else "";
    return .{
        .content = try std.mem.concat(a, u8, &.{ "echo: ", last }),
        .finish_reason = .stop,
        .usage = .{ .input_tokens = in.messages.len, .output_tokens = 1 },
    };
}

fn agent(a: Allocator, in: cs.AgentInput) !cs.AgentOutput {
    if (in.tools.len > 0) {
        const r = cs.callTool(a, in.tools[0].name, .{ .input = in.input }) catch |err| switch (err) {
            error.HostError => return .{
                .output = try std.mem.concat(a, u8, &.{ "error: ", cs.lastError().?.message }),
                .finish_reason = .@"error",
            },
            else => return err,
        };
        return .{ .output = r.output, .finish_reason = .final_answer };
    }
    if (in.llms.len > 0) {
        var msgs: [2]cs.Message = undefined;
        var n: usize = 0;
        if (try cs.config(a, "prompt")) |prompt| if (prompt.len > 0) {
            msgs[n] = .{ .role = .system, .content = prompt };
            n += 1;
        };
        msgs[n] = .{ .role = .user, .content = in.input };
        n += 1;
        const r = try cs.callLlm(a, in.llms[0].name, .{ .messages = msgs[0..n] });
        return .{ .output = r.content, .finish_reason = .final_answer };
    }
    if (in.agents.len > 0) {
        return cs.callAgent(a, in.agents[0].name, .{ .input = in.input }) catch |err| switch (err) {
            error.HostError => .{
                .output = try std.mem.concat(a, u8, &.{ "error: ", cs.lastError().?.message }),
                .finish_reason = .@"error",
            },
            else => err,
        };
    }
    return .{ .output = in.input, .finish_reason = .final_answer };
}

// ---- kernel exports ----------------------------------------------------------------------------

export fn echo() i32 {
    return cs.run(struct {
        fn f(_: Allocator, in: []const u8) ![]const u8 {
            return in;
        }
    }.f);
}

export fn config_get() i32 {
    return cs.run(struct {
        fn f(a: Allocator, key: []const u8) ![]const u8 {
            return try cs.config(a, key) orelse cs.fail(a, "missing config key: {s}", .{key});
        }
    }.f);
}

export fn count() i32 {
    return cs.run(struct {
        fn f(a: Allocator, _: []const u8) ![]const u8 {
            const cur = try cs.varGet(a, "count");
            const n = if (cur) |c| try std.fmt.parseInt(u64, c, 10) else 0;
            const s = try std.fmt.allocPrint(a, "{d}", .{n + 1});
            try cs.varSet("count", s);
            return s;
        }
    }.f);
}

export fn fail() i32 {
    return cs.run(struct {
        fn f(a: Allocator, msg: []const u8) ![]const u8 {
            return cs.fail(a, "{s}", .{msg});
        }
    }.f);
}

/// `crash`: Zig's own failure, a trap after setting the message as the error (a freestanding
/// `@panic` traps without a message).
export fn crash() i32 {
    var buf: [4096]u8 = undefined;
    var fba = std.heap.FixedBufferAllocator.init(&buf);
    const msg = cs.input(fba.allocator()) catch "crash";
    cs.setError(msg);
    @trap();
}

// `log` is also libm's log(f64) in compiler_rt: `export fn log` would clash (see cs.ExportAs).
comptime {
    _ = cs.ExportAs("log", logExport);
}

fn logExport() callconv(.c) i32 {
    return cs.run(struct {
        fn f(a: Allocator, msg: []const u8) ![]const u8 {
            cs.log(.info, msg);
            cs.log(.warn, try std.mem.concat(a, u8, &.{ "warn:", msg }));
            return "logged";
        }
    }.f);
}

// ---- host functions ----------------------------------------------------------------------------

/// `<host function name>\n<payload>` → the raw response bytes.
export fn raw() i32 {
    return cs.run(struct {
        fn f(a: Allocator, in: []const u8) ![]const u8 {
            const nl = std.mem.indexOfScalar(u8, in, '\n') orelse in.len;
            const payload = if (nl < in.len) in[nl + 1 ..] else "";
            return cs.hostCall(a, in[0..nl], payload) catch |err| switch (err) {
                error.UnknownHostFunction => cs.fail(a, "unknown host function: {s}", .{in[0..nl]}),
                else => err,
            };
        }
    }.f);
}

const HostCase = struct { @"fn": []const u8, request: json.Value };

/// `{"fn", "request"}` → the typed wrapper's response, or the error document it got.
export fn host() i32 {
    return cs.run(struct {
        fn f(a: Allocator, c: HostCase) ![]const u8 {
            return typed(a, c) catch |err| switch (err) {
                error.HostError => cs.stringify(a, .{ .@"error" = cs.lastError().? }),
                else => err,
            };
        }
    }.f);
}

fn parse(comptime T: type, a: Allocator, v: json.Value) !T {
    return json.parseFromValueLeaky(T, a, v, cs.parse_options);
}

fn typed(a: Allocator, c: HostCase) ![]const u8 {
    const f = std.meta.stringToEnum(cs.HostFn, c.@"fn") orelse
        return cs.fail(a, "unknown host function: {s}", .{c.@"fn"});
    const req = c.request;
    const Named = struct { name: []const u8 };
    return switch (f) {
        .call_llm => cs.stringify(a, try cs.callLlm(a, (try parse(Named, a, req)).name, try parse(cs.LlmInput, a, req))),
        .call_tool => cs.stringify(a, try cs.callTool(a, (try parse(Named, a, req)).name, try parse(cs.ToolInput, a, req))),
        .call_agent => cs.stringify(a, try cs.callAgent(a, (try parse(Named, a, req)).name, try parse(cs.AgentRequest, a, req))),
        .http_fetch => cs.stringify(a, try cs.httpFetch(a, try parse(cs.HttpRequest, a, req))),
        .kv_get => cs.stringify(a, .{ .value = try cs.kvGet(a, (try parse(struct { key: []const u8 }, a, req)).key) }),
        .kv_set => {
            const r = try parse(struct { key: []const u8, value: json.Value = .null }, a, req);
            try cs.kvSet(a, r.key, r.value);
            return "{}";
        },
        .emit => {
            const E = struct {
                type: []const u8,
                text: []const u8 = "",
                message: ?[]const u8 = null,
                level: ?cs.LogLevel = null,
                done: ?u64 = null,
                total: ?u64 = null,
            };
            const e = try parse(E, a, req);
            const event: cs.Event = if (std.mem.eql(u8, e.type, "chunk"))
                .{ .chunk = .{ .text = e.text } }
            else if (std.mem.eql(u8, e.type, "progress"))
                .{ .progress = .{ .message = e.message, .done = e.done, .total = e.total } }
            else if (std.mem.eql(u8, e.type, "log"))
                .{ .log = .{ .level = e.level, .message = e.message orelse "" } }
            else
                return cs.fail(a, "unknown event type: {s}", .{e.type});
            try cs.emit(a, event);
            return "{}";
        },
        // the streaming extension has no typed wrapper here: the `raw` export exercises it
        .http_open, .http_read, .http_close => cs.fail(a, "no typed call for {s}: use the raw export", .{c.@"fn"}),
    };
}
