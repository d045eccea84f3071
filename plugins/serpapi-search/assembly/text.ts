// Text helpers: SerpAPI snippets carry HTML (<b>, &amp;, &#39;…) and odd whitespace that an LLM
// should not have to read, and agents need a bounded answer.

/** Percent-encodes a string's UTF-8 bytes for a URL query value (RFC 3986 unreserved kept). */
export function urlEncode(s: string): string {
  const bytes = Uint8Array.wrap(String.UTF8.encode(s));
  const hex = "0123456789ABCDEF";
  let out = "";
  for (let i = 0; i < bytes.length; i++) {
    const b = <i32>bytes[i];
    const unreserved =
      (b >= 0x41 && b <= 0x5a) || (b >= 0x61 && b <= 0x7a) || (b >= 0x30 && b <= 0x39) ||
      b == 0x2d || b == 0x2e || b == 0x5f || b == 0x7e;
    if (unreserved) out += String.fromCharCode(b);
    else out += "%" + hex.charAt(b >> 4) + hex.charAt(b & 15);
  }
  return out;
}

function isSpace(c: i32): bool {
  return c == 0x20 || c == 0x09 || c == 0x0a || c == 0x0d || c == 0x0c || c == 0x0b || c == 0xa0;
}

function isAlpha(c: i32): bool {
  return (c >= 0x41 && c <= 0x5a) || (c >= 0x61 && c <= 0x7a);
}

/** Inline tags vanish without a gap (`Ada <b>Lovelace</b>`); any other tag separates words. */
const INLINE_TAGS = ["b", "i", "em", "strong", "span", "a", "u", "mark", "sup", "sub", "small"];

function tagName(s: string, start: i32, end: i32): string {
  let i = start + 1;
  if (i < end && s.charCodeAt(i) == 0x2f) i++; // "</b>"
  let j = i;
  while (j < end && isAlpha(s.charCodeAt(j))) j++;
  return s.substring(i, j).toLowerCase();
}

/** Removes HTML tags: `<` followed by a letter, `/` or `!`, up to the next `>`. */
export function stripTags(s: string): string {
  let out = "";
  let i = 0;
  const n = s.length;
  while (i < n) {
    const c = s.charCodeAt(i);
    if (c == 0x3c && i + 1 < n) {
      const d = s.charCodeAt(i + 1);
      if (isAlpha(d) || d == 0x2f || d == 0x21) {
        const close = s.indexOf(">", i);
        if (close > 0) {
          out += INLINE_TAGS.includes(tagName(s, i, close)) ? "" : " ";
          i = close + 1;
          continue;
        }
      }
    }
    out += String.fromCharCode(c);
    i++;
  }
  return out;
}

const NAMED_ENTITIES = new Map<string, string>();
NAMED_ENTITIES.set("amp", "&");
NAMED_ENTITIES.set("lt", "<");
NAMED_ENTITIES.set("gt", ">");
NAMED_ENTITIES.set("quot", '"');
NAMED_ENTITIES.set("apos", "'");
NAMED_ENTITIES.set("nbsp", " ");
NAMED_ENTITIES.set("ndash", "\u2013");
NAMED_ENTITIES.set("mdash", "\u2014");
NAMED_ENTITIES.set("hellip", "\u2026");
NAMED_ENTITIES.set("lsquo", "\u2018");
NAMED_ENTITIES.set("rsquo", "\u2019");
NAMED_ENTITIES.set("ldquo", "\u201c");
NAMED_ENTITIES.set("rdquo", "\u201d");
NAMED_ENTITIES.set("middot", "\u00b7");
NAMED_ENTITIES.set("deg", "\u00b0");
NAMED_ENTITIES.set("copy", "\u00a9");
NAMED_ENTITIES.set("reg", "\u00ae");
NAMED_ENTITIES.set("trade", "\u2122");
NAMED_ENTITIES.set("euro", "\u20ac");
NAMED_ENTITIES.set("pound", "\u00a3");

/** The text of `&name;`, `&#NNN;` or `&#xHH;` (without `&` and `;`), or null when unknown. */
function entity(name: string): string | null {
  if (name.length > 1 && name.charCodeAt(0) == 0x23) {
    const hex = name.charCodeAt(1) == 0x78 || name.charCodeAt(1) == 0x58;
    const digits = name.substring(hex ? 2 : 1);
    if (digits.length == 0 || digits.length > 7) return null;
    const code = parseInt(digits, hex ? 16 : 10);
    if (isNaN(code) || code <= 0 || code > 0x10ffff || (code >= 0xd800 && code <= 0xdfff)) return null;
    return String.fromCodePoint(<i32>code);
  }
  const lower = name.toLowerCase();
  return NAMED_ENTITIES.has(lower) ? NAMED_ENTITIES.get(lower) : null;
}

/** Decodes HTML character references; unknown ones stay as they are. */
export function decodeEntities(s: string): string {
  let out = "";
  let i = 0;
  const n = s.length;
  while (i < n) {
    const c = s.charCodeAt(i);
    if (c == 0x26) {
      const semi = s.indexOf(";", i + 1);
      if (semi > i + 1 && semi - i <= 10) {
        const text = entity(s.substring(i + 1, semi));
        if (text !== null) {
          out += text;
          i = semi + 1;
          continue;
        }
      }
    }
    out += String.fromCharCode(c);
    i++;
  }
  return out;
}

/** Collapses runs of whitespace to one space and trims both ends. */
export function collapseSpaces(s: string): string {
  let out = "";
  let pending = false;
  for (let i = 0; i < s.length; i++) {
    const c = s.charCodeAt(i);
    if (isSpace(c)) {
      pending = out.length > 0;
      continue;
    }
    if (pending) out += " ";
    pending = false;
    out += String.fromCharCode(c);
  }
  return out;
}

/** Snippet text as an LLM should read it: no tags, no entities, single spaces. */
export function clean(s: string): string {
  // Entities are decoded after the tags are gone, so an escaped "&lt;b&gt;" stays visible text.
  return collapseSpaces(decodeEntities(stripTags(s)));
}

/** Caps `s` to `max` characters, cutting at a word boundary when one is near, marked with "…". */
export function cap(s: string, max: i32): string {
  if (max <= 0 || s.length <= max) return s;
  let end = max - 1;
  // Never split a surrogate pair.
  if (end > 0 && (s.charCodeAt(end - 1) & 0xfc00) == 0xd800) end--;
  const space = s.lastIndexOf(" ", end);
  if (space > (end * 4) / 5) end = space;
  return s.substring(0, end).trimEnd() + "\u2026";
}
