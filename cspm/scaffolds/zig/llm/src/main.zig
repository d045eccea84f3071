//! {{name}}: an offline stand-in LLM. It answers with the last user message after a prefix, which
//! is enough to build and test an app before a real model (or a REST API) takes its place.
const std = @import("std");
const cs = @import("chainsocket");

/// A "token" here is a word.
fn countWords(text: []const u8) u64 {
    var words: u64 = 0;
    var it = std.mem.tokenizeAny(u8, text, " \t\n\r\x0b\x0c");
    while (it.next()) |_| words += 1;
    return words;
}

/// `cs.run` parses the input into a `cs.LlmInput` (messages, stop, max_tokens, ...), passes an
/// arena that is freed when the call returns, and writes the returned `cs.LlmOutput` as JSON.
fn answer(a: std.mem.Allocator, in: cs.LlmInput) !cs.LlmOutput {
    var last_user: []const u8 = "";
    var input_tokens: u64 = 0;
    for (in.messages) |m| {
        input_tokens += countWords(m.content);
        if (m.role == .user) last_user = m.content;
    }
    const prefix = try cs.config(a, "prefix") orelse "You said: "; // plugin.yaml declares it
    const content = try std.mem.concat(a, u8, &.{ prefix, last_user });
    return .{
        .content = content,
        .finish_reason = .stop,
        .usage = .{ .input_tokens = input_tokens, .output_tokens = countWords(content) },
    };
}

/// The export the host runs.
export fn call() i32 {
    return cs.run(answer);
}
