// What the host reads in a module's bytes before it instantiates it: the memory limit is written into
// the module itself (its memory's maximum becomes the grant's memory_pages), because a JavaScript
// engine bounds a module's linear memory only by what the module declares; Extism-JS's maxPages bounds
// only its kernel blocks. The digest is checked over the bytes as the plan names them, before this.

export class WasmFormatError extends Error {}

/** @param {Uint8Array} bytes @param {number} at @returns {[number, number]} value and next offset */
function leb(bytes, at) {
  let value = 0;
  let shift = 0;
  for (;;) {
    if (at >= bytes.length) throw new WasmFormatError("truncated module");
    const byte = bytes[at++];
    value += (byte & 0x7f) * 2 ** shift;
    shift += 7;
    if (!(byte & 0x80)) return [value, at];
    if (shift > 63) throw new WasmFormatError("a LEB128 number is too long");
  }
}

/** An unsigned LEB128, as bytes (also ABI 0's import rewrite, abi0.js). @param {number} value */
export function encodeLeb(value) {
  const out = [];
  do {
    let byte = value % 128;
    value = Math.floor(value / 128);
    if (value) byte |= 0x80;
    out.push(byte);
  } while (value);
  return out;
}

/**
 * The module with each memory it defines capped at `maxPages` (64 KiB pages); the minimum it needs.
 * @param {Uint8Array} bytes
 * @param {number} maxPages
 * @returns {{bytes: Uint8Array, minPages: number | null}}
 */
export function capMemory(bytes, maxPages) {
  if (bytes.length < 8 || bytes[0] !== 0 || bytes[1] !== 0x61 || bytes[2] !== 0x73 || bytes[3] !== 0x6d) {
    throw new WasmFormatError("not a wasm module (no \\0asm header)");
  }
  let at = 8;
  while (at < bytes.length) {
    const id = bytes[at];
    const [size, body] = leb(bytes, at + 1);
    const end = body + size;
    if (end > bytes.length) throw new WasmFormatError("a section runs past the end of the module");
    if (id === 5) {
      let [count, p] = leb(bytes, body);
      /** @type {number[]} */
      const out = [...encodeLeb(count)];
      let minPages = 0;
      for (let i = 0; i < count; i++) {
        const flags = bytes[p++];
        if (flags & 0x04) throw new WasmFormatError("64-bit memories are not supported");
        const [min, q] = leb(bytes, p);
        p = q;
        let max = null;
        if (flags & 0x01) [max, p] = leb(bytes, p);
        minPages = Math.max(minPages, min);
        const capped = Math.max(min, max === null ? maxPages : Math.min(max, maxPages));
        out.push(flags | 0x01, ...encodeLeb(min), ...encodeLeb(capped));
      }
      if (p !== end) throw new WasmFormatError("the memory section is malformed");
      const section = [5, ...encodeLeb(out.length), ...out];
      const result = new Uint8Array(at + section.length + (bytes.length - end));
      result.set(bytes.subarray(0, at), 0);
      result.set(section, at);
      result.set(bytes.subarray(end), at + section.length);
      return { bytes: result, minPages: count ? minPages : null };
    }
    at = end;
  }
  return { bytes, minPages: null };
}
