//! {{name}}: a Chainsocket agent that hands its input to the first tool the app gave it and
//! answers with what the tool said. A real agent would ask an LLM (`cs.callLlm`) which tool to
//! call, and how.
const std = @import("std");
const cs = @import("chainsocket");

/// `cs.run` parses the input into a `cs.AgentInput` (the input text, the session, and descriptors
/// of the llms, tools and agents the app gave this agent), passes an arena that is freed when the
/// call returns, and writes the returned `cs.AgentOutput` as JSON.
fn handle(a: std.mem.Allocator, in: cs.AgentInput) !cs.AgentOutput {
    // Tools come from app.yaml, by name: an agent never hard-codes one.
    if (in.tools.len == 0)
        return failed("this agent has no tool: list one under its `tools:` in app.yaml");
    const tool = in.tools[0].name;

    const r = cs.callTool(a, tool, .{ .input = in.input }) catch |err| {
        // The host refused the call or the tool crashed: error.HostError, with the host's code
        // ("not_declared", "callee_failed", ...) and message in cs.lastError(). Report it as the
        // answer rather than failing the run.
        const msg = if (err == error.HostError) cs.lastError().?.message else @errorName(err);
        return failed(try std.fmt.allocPrint(a, "{s} failed: {s}", .{ tool, msg }));
    };
    if (r.is_error) // the tool ran and says what went wrong
        return failed(try std.fmt.allocPrint(a, "{s} failed: {s}", .{ tool, r.output }));
    return .{
        .output = try std.fmt.allocPrint(a, "{s} says: {s}", .{ tool, r.output }),
        .finish_reason = .final_answer,
    };
}

fn failed(output: []const u8) cs.AgentOutput {
    return .{ .output = output, .finish_reason = .@"error" };
}

/// The export the host runs.
export fn call() i32 {
    return cs.run(handle);
}
