//! calculator: a Chainsocket tool that evaluates arithmetic expressions with its own parser
//! (src/eval.zig) and answers with the result formatted for people and LLMs (src/format.zig).

const std = @import("std");
const cs = @import("chainsocket");
const eval = @import("eval.zig");
const format = @import("format.zig");
const Allocator = std.mem.Allocator;

/// Longer expressions are refused (in bytes, after the noise around them is removed).
const max_length = 4096;

export fn call() i32 {
    return cs.run(calculate);
}

/// `{"input": "2+2"}` or `{"arguments": {"expression": "2+2"}}` → `{"output": "4"}`; every
/// problem with the expression is an `is_error` answer, never a failed call.
fn calculate(a: Allocator, in: cs.ToolInput) !cs.ToolOutput {
    const raw = expressionOf(in) orelse return refuse(
        "expected {\"input\": \"<expression>\"} or {\"arguments\": {\"expression\": \"<expression>\"}}",
    );
    const expression = stripNoise(raw);
    if (expression.len > max_length) return refuse(try std.fmt.allocPrint(a, "expression too long: {d} bytes (the limit is {d}); split the calculation into smaller steps", .{ expression.len, max_length }));
    switch (try eval.evaluate(a, expression)) {
        .failure => |message| return refuse(message),
        .value => |value| {
            var buf: [format.max_len]u8 = undefined;
            return .{ .output = try a.dupe(u8, format.number(&buf, value)) };
        },
    }
}

fn refuse(message: []const u8) cs.ToolOutput {
    return .{ .output = message, .is_error = true };
}

fn expressionOf(in: cs.ToolInput) ?[]const u8 {
    if (in.input) |text| return text;
    const args = in.arguments orelse return null;
    if (args != .object) return null;
    const value = args.object.get("expression") orelse args.object.get("input") orelse return null;
    return switch (value) {
        .string => |s| s,
        .number_string => |s| s,
        else => null,
    };
}

/// Removes what LLMs wrap expressions in: whitespace, code fences and backticks, quotes, `$…$`,
/// and a trailing "=" (or "= ?").
pub fn stripNoise(text: []const u8) []const u8 {
    var s = text;
    while (true) {
        const before = s.len;
        s = std.mem.trim(u8, s, " \t\r\n");
        if (std.mem.startsWith(u8, s, "```")) {
            s = s[3..];
            // a language tag on the fence line: ```python\n2+2\n```
            if (std.mem.indexOfScalar(u8, s, '\n')) |nl| {
                if (isWord(s[0..nl])) s = s[nl + 1 ..];
            }
            if (std.mem.endsWith(u8, s, "```")) s = s[0 .. s.len - 3];
            continue;
        }
        if (std.mem.endsWith(u8, s, "?") and std.mem.endsWith(u8, std.mem.trimEnd(u8, s[0 .. s.len - 1], " \t"), "="))
            s = s[0 .. s.len - 1];
        if (std.mem.endsWith(u8, s, "=")) s = s[0 .. s.len - 1];
        for ([_][2][]const u8{
            .{ "`", "`" },               .{ "\"", "\"" },             .{ "'", "'" }, .{ "$", "$" },
            .{ "\u{201C}", "\u{201D}" }, .{ "\u{2018}", "\u{2019}" },
        }) |pair| {
            if (s.len >= pair[0].len + pair[1].len and std.mem.startsWith(u8, s, pair[0]) and std.mem.endsWith(u8, s, pair[1])) {
                s = s[pair[0].len .. s.len - pair[1].len];
                break;
            }
        }
        if (s.len == before) return s;
    }
}

fn isWord(s: []const u8) bool {
    for (s) |c| if (!std.ascii.isAlphanumeric(c)) return false;
    return true;
}
