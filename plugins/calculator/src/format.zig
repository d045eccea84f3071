//! Formats a result for people and LLMs: exact integers without ".0", everything else with at most
//! 15 significant digits and without binary floating-point noise (0.1 + 0.2 gives "0.3").

const std = @import("std");

/// Integers up to 2^53 are exact in an f64 and printed digit for digit.
const max_exact: f64 = 9007199254740992.0;

/// Enough for a sign, 15 digits, a point, leading zeros and an exponent.
pub const max_len = 32;

/// Writes `x` (finite) into `buf` and returns the text.
pub fn number(buf: *[max_len]u8, x: f64) []const u8 {
    if (x == 0) return "0"; // also -0
    if (@abs(x) <= max_exact and @floor(x) == x) {
        return std.fmt.bufPrint(buf, "{d}", .{@as(i64, @intFromFloat(x))}) catch unreachable;
    }
    const precise = Digits.of(x, 15);
    // Noise from cancellation (100 - 99.99 = 0.010000000000005116) sits in the last digits:
    // when 12 digits give a short number but 15 do not, the extra digits are noise.
    const rounded = Digits.of(x, 12);
    const chosen = if (precise.len > 12 and rounded.len <= 9) rounded else precise;
    return chosen.write(buf);
}

/// A number as significant digits (no trailing zeros) times a power of ten: d.ddd × 10^exponent.
const Digits = struct {
    negative: bool,
    digits: [17]u8,
    len: usize,
    exponent: i32,

    fn of(x: f64, significant: usize) Digits {
        var scratch: [64]u8 = undefined;
        const text = std.fmt.float.render(&scratch, x, .{ .mode = .scientific, .precision = significant - 1 }) catch unreachable;
        var d: Digits = .{ .negative = text[0] == '-', .digits = undefined, .len = 0, .exponent = 0 };
        const e_at = std.mem.indexOfScalar(u8, text, 'e').?;
        for (text[@intFromBool(d.negative)..e_at]) |c| {
            if (c == '.') continue;
            d.digits[d.len] = c;
            d.len += 1;
        }
        while (d.len > 1 and d.digits[d.len - 1] == '0') d.len -= 1;
        d.exponent = std.fmt.parseInt(i32, text[e_at + 1 ..], 10) catch unreachable;
        return d;
    }

    /// Plain decimals from 1e-7 to below 1e15, scientific notation ("1.5e+20") outside.
    fn write(d: Digits, buf: *[max_len]u8) []const u8 {
        var out: std.Io.Writer = .fixed(buf);
        if (d.negative) out.writeByte('-') catch unreachable;
        const digits = d.digits[0..d.len];
        if (d.exponent >= 15 or d.exponent < -7) {
            out.writeByte(digits[0]) catch unreachable;
            if (digits.len > 1) out.print(".{s}", .{digits[1..]}) catch unreachable;
            out.print("e{s}{d}", .{ if (d.exponent < 0) "-" else "+", @abs(d.exponent) }) catch unreachable;
        } else if (d.exponent < 0) {
            out.writeAll("0.") catch unreachable;
            out.splatByteAll('0', @intCast(-d.exponent - 1)) catch unreachable;
            out.writeAll(digits) catch unreachable;
        } else {
            const whole: usize = @intCast(d.exponent + 1);
            if (digits.len <= whole) {
                out.writeAll(digits) catch unreachable;
                out.splatByteAll('0', whole - digits.len) catch unreachable;
            } else {
                out.print("{s}.{s}", .{ digits[0..whole], digits[whole..] }) catch unreachable;
            }
        }
        return out.buffered();
    }
};
