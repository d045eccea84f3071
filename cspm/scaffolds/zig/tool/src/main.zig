//! {{name}}: a Chainsocket tool that counts the words of a text.
//!
//! An agent (or `cspm call . --args '{"text": "..."}'`) sends structured arguments, which the host
//! checks against the input_schema of plugin.yaml before this code runs; a person (or `cspm call .
//! --input "..."`) sends plain text. The answer is "<N> <unit>", unit from the app's config.
const std = @import("std");
const cs = @import("chainsocket");

/// `cs.run` parses the input into a `cs.ToolInput` (`input` or `arguments`), passes an arena that is
/// freed when the call returns, and writes the returned `cs.ToolOutput` as JSON. An error fails the
/// call: `cs.fail` sets its message.
fn countWords(a: std.mem.Allocator, in: cs.ToolInput) !cs.ToolOutput {
    const text: []const u8 = if (in.arguments) |args| text: {
        // `arguments` is a std.json.Value; the host checked it has a string `text`.
        const value = if (args == .object) args.object.get("text") else null;
        if (value) |v| if (v == .string) break :text v.string;
        return cs.fail(a, "expected a string `text` in the arguments", .{});
    } else in.input orelse "";

    var words: usize = 0;
    var it = std.mem.tokenizeAny(u8, text, " \t\n\r\x0b\x0c");
    while (it.next()) |_| words += 1;

    const unit = try cs.config(a, "unit") orelse "words"; // plugin.yaml declares it; the app sets it
    return .{ .output = try std.fmt.allocPrint(a, "{d} {s}", .{ words, unit }) };
}

/// The export the host runs.
export fn call() i32 {
    return cs.run(countWords);
}
