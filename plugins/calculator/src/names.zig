//! The names an expression may use (functions and constants, case-insensitive) and the
//! "did you mean" suggestion for a name that is none of them.

const std = @import("std");

pub const Func = enum {
    sqrt,
    abs,
    sin,
    cos,
    tan,
    asin,
    acos,
    atan,
    ln,
    log,
    log2,
    exp,
    floor,
    ceil,
    round,
    min,
    max,
    pow,

    /// How many arguments the function takes: `min == max` for fixed arity, `max == null` for variadic.
    pub fn arity(f: Func) struct { min: usize, max: ?usize } {
        return switch (f) {
            .min, .max => .{ .min = 1, .max = null },
            .pow => .{ .min = 2, .max = 2 },
            else => .{ .min = 1, .max = 1 },
        };
    }
};

pub const Constant = struct { name: []const u8, value: f64 };

pub const constants = [_]Constant{
    .{ .name = "pi", .value = std.math.pi },
    .{ .name = "e", .value = std.math.e },
};

/// Spellings LLMs often use for the same functions; accepted silently.
const aliases = [_]struct { name: []const u8, func: Func }{
    .{ .name = "log10", .func = .log },
    .{ .name = "arcsin", .func = .asin },
    .{ .name = "arccos", .func = .acos },
    .{ .name = "arctan", .func = .atan },
    .{ .name = "power", .func = .pow },
};

/// The longest name worth comparing; longer identifiers get no suggestion.
const max_name = 16;

fn lower(buf: *[max_name]u8, name: []const u8) ?[]const u8 {
    if (name.len > max_name) return null;
    for (name, 0..) |c, i| buf[i] = std.ascii.toLower(c);
    return buf[0..name.len];
}

pub fn function(name: []const u8) ?Func {
    var buf: [max_name]u8 = undefined;
    const n = lower(&buf, name) orelse return null;
    inline for (@typeInfo(Func).@"enum".field_names) |field| {
        if (std.mem.eql(u8, n, field)) return @field(Func, field);
    }
    for (aliases) |alias| if (std.mem.eql(u8, n, alias.name)) return alias.func;
    return null;
}

pub fn constant(name: []const u8) ?f64 {
    if (std.mem.eql(u8, name, "\u{03C0}")) return std.math.pi;
    var buf: [max_name]u8 = undefined;
    const n = lower(&buf, name) orelse return null;
    for (constants) |c| if (std.mem.eql(u8, n, c.name)) return c.value;
    return null;
}

/// The known name closest to `name` (edit distance 1 for short names, 2 for longer ones), if any.
pub fn suggest(name: []const u8) ?[]const u8 {
    var buf: [max_name]u8 = undefined;
    const n = lower(&buf, name) orelse return null;
    const limit: usize = if (n.len <= 3) 1 else 2;
    var best: ?[]const u8 = null;
    var best_distance: usize = limit + 1;
    inline for (@typeInfo(Func).@"enum".field_names) |field| {
        const d = distance(n, field);
        if (d < best_distance and d < n.len and d < field.len) {
            best = field;
            best_distance = d;
        }
    }
    for (constants) |c| {
        const d = distance(n, c.name);
        if (d < best_distance and d < n.len and d < c.name.len) {
            best = c.name;
            best_distance = d;
        }
    }
    return best;
}

/// Levenshtein distance of two short ASCII strings (both at most `max_name` long).
fn distance(a: []const u8, b: []const u8) usize {
    var row: [max_name + 1]usize = undefined;
    for (0..b.len + 1) |j| row[j] = j;
    for (a, 0..) |ca, i| {
        var diagonal = row[0];
        row[0] = i + 1;
        for (b, 0..) |cb, j| {
            const above = row[j + 1];
            const cost: usize = if (ca == cb) 0 else 1;
            row[j + 1] = @min(@min(above + 1, row[j] + 1), diagonal + cost);
            diagonal = above;
        }
    }
    return row[b.len];
}
