// A compact JSON value type with a parser and a serializer.
//
// Why not an npm package: `json-as` needs a compiler transform, and `assemblyscript-json` 1.1.0
// (unmaintained) writes invalid JSON for strings with control characters ("\n" becomes a
// backslash followed by a raw newline), does not escape object keys, and reports parse errors by
// trapping. This one parses UTF-8 bytes strictly (RFC 8259), returns errors instead of trapping,
// keeps object key order, and writes compact UTF-8 straight into a byte buffer.

import { fromUtf8 } from "./kernel";

/** The six kinds of JSON values. */
export enum Kind {
  Null,
  Bool,
  Number,
  String,
  Array,
  Object,
}

/**
 * One JSON value. Build with the static constructors (`Json.object().set("a", Json.str("x"))`),
 * read with the typed getters (`v.getString("a")`), which return a default on a missing key or
 * another kind rather than failing, because host responses are already schema-checked.
 */
export class Json {
  kind: Kind = Kind.Null;
  private b: bool = false;
  private n: f64 = 0;
  /** A number's exact text (as parsed, or from `Json.int`), so big integers round-trip. */
  raw: string | null = null;
  private s: string = "";
  private items: Json[] | null = null;
  private keyList: string[] | null = null;
  private valueList: Json[] | null = null;
  private index: Map<string, i32> | null = null;

  static null(): Json {
    return new Json();
  }
  static bool(b: bool): Json {
    const v = new Json();
    v.kind = Kind.Bool;
    v.b = b;
    return v;
  }
  static number(n: f64): Json {
    const v = new Json();
    v.kind = Kind.Number;
    v.n = n;
    return v;
  }
  /** An integer; kept exactly in text form, so values beyond 2^53 survive. */
  static int(n: i64): Json {
    const v = Json.number(<f64>n);
    v.raw = n.toString();
    return v;
  }
  static str(s: string): Json {
    const v = new Json();
    v.kind = Kind.String;
    v.s = s;
    return v;
  }
  static array(): Json {
    const v = new Json();
    v.kind = Kind.Array;
    v.items = [];
    return v;
  }
  static object(): Json {
    const v = new Json();
    v.kind = Kind.Object;
    v.keyList = [];
    v.valueList = [];
    v.index = new Map<string, i32>();
    return v;
  }
  /** An array of strings. */
  static strings(list: string[]): Json {
    const v = Json.array();
    for (let i = 0; i < list.length; i++) v.push(Json.str(list[i]));
    return v;
  }
  /** Parses UTF-8 JSON text; the error names the byte offset. */
  static parse(data: Uint8Array): JsonResult {
    const p = new Parser(data.dataStart, <usize>data.length);
    const v = p.document();
    if (v === null) return new JsonResult(null, p.error);
    return new JsonResult(v, "");
  }
  /** Parses a JSON string. */
  static parseString(text: string): JsonResult {
    return Json.parse(Uint8Array.wrap(String.UTF8.encode(text)));
  }

  get isNull(): bool {
    return this.kind == Kind.Null;
  }
  get isBool(): bool {
    return this.kind == Kind.Bool;
  }
  get isNumber(): bool {
    return this.kind == Kind.Number;
  }
  get isString(): bool {
    return this.kind == Kind.String;
  }
  get isArray(): bool {
    return this.kind == Kind.Array;
  }
  get isObject(): bool {
    return this.kind == Kind.Object;
  }

  /** The boolean, or false for other kinds. */
  asBool(): bool {
    return this.kind == Kind.Bool && this.b;
  }
  /** The number, or 0 for other kinds. */
  asNumber(): f64 {
    return this.kind == Kind.Number ? this.n : 0;
  }
  /** The number as an integer (exact for integer text up to 64 bits), or 0. */
  asInt(): i64 {
    if (this.kind != Kind.Number) return 0;
    const r = this.raw;
    if (r !== null && isIntegerText(r)) return i64.parse(r);
    return <i64>this.n;
  }
  /** The string, or "" for other kinds. */
  asString(): string {
    return this.kind == Kind.String ? this.s : "";
  }
  /** The items of an array (live; an empty array for other kinds). */
  asArray(): Json[] {
    const a = this.items;
    return a !== null ? a : [];
  }
  /** The keys of an object in insertion order (an empty array for other kinds). */
  keys(): string[] {
    const k = this.keyList;
    return k !== null ? k.slice(0) : [];
  }
  /** Number of items of an array or keys of an object. */
  get length(): i32 {
    const a = this.items;
    if (a !== null) return a.length;
    const k = this.keyList;
    return k !== null ? k.length : 0;
  }

  /** Appends to an array; returns `this` for chaining. */
  push(v: Json): Json {
    const a = this.items;
    if (a !== null) a.push(v);
    return this;
  }
  /** Sets a key of an object (replacing an existing one in place); returns `this`. */
  set(key: string, v: Json): Json {
    const idx = this.index;
    if (idx === null) return this;
    if (idx.has(key)) {
      (this.valueList as Json[])[idx.get(key)] = v;
    } else {
      idx.set(key, (this.keyList as string[]).length);
      (this.keyList as string[]).push(key);
      (this.valueList as Json[]).push(v);
    }
    return this;
  }
  has(key: string): bool {
    const idx = this.index;
    return idx !== null && idx.has(key);
  }
  /** The value at `key`, or null when missing or not an object. */
  get(key: string): Json | null {
    const idx = this.index;
    if (idx === null || !idx.has(key)) return null;
    return (this.valueList as Json[])[idx.get(key)];
  }
  getString(key: string, def: string = ""): string {
    const v = this.get(key);
    return v !== null && v.kind == Kind.String ? v.s : def;
  }
  getInt(key: string, def: i64 = 0): i64 {
    const v = this.get(key);
    return v !== null && v.kind == Kind.Number ? v.asInt() : def;
  }
  getNumber(key: string, def: f64 = 0): f64 {
    const v = this.get(key);
    return v !== null && v.kind == Kind.Number ? v.n : def;
  }
  getBool(key: string, def: bool = false): bool {
    const v = this.get(key);
    return v !== null && v.kind == Kind.Bool ? v.b : def;
  }
  /** The items of the array at `key`, or null when missing or not an array. */
  getArray(key: string): Json[] | null {
    const v = this.get(key);
    return v !== null && v.kind == Kind.Array ? v.asArray() : null;
  }
  /** The string at `key`, or null when missing or not a string. */
  getStringOrNull(key: string): string | null {
    const v = this.get(key);
    return v !== null && v.kind == Kind.String ? v.s : null;
  }

  /** Compact JSON text as UTF-8 bytes. */
  toBytes(): Uint8Array {
    const w = new Writer();
    w.value(this);
    return w.finish();
  }
  /** Compact JSON text. */
  toString(): string {
    return fromUtf8(this.toBytes());
  }
}

/** The outcome of `Json.parse`: `value`, or an `error` message when the text is not JSON. */
export class JsonResult {
  constructor(
    public value: Json | null,
    public error: string,
  ) {}
  get ok(): bool {
    return this.value !== null;
  }
}

function isIntegerText(r: string): bool {
  for (let i = 0; i < r.length; i++) {
    const c = r.charCodeAt(i);
    if (c == 0x2e || c == 0x65 || c == 0x45) return false; // . e E
  }
  return r.length < 20 || (r.length == 20 && r.charCodeAt(0) == 0x2d);
}

// ---------------------------------------------------------------- serializer

const HEX = "0123456789abcdef";

/** A growable UTF-8 byte buffer. */
class Writer {
  buf: usize = heap.alloc(256);
  cap: usize = 256;
  len: usize = 0;

  reserve(n: usize): void {
    if (this.len + n <= this.cap) return;
    let c = this.cap << 1;
    while (c < this.len + n) c <<= 1;
    this.buf = heap.realloc(this.buf, c);
    this.cap = c;
  }
  byte(b: u32): void {
    this.reserve(1);
    store<u8>(this.buf + this.len, <u8>b);
    this.len++;
  }
  ascii(s: string): void {
    this.reserve(<usize>s.length);
    for (let i = 0; i < s.length; i++) store<u8>(this.buf + this.len + <usize>i, <u8>s.charCodeAt(i));
    this.len += <usize>s.length;
  }
  raw(ptr: usize, n: usize): void {
    this.reserve(n);
    memory.copy(this.buf + this.len, ptr, n);
    this.len += n;
  }
  /**
   * A code point as UTF-8; a lone surrogate gets the 3-byte form (WTF-8), which
   * `String.UTF8.decode` turns back into that UTF-16 unit.
   */
  codePoint(cp: u32): void {
    if (cp < 0x80) {
      this.byte(cp);
    } else if (cp < 0x800) {
      this.byte(0xc0 | (cp >> 6));
      this.byte(0x80 | (cp & 0x3f));
    } else if (cp < 0x10000) {
      this.byte(0xe0 | (cp >> 12));
      this.byte(0x80 | ((cp >> 6) & 0x3f));
      this.byte(0x80 | (cp & 0x3f));
    } else {
      this.byte(0xf0 | (cp >> 18));
      this.byte(0x80 | ((cp >> 12) & 0x3f));
      this.byte(0x80 | ((cp >> 6) & 0x3f));
      this.byte(0x80 | (cp & 0x3f));
    }
  }
  finish(): Uint8Array {
    const out = new Uint8Array(<i32>this.len);
    memory.copy(out.dataStart, this.buf, this.len);
    this.discard();
    return out;
  }
  finishString(): string {
    const s = String.UTF8.decodeUnsafe(this.buf, this.len);
    this.discard();
    return s;
  }
  /** Frees the buffer (it is unmanaged memory, outside the GC). */
  discard(): void {
    heap.free(this.buf);
    this.buf = 0;
  }

  value(v: Json): void {
    switch (v.kind) {
      case Kind.Null:
        this.ascii("null");
        break;
      case Kind.Bool:
        this.ascii(v.asBool() ? "true" : "false");
        break;
      case Kind.Number:
        this.number(v);
        break;
      case Kind.String:
        this.string(v.asString());
        break;
      case Kind.Array: {
        const a = v.asArray();
        this.byte(0x5b);
        for (let i = 0; i < a.length; i++) {
          if (i > 0) this.byte(0x2c);
          this.value(a[i]);
        }
        this.byte(0x5d);
        break;
      }
      default: {
        const k = v.keys();
        this.byte(0x7b);
        for (let i = 0; i < k.length; i++) {
          if (i > 0) this.byte(0x2c);
          this.string(k[i]);
          this.byte(0x3a);
          this.value(v.get(k[i]) as Json);
        }
        this.byte(0x7d);
      }
    }
  }

  number(v: Json): void {
    const raw = v.raw;
    if (raw !== null) {
      this.ascii(raw);
      return;
    }
    const n = v.asNumber();
    if (!isFinite(n)) {
      this.ascii("null"); // JSON has no NaN/Infinity
    } else if (n == Math.trunc(n) && Math.abs(n) < 1e18) {
      this.ascii((<i64>n).toString()); // 3, not "3.0"
    } else {
      this.ascii(n.toString());
    }
  }

  /** Writes a quoted, escaped string, converting UTF-16 to UTF-8 on the way. */
  string(s: string): void {
    const n = s.length;
    this.reserve(<usize>n * 3 + 2);
    this.byte(0x22);
    for (let i = 0; i < n; i++) {
      let c = <u32>s.charCodeAt(i);
      if (c < 0x80) {
        if (c == 0x22 || c == 0x5c) {
          this.byte(0x5c);
          this.byte(c);
        } else if (c >= 0x20) {
          this.byte(c);
        } else if (c == 0x0a) {
          this.ascii("\\n");
        } else if (c == 0x0d) {
          this.ascii("\\r");
        } else if (c == 0x09) {
          this.ascii("\\t");
        } else {
          this.escape(c);
        }
      } else if (c >= 0xd800 && c < 0xe000) {
        const d = i + 1 < n ? <u32>s.charCodeAt(i + 1) : 0;
        if (c < 0xdc00 && d >= 0xdc00 && d < 0xe000) {
          this.codePoint(0x10000 + ((c - 0xd800) << 10) + (d - 0xdc00));
          i++;
        } else {
          this.escape(c); // a lone surrogate cannot be UTF-8; keep it as \uXXXX
        }
      } else {
        this.codePoint(c);
      }
    }
    this.byte(0x22);
  }

  escape(c: u32): void {
    this.ascii("\\u");
    this.byte(HEX.charCodeAt((c >> 12) & 15));
    this.byte(HEX.charCodeAt((c >> 8) & 15));
    this.byte(HEX.charCodeAt((c >> 4) & 15));
    this.byte(HEX.charCodeAt(c & 15));
  }
}

// ---------------------------------------------------------------- parser

/** Nesting limit: deeper documents are refused rather than overflowing the stack. */
const MAX_DEPTH = 512;

class Parser {
  pos: usize = 0;
  depth: i32 = 0;
  error: string = "";

  constructor(
    public ptr: usize,
    public end: usize,
  ) {}

  fail(what: string): Json | null {
    if (this.error.length == 0) this.error = "invalid JSON at byte " + this.pos.toString() + ": " + what;
    return null;
  }
  peek(): u32 {
    return this.pos < this.end ? <u32>load<u8>(this.ptr + this.pos) : 0xffffffff;
  }
  skipSpace(): void {
    while (this.pos < this.end) {
      const c = load<u8>(this.ptr + this.pos);
      if (c != 0x20 && c != 0x0a && c != 0x0d && c != 0x09) break;
      this.pos++;
    }
  }

  document(): Json | null {
    const v = this.value();
    if (v === null) return null;
    this.skipSpace();
    if (this.pos != this.end) return this.fail("unexpected data after the value");
    return v;
  }

  value(): Json | null {
    this.skipSpace();
    const c = this.peek();
    if (c == 0x7b) return this.object();
    if (c == 0x5b) return this.array();
    if (c == 0x22) {
      const s = this.string();
      return s === null ? null : Json.str(s);
    }
    if (c == 0x2d || (c >= 0x30 && c <= 0x39)) return this.number();
    if (this.word("true")) return Json.bool(true);
    if (this.word("false")) return Json.bool(false);
    if (this.word("null")) return Json.null();
    return this.fail(c == 0xffffffff ? "unexpected end" : "unexpected character");
  }

  word(w: string): bool {
    const n = <usize>w.length;
    if (this.pos + n > this.end) return false;
    for (let i: usize = 0; i < n; i++) {
      if (<u32>load<u8>(this.ptr + this.pos + i) != <u32>w.charCodeAt(<i32>i)) return false;
    }
    this.pos += n;
    return true;
  }

  object(): Json | null {
    if (++this.depth > MAX_DEPTH) return this.fail("nested too deeply");
    this.pos++; // {
    const o = Json.object();
    this.skipSpace();
    if (this.peek() == 0x7d) {
      this.pos++;
      this.depth--;
      return o;
    }
    for (;;) {
      this.skipSpace();
      if (this.peek() != 0x22) return this.fail("expected a key");
      const k = this.string();
      if (k === null) return null;
      this.skipSpace();
      if (this.peek() != 0x3a) return this.fail("expected ':'");
      this.pos++;
      const v = this.value();
      if (v === null) return null;
      o.set(k, v);
      this.skipSpace();
      const c = this.peek();
      this.pos++;
      if (c == 0x7d) break;
      if (c != 0x2c) {
        this.pos--;
        return this.fail("expected ',' or '}'");
      }
    }
    this.depth--;
    return o;
  }

  array(): Json | null {
    if (++this.depth > MAX_DEPTH) return this.fail("nested too deeply");
    this.pos++; // [
    const a = Json.array();
    this.skipSpace();
    if (this.peek() == 0x5d) {
      this.pos++;
      this.depth--;
      return a;
    }
    for (;;) {
      const v = this.value();
      if (v === null) return null;
      a.push(v);
      this.skipSpace();
      const c = this.peek();
      this.pos++;
      if (c == 0x5d) break;
      if (c != 0x2c) {
        this.pos--;
        return this.fail("expected ',' or ']'");
      }
    }
    this.depth--;
    return a;
  }

  number(): Json | null {
    const start = this.pos;
    if (this.peek() == 0x2d) this.pos++;
    if (this.peek() == 0x30) {
      this.pos++;
    } else if (!this.digits()) {
      return this.fail("bad number");
    }
    if (this.peek() == 0x2e) {
      this.pos++;
      if (!this.digits()) return this.fail("bad number");
    }
    const e = this.peek();
    if (e == 0x65 || e == 0x45) {
      this.pos++;
      const s = this.peek();
      if (s == 0x2b || s == 0x2d) this.pos++;
      if (!this.digits()) return this.fail("bad number");
    }
    const text = String.UTF8.decodeUnsafe(this.ptr + start, this.pos - start);
    const v = Json.number(f64.parse(text));
    v.raw = text;
    return v;
  }

  digits(): bool {
    const start = this.pos;
    while (this.pos < this.end) {
      const c = load<u8>(this.ptr + this.pos);
      if (c < 0x30 || c > 0x39) break;
      this.pos++;
    }
    return this.pos > start;
  }

  /**
   * Reads a string at `"`. Without escapes the bytes are decoded in one go; with escapes they
   * are unescaped into one UTF-8 buffer, then decoded once (collecting many small strings and
   * joining them is quadratic under the incremental GC).
   */
  string(): string | null {
    this.pos++; // opening quote
    const start = this.pos;
    while (this.pos < this.end) {
      const c = load<u8>(this.ptr + this.pos);
      if (c == 0x22) {
        const s = String.UTF8.decodeUnsafe(this.ptr + start, this.pos - start);
        this.pos++;
        return s;
      }
      if (c == 0x5c) break;
      if (c < 0x20) return this.failString("control character in string");
      this.pos++;
    }
    const w = new Writer();
    w.raw(this.ptr + start, this.pos - start);
    for (;;) {
      if (this.pos >= this.end) {
        w.discard();
        return this.failString("unterminated string");
      }
      const c = <u32>load<u8>(this.ptr + this.pos);
      this.pos++;
      if (c == 0x22) return w.finishString();
      if (c < 0x20) {
        w.discard();
        this.pos--;
        return this.failString("control character in string");
      }
      if (c != 0x5c) {
        w.byte(c);
        continue;
      }
      const e = this.peek();
      this.pos++;
      if (e == 0x22 || e == 0x5c || e == 0x2f) w.byte(e);
      else if (e == 0x62) w.byte(0x08);
      else if (e == 0x66) w.byte(0x0c);
      else if (e == 0x6e) w.byte(0x0a);
      else if (e == 0x72) w.byte(0x0d);
      else if (e == 0x74) w.byte(0x09);
      else if (e == 0x75) {
        let u = this.hex4();
        if (u >= 0xd800 && u < 0xdc00 && this.word("\\u")) {
          const lo = this.hex4();
          if (lo >= 0xdc00 && lo < 0xe000) {
            u = 0x10000 + ((u - 0xd800) << 10) + (lo - 0xdc00);
          } else {
            w.codePoint(<u32>u); // lone high surrogate, then whatever followed
            u = lo;
          }
        }
        if (u < 0) {
          w.discard();
          return this.failString("bad \\u escape");
        }
        w.codePoint(<u32>u);
      } else {
        w.discard();
        this.pos--;
        return this.failString("bad escape");
      }
    }
    return null; // not reached; asc wants a return after the loop
  }

  /** The four hex digits of a `\u` escape, or -1. */
  hex4(): i32 {
    if (this.pos + 4 > this.end) return -1;
    let u: i32 = 0;
    for (let i = 0; i < 4; i++) {
      const h = <i32>load<u8>(this.ptr + this.pos);
      let d: i32 = -1;
      if (h >= 0x30 && h <= 0x39) d = h - 0x30;
      else if (h >= 0x61 && h <= 0x66) d = h - 0x57;
      else if (h >= 0x41 && h <= 0x46) d = h - 0x37;
      if (d < 0) return -1;
      u = (u << 4) | d;
      this.pos++;
    }
    return u;
  }

  failString(what: string): string | null {
    this.fail(what);
    return null;
  }
}
