//! A recursive-descent parser that evaluates an arithmetic expression as it parses it.
//!
//! Grammar (lowest precedence first):
//!   sum     = product (("+" | "-") product)*
//!   product = unary (("*" | "/" | "%") unary)*
//!   unary   = ("+" | "-") unary | power
//!   power   = primary (("^" | "**") unary)?       right-associative, binds tighter than a sign: -2^2 = -4
//!   primary = number | constant | function "(" sum ("," sum)* ")" | "(" sum ")"
//!
//! The expression is read twice: the first pass only checks the syntax (so a syntax error is
//! reported even when a domain error comes earlier in the text), the second one computes.
//! Recursion is bounded by `max_depth`, so `((((…` fails with a message instead of a stack overflow.

const std = @import("std");
const names = @import("names.zig");
const format = @import("format.zig");
const Allocator = std.mem.Allocator;

pub const max_depth = 64;

pub const Result = union(enum) {
    value: f64,
    /// What went wrong, for the user: "division by zero at position 5".
    failure: []const u8,
};

/// Evaluates `expression` (already stripped of the noise around it).
pub fn evaluate(a: Allocator, expression: []const u8) error{OutOfMemory}!Result {
    var check: Parser = .{ .a = a, .src = expression, .evaluating = false };
    _ = check.parseAll() catch |err| switch (err) {
        error.Invalid => return .{ .failure = check.message },
        error.OutOfMemory => return error.OutOfMemory,
    };
    var compute: Parser = .{ .a = a, .src = expression, .evaluating = true };
    const value = compute.parseAll() catch |err| switch (err) {
        error.Invalid => return .{ .failure = compute.message },
        error.OutOfMemory => return error.OutOfMemory,
    };
    return .{ .value = value };
}

const Error = error{ Invalid, OutOfMemory };

const Tag = enum { number, name, plus, minus, star, slash, percent, caret, lparen, rparen, comma, end, invalid };

const Token = struct {
    tag: Tag,
    start: usize,
    end: usize,
};

/// Unicode spellings of operators that LLMs and people paste: × ÷ − and π.
const unicode_tokens = [_]struct { text: []const u8, tag: Tag }{
    .{ .text = "\u{00D7}", .tag = .star },
    .{ .text = "\u{22C5}", .tag = .star },
    .{ .text = "\u{00B7}", .tag = .star },
    .{ .text = "\u{00F7}", .tag = .slash },
    .{ .text = "\u{2212}", .tag = .minus },
    .{ .text = "\u{03C0}", .tag = .name },
};

const Parser = struct {
    a: Allocator,
    src: []const u8,
    evaluating: bool,
    pos: usize = 0,
    depth: usize = 0,
    /// Inside a function's argument list a comma separates arguments, elsewhere it may group
    /// thousands (2,000): `max(1,000)` is max(1, 0), `(1,000)` is 1000.
    in_arguments: bool = false,
    message: []const u8 = "",

    fn parseAll(p: *Parser) Error!f64 {
        if (p.peek().tag == .end) return p.fail("empty expression: give an arithmetic expression such as 2*(3+4)", .{});
        const value = try p.parseSum();
        const t = p.peek();
        switch (t.tag) {
            .end => return value,
            .rparen => return p.syntax(t, "there is no '(' to match it"),
            .comma => return p.syntax(t, "a comma only separates function arguments, as in max(1, 2), " ++
                "or groups thousands, as in 1,000"),
            .number, .name, .lparen => return p.syntax(t, "an operator is missing before it (write 2*x, not 2x)"),
            else => return p.syntax(t, ""),
        }
    }

    // ---- grammar ----------------------------------------------------------------------------

    fn parseSum(p: *Parser) Error!f64 {
        var left = try p.parseProduct();
        while (true) {
            const op = p.peek();
            if (op.tag != .plus and op.tag != .minus) return left;
            p.advance(op);
            const right = try p.parseProduct();
            left = try p.finite(if (op.tag == .plus) left + right else left - right, op);
        }
    }

    fn parseProduct(p: *Parser) Error!f64 {
        var left = try p.parseUnary();
        while (true) {
            const op = p.peek();
            if (op.tag != .star and op.tag != .slash and op.tag != .percent) return left;
            p.advance(op);
            const right = try p.parseUnary();
            if (!p.evaluating) continue;
            switch (op.tag) {
                .star => left = try p.finite(left * right, op),
                .slash => {
                    if (right == 0) return p.fail("division by zero at position {d}", .{p.column(op.start)});
                    left = try p.finite(left / right, op);
                },
                else => {
                    if (right == 0) return p.fail("division by zero at position {d} (the remainder of a division by 0)", .{p.column(op.start)});
                    left = try p.finite(@mod(left, right), op);
                },
            }
        }
    }

    fn parseUnary(p: *Parser) Error!f64 {
        const op = p.peek();
        if (op.tag != .plus and op.tag != .minus) return p.parsePower();
        p.advance(op);
        try p.enter();
        defer p.depth -= 1;
        const operand = try p.parseUnary();
        return if (op.tag == .minus) -operand else operand;
    }

    fn parsePower(p: *Parser) Error!f64 {
        const base = try p.parsePrimary();
        const op = p.peek();
        if (op.tag != .caret) return base;
        p.advance(op);
        try p.enter();
        defer p.depth -= 1;
        const exponent = try p.parseUnary();
        return p.power(base, exponent, op);
    }

    fn parsePrimary(p: *Parser) Error!f64 {
        const t = p.peek();
        switch (t.tag) {
            .number => {
                p.advance(t);
                return p.number(t);
            },
            .lparen => {
                p.advance(t);
                try p.enter();
                defer p.depth -= 1;
                const outer = p.in_arguments;
                p.in_arguments = false;
                defer p.in_arguments = outer;
                const value = try p.parseSum();
                try p.close(t);
                return value;
            },
            .name => {
                p.advance(t);
                return p.name(t);
            },
            .end => return p.fail("syntax error at position {d}: the expression ends too early " ++
                "(expected a number, a name or '(')", .{p.column(t.start)}),
            else => return p.syntax(t, "expected a number, a name or '('"),
        }
    }

    fn close(p: *Parser, open: Token) Error!void {
        const t = p.peek();
        if (t.tag == .rparen) return p.advance(t);
        if (t.tag == .end) return p.fail("syntax error at position {d}: missing ')' to close the '(' at position {d}", .{ p.column(t.start), p.column(open.start) });
        if (t.tag == .number or t.tag == .name or t.tag == .lparen)
            return p.syntax(t, "an operator is missing before it (write 2*x, not 2x)");
        return p.syntax(t, "expected ')' or an operator");
    }

    fn name(p: *Parser, t: Token) Error!f64 {
        const text = p.src[t.start..t.end];
        const is_call = p.peek().tag == .lparen;
        if (names.function(text)) |f| {
            if (!is_call) return p.fail("'{s}' at position {d} is a function: write {s}(x)", .{ text, p.column(t.start), text });
            return p.call(f, t);
        }
        if (names.constant(text)) |value| {
            if (is_call) return p.fail("'{s}' at position {d} is a constant, not a function (write {s}*(...) to multiply)", .{ text, p.column(t.start), text });
            return value;
        }
        const what = if (is_call) "function" else "name";
        if (names.suggest(text)) |s|
            return p.fail("unknown {s} '{s}' at position {d} (did you mean '{s}'?)", .{ what, text, p.column(t.start), s });
        if (is_call) return p.fail("unknown function '{s}' at position {d}; the functions are sqrt, abs, sin, cos, tan, " ++
            "asin, acos, atan, ln, log, log2, exp, floor, ceil, round, min, max, pow", .{ text, p.column(t.start) });
        return p.fail("unknown name '{s}' at position {d}: there are no variables, only numbers and the constants " ++
            "pi and e; put the value in the expression instead", .{ text, p.column(t.start) });
    }

    /// Parses `(arg, ...)` after a function name and applies the function.
    fn call(p: *Parser, f: names.Func, fname: Token) Error!f64 {
        const open = p.peek();
        p.advance(open);
        try p.enter();
        defer p.depth -= 1;
        const outer = p.in_arguments;
        p.in_arguments = true;
        defer p.in_arguments = outer;

        var args: [2]f64 = .{ 0, 0 };
        var count: usize = 0;
        var folded: f64 = 0; // min/max take any number of arguments: fold them as they come
        var grouped_thousands = false; // "max(1,000)" probably meant 1000
        if (p.peek().tag != .rparen) while (true) {
            const value = try p.parseSum();
            if (count < args.len) args[count] = value;
            folded = if (count == 0) value else if (f == .min) @min(folded, value) else @max(folded, value);
            count += 1;
            const t = p.peek();
            if (t.tag != .comma) break;
            p.advance(t);
            const next = p.peek();
            if (next.tag == .number and next.start == t.end and t.start > 0 and std.ascii.isDigit(p.src[t.start - 1])) {
                const digits = p.src[next.start..next.end];
                // "1,000" cannot be read as two arguments by anyone who wrote it
                if (digits.len >= 2 and digits[0] == '0' and std.ascii.isDigit(digits[1]))
                    return p.fail("ambiguous ',' at position {d}: inside {s}(...) a comma separates arguments, so it " ++
                        "cannot group thousands; write 1000 for one number, or put a space after the comma for two " ++
                        "arguments", .{ p.column(t.start), @tagName(f) });
                if (digits.len == 3) grouped_thousands = true;
            }
        };
        try p.close(open);

        const arity = f.arity();
        if (count < arity.min or (arity.max != null and count > arity.max.?)) {
            const fname_text = @tagName(f);
            const expected = if (arity.max == null)
                try std.fmt.allocPrint(p.a, "at least {d} argument", .{arity.min})
            else
                try std.fmt.allocPrint(p.a, "{d} argument{s}", .{ arity.min, if (arity.min == 1) "" else "s" });
            const hint = if (grouped_thousands and count > arity.min)
                " (inside a function a comma separates arguments: write 1000, not 1,000)"
            else if (f == .log and count == 2)
                " (log is base 10; for base b write ln(x)/ln(b))"
            else
                "";
            return p.fail("{s} at position {d} takes {s}, got {d}{s}", .{ fname_text, p.column(fname.start), expected, count, hint });
        }
        if (!p.evaluating) return 0;
        return switch (f) {
            .min, .max => folded,
            .pow => p.power(args[0], args[1], fname),
            else => p.apply(f, args[0], fname),
        };
    }

    // ---- arithmetic with checks --------------------------------------------------------------

    fn apply(p: *Parser, f: names.Func, x: f64, at: Token) Error!f64 {
        const fname = @tagName(f);
        switch (f) {
            .sqrt => if (x < 0) return p.domain(fname, x, at, "is not a real number: the argument must be 0 or more"),
            .ln, .log, .log2 => if (x <= 0) return p.domain(fname, x, at, "is undefined: the argument must be greater than 0"),
            .asin, .acos => if (x < -1 or x > 1) return p.domain(fname, x, at, "is undefined: the argument must be between -1 and 1"),
            else => {},
        }
        const r: f64 = switch (f) {
            .sqrt => @sqrt(x),
            .abs => @abs(x),
            .sin => trig(x, @sin(x)),
            .cos => trig(x, @cos(x)),
            .tan => trig(x, @tan(x)),
            .asin => std.math.asin(x),
            .acos => std.math.acos(x),
            .atan => std.math.atan(x),
            .ln => @log(x),
            .log => @log10(x),
            .log2 => @log2(x),
            .exp => @exp(x),
            .floor => @floor(x),
            .ceil => @ceil(x),
            .round => @round(x),
            .min, .max, .pow => unreachable,
        };
        if (f == .tan and @abs(r) > 1e15)
            return p.domain(fname, x, at, "is undefined: tan has no value at odd multiples of pi/2");
        return p.finite(r, at);
    }

    fn power(p: *Parser, base: f64, exponent: f64, at: Token) Error!f64 {
        if (!p.evaluating) return 0;
        if (base == 0 and exponent < 0)
            return p.fail("division by zero at position {d}: 0 raised to a negative power", .{p.column(at.start)});
        if (base < 0 and @floor(exponent) != exponent) {
            var b1: [format.max_len]u8 = undefined;
            var b2: [format.max_len]u8 = undefined;
            return p.fail("math domain error at position {d}: ({s})^{s} is not a real number " ++
                "(a negative number raised to a fractional power)", .{ p.column(at.start), format.number(&b1, base), format.number(&b2, exponent) });
        }
        return p.finite(std.math.pow(f64, base, exponent), at);
    }

    /// Refuses an infinite or undefined intermediate result, naming where it appeared.
    fn finite(p: *Parser, x: f64, at: Token) Error!f64 {
        if (!p.evaluating or std.math.isFinite(x)) return x;
        if (std.math.isNan(x)) return p.fail("math domain error at position {d}: the result is undefined (NaN)", .{p.column(at.start)});
        return p.fail("overflow at position {d}: the result is too large (beyond ±1.8e+308)", .{p.column(at.start)});
    }

    fn domain(p: *Parser, fname: []const u8, x: f64, at: Token, why: []const u8) Error {
        var buf: [format.max_len]u8 = undefined;
        return p.fail("math domain error at position {d}: {s}({s}) {s}", .{ p.column(at.start), fname, format.number(&buf, x), why });
    }

    fn number(p: *Parser, t: Token) Error!f64 {
        const text = p.src[t.start..t.end];
        const digits = try p.a.alloc(u8, text.len);
        var n: usize = 0;
        for (text) |c| if (c != ',') {
            digits[n] = c;
            n += 1;
        };
        const value = std.fmt.parseFloat(f64, digits[0..n]) catch
            return p.syntax(t, "not a valid number");
        if (!std.math.isFinite(value)) return p.fail("overflow at position {d}: the number {s} is too large (beyond ±1.8e+308)", .{ p.column(t.start), text });
        return value;
    }

    fn enter(p: *Parser) Error!void {
        p.depth += 1;
        if (p.depth > max_depth) return p.fail("expression nested too deeply at position {d}: more than {d} levels of " ++
            "parentheses, signs or powers", .{ p.column(p.pos), max_depth });
    }

    // ---- errors ------------------------------------------------------------------------------

    fn fail(p: *Parser, comptime fmt: []const u8, args: anytype) Error {
        p.message = try std.fmt.allocPrint(p.a, fmt, args);
        return error.Invalid;
    }

    /// "syntax error at position 4: unexpected '*'" plus why, if given.
    fn syntax(p: *Parser, t: Token, why: []const u8) Error {
        if (t.tag == .number and p.src[t.start] == '.' and t.start > 0 and std.ascii.isDigit(p.src[t.start - 1]))
            return p.fail("syntax error at position {d}: unexpected '.': a number has at most one decimal point", .{p.column(t.start)});
        const end = if (t.tag == .invalid) t.start + (std.unicode.utf8ByteSequenceLength(p.src[t.start]) catch 1) else t.end;
        const shown = p.src[t.start..@min(end, p.src.len)];
        return p.fail("syntax error at position {d}: unexpected '{s}'{s}{s}", .{ p.column(t.start), shown, if (why.len > 0) ": " else "", why });
    }

    /// 1-based position in characters (not bytes) of byte offset `at`.
    fn column(p: *Parser, at: usize) usize {
        var n: usize = 1;
        for (p.src[0..@min(at, p.src.len)]) |c| {
            if (c & 0xC0 != 0x80) n += 1;
        }
        return n;
    }

    // ---- tokens ------------------------------------------------------------------------------

    fn advance(p: *Parser, t: Token) void {
        p.pos = t.end;
    }

    /// The next token, without consuming it (parsing calls `advance`).
    fn peek(p: *Parser) Token {
        var i = p.pos;
        while (i < p.src.len and std.ascii.isWhitespace(p.src[i])) i += 1;
        if (i >= p.src.len) return .{ .tag = .end, .start = p.src.len, .end = p.src.len };
        const c = p.src[i];
        const one: ?Tag = switch (c) {
            '+' => .plus,
            '-' => .minus,
            '/' => .slash,
            '%' => .percent,
            '^' => .caret,
            '(', '[' => .lparen,
            ')', ']' => .rparen,
            ',' => .comma,
            else => null,
        };
        if (one) |tag| return .{ .tag = tag, .start = i, .end = i + 1 };
        if (c == '*') {
            if (i + 1 < p.src.len and p.src[i + 1] == '*') return .{ .tag = .caret, .start = i, .end = i + 2 };
            return .{ .tag = .star, .start = i, .end = i + 1 };
        }
        if (std.ascii.isDigit(c) or (c == '.' and i + 1 < p.src.len and std.ascii.isDigit(p.src[i + 1])))
            return .{ .tag = .number, .start = i, .end = p.scanNumber(i) };
        if (std.ascii.isAlphabetic(c) or c == '_') {
            var j = i + 1;
            while (j < p.src.len and (std.ascii.isAlphanumeric(p.src[j]) or p.src[j] == '_')) j += 1;
            return .{ .tag = .name, .start = i, .end = j };
        }
        for (unicode_tokens) |u| if (std.mem.startsWith(u8, p.src[i..], u.text))
            return .{ .tag = u.tag, .start = i, .end = i + u.text.len };
        return .{ .tag = .invalid, .start = i, .end = i + 1 };
    }

    /// The end of the number starting at `start`: digits with optional thousands groups
    /// (outside function arguments), a fraction and an exponent.
    fn scanNumber(p: *Parser, start: usize) usize {
        const s = p.src;
        var i = start;
        while (i < s.len and std.ascii.isDigit(s[i])) i += 1;
        // 1,000 and 12,345,678: a first group of 1-3 digits, then groups of exactly 3
        if (!p.in_arguments and i - start >= 1 and i - start <= 3) {
            while (i + 3 < s.len and s[i] == ',' and isDigits(s[i + 1 .. i + 4]) and
                (i + 4 >= s.len or !std.ascii.isDigit(s[i + 4]))) i += 4;
        }
        if (i < s.len and s[i] == '.') {
            i += 1;
            while (i < s.len and std.ascii.isDigit(s[i])) i += 1;
        }
        if (i < s.len and (s[i] == 'e' or s[i] == 'E')) {
            var j = i + 1;
            if (j < s.len and (s[j] == '+' or s[j] == '-')) j += 1;
            if (j < s.len and std.ascii.isDigit(s[j])) {
                while (j < s.len and std.ascii.isDigit(s[j])) j += 1;
                i = j;
            }
        }
        return i;
    }
};

fn isDigits(s: []const u8) bool {
    for (s) |c| if (!std.ascii.isDigit(c)) return false;
    return true;
}

/// Snaps the rounding residue of sin/cos/tan at multiples of pi/2 to 0: sin(pi) is 0, not 1.2e-16.
fn trig(x: f64, r: f64) f64 {
    if (@abs(x) >= 0.5 and @abs(r) < 1e-15 * @max(1.0, @abs(x))) return 0;
    return r;
}
