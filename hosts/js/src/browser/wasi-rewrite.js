// Renames import module names (and, on request, exports) in a WebAssembly binary, copying every
// other byte unchanged. The browser host needs it because extism's browser build always answers
// imports from "wasi_snapshot_preview1" with its own WASI shim, which has no files: renaming that
// module lets the host supply WASI itself (wasi-files.js) with the plug-in's mounted files.
// Renaming `_initialize` keeps extism from running a reactor's constructors before the host's WASI
// is bound to the instance's memory (wasi-libc opens its preopens in a constructor).
//
// The input is untrusted: every length is checked against the bytes that remain, sizes are bounded,
// and anything this parser does not understand is refused rather than guessed.

/** The most bytes a module may have (models are files, not modules: 256 MiB is plenty). */
export const MAX_MODULE_BYTES = 256 * 1024 * 1024;
/** The most bytes of one import/export name. */
export const MAX_NAME_BYTES = 4096;

export class WasmRewriteError extends Error {
  /** @param {string} message */
  constructor(message) {
    super(`cannot rewrite the Wasm module: ${message}`);
    this.name = 'WasmRewriteError';
  }
}

const SECTION_IMPORT = 2;
const SECTION_EXPORT = 7;
const UTF8 = new TextDecoder('utf-8', { fatal: true });
const ENCODER = new TextEncoder();

/** A cursor over bytes that refuses to read past its end. */
class Reader {
  /** @param {Uint8Array} bytes @param {number} start @param {number} end */
  constructor(bytes, start, end) {
    this.bytes = bytes;
    this.pos = start;
    this.end = end;
  }

  /** @param {string} what */
  byte(what) {
    if (this.pos >= this.end) throw new WasmRewriteError(`truncated: ${what} at byte ${this.pos}`);
    return this.bytes[this.pos++];
  }

  /** An unsigned LEB128 of at most `bits` bits (32 or 64), returned as a number when it fits.
   * @param {string} what @param {number} [bits] */
  uleb(what, bits = 32) {
    const maxBytes = Math.ceil(bits / 7);
    let result = 0n;
    for (let i = 0; i < maxBytes; i++) {
      const b = this.byte(what);
      result |= BigInt(b & 0x7f) << BigInt(7 * i);
      if ((b & 0x80) === 0) {
        if (result >= 1n << BigInt(bits)) throw new WasmRewriteError(`${what} at byte ${this.pos} is out of range`);
        return Number(result);
      }
    }
    throw new WasmRewriteError(`${what} at byte ${this.pos} is longer than a ${bits}-bit LEB128`);
  }

  /** @param {number} n @param {string} what */
  take(n, what) {
    if (n > this.end - this.pos) throw new WasmRewriteError(`truncated: ${what} at byte ${this.pos} needs ${n} bytes`);
    const out = this.bytes.subarray(this.pos, this.pos + n);
    this.pos += n;
    return out;
  }

  /** @param {string} what */
  name(what) {
    const n = this.uleb(`${what} length`);
    if (n > MAX_NAME_BYTES) throw new WasmRewriteError(`${what} at byte ${this.pos} is ${n} bytes (at most ${MAX_NAME_BYTES})`);
    const raw = this.take(n, what);
    try {
      return UTF8.decode(raw);
    } catch {
      throw new WasmRewriteError(`${what} at byte ${this.pos - n} is not UTF-8`);
    }
  }
}

/** @param {number} value */
function uleb32(value) {
  /** @type {number[]} */
  const out = [];
  let v = value >>> 0;
  do {
    let b = v & 0x7f;
    v >>>= 7;
    if (v !== 0) b |= 0x80;
    out.push(b);
  } while (v !== 0);
  return Uint8Array.from(out);
}

/** @param {string} text */
function encodeName(text) {
  const raw = ENCODER.encode(text);
  return concat([uleb32(raw.length), raw]);
}

/** @param {Uint8Array[]} parts */
function concat(parts) {
  const out = new Uint8Array(parts.reduce((n, p) => n + p.length, 0));
  let at = 0;
  for (const p of parts) {
    out.set(p, at);
    at += p.length;
  }
  return out;
}

/** Skips a table/memory limits record (flags, min, optional max), memory64 and shared included.
 * @param {Reader} r @param {string} what */
function skipLimits(r, what) {
  const flags = r.byte(`${what} limits flags`);
  if (flags > 0x07) throw new WasmRewriteError(`${what} limits flags 0x${flags.toString(16)} are not known`);
  const bits = flags & 0x04 ? 64 : 32;
  r.uleb(`${what} minimum`, bits);
  if (flags & 0x01) r.uleb(`${what} maximum`, bits);
}

/** Skips a value/reference type; refuses the typed references of proposals this parser does not know.
 * @param {Reader} r @param {string} what */
function skipValType(r, what) {
  const t = r.byte(what);
  // i32 i64 f32 f64 v128 funcref externref
  if ([0x7f, 0x7e, 0x7d, 0x7c, 0x7b, 0x70, 0x6f].includes(t)) return;
  throw new WasmRewriteError(`${what} 0x${t.toString(16)} is not a type this rewriter knows`);
}

/** Reads one import descriptor (after its two names) and checks it is well formed.
 * @param {Reader} r */
function skipImportDesc(r) {
  const kind = r.byte('import kind');
  switch (kind) {
    case 0x00: r.uleb('function type index'); return;
    case 0x01: skipValType(r, 'table element type'); skipLimits(r, 'table'); return;
    case 0x02: skipLimits(r, 'memory'); return;
    case 0x03: {
      skipValType(r, 'global type');
      const mut = r.byte('global mutability');
      if (mut > 1) throw new WasmRewriteError(`global mutability ${mut} is not 0 or 1`);
      return;
    }
    case 0x04: {
      const attr = r.byte('tag attribute');
      if (attr !== 0) throw new WasmRewriteError(`tag attribute ${attr} is not 0`);
      r.uleb('tag type index');
      return;
    }
    default:
      throw new WasmRewriteError(`import kind 0x${kind.toString(16)} is not known`);
  }
}

/**
 * @typedef {object} RewriteOptions
 * @property {Record<string, string>} [importModules] old import module name -> new name
 * @property {Record<string, string>} [exports] old export name -> new name
 */

/**
 * @typedef {object} RewriteResult
 * @property {Uint8Array} bytes the rewritten module (a new array; the input is not changed)
 * @property {number} importsRenamed how many imports got a new module name
 * @property {number} exportsRenamed how many exports got a new name
 * @property {string[] | null} exportNames every export's name after renaming, when the export
 *   section was read (only when exports were to be renamed)
 */

/**
 * Renames import modules and exports of a Wasm module (binary format version 1); every other
 * section is copied byte for byte. Refuses malformed input, and renames that would collide with a
 * module name the module already imports or an export it already has.
 * @param {Uint8Array | ArrayBuffer} input
 * @param {RewriteOptions} options
 * @returns {RewriteResult}
 */
export function rewriteWasm(input, options) {
  const bytes = input instanceof Uint8Array ? input : new Uint8Array(input);
  const importModules = new Map(Object.entries(options.importModules ?? {}));
  const exportNames = new Map(Object.entries(options.exports ?? {}));
  for (const [from, to] of [...importModules, ...exportNames]) {
    if (typeof to !== 'string' || to === '' || ENCODER.encode(to).length > MAX_NAME_BYTES) {
      throw new WasmRewriteError(`the new name for "${from}" must be a non-empty string of at most ${MAX_NAME_BYTES} bytes`);
    }
  }
  if (bytes.length > MAX_MODULE_BYTES) throw new WasmRewriteError(`it is ${bytes.length} bytes (at most ${MAX_MODULE_BYTES})`);
  if (bytes.length < 8 || bytes[0] !== 0 || bytes[1] !== 0x61 || bytes[2] !== 0x73 || bytes[3] !== 0x6d) {
    throw new WasmRewriteError('it does not start with the Wasm magic bytes \\0asm');
  }
  if (bytes[4] !== 1 || bytes[5] !== 0 || bytes[6] !== 0 || bytes[7] !== 0) {
    throw new WasmRewriteError('it is not a version 1 module (a component or an unknown version)');
  }

  /** @type {Uint8Array[]} */
  const out = [bytes.subarray(0, 8)];
  let importsRenamed = 0;
  let exportsRenamed = 0;
  let sawImports = false;
  let sawExports = false;
  /** @type {string[] | null} */
  let finalExportNames = null;
  const top = new Reader(bytes, 8, bytes.length);
  while (top.pos < top.end) {
    const sectionStart = top.pos;
    const id = top.byte('section id');
    const size = top.uleb('section size');
    const body = top.take(size, `section ${id}`);
    if (id === SECTION_IMPORT && importModules.size > 0) {
      if (sawImports) throw new WasmRewriteError('it has two import sections');
      sawImports = true;
      const r = new Reader(bytes, top.pos - size, top.pos);
      const count = r.uleb('import count');
      if (count > size) throw new WasmRewriteError(`import count ${count} exceeds the section's ${size} bytes`);
      /** @type {Uint8Array[]} */
      const parts = [uleb32(count)];
      const existing = new Set();
      /** @type {string[]} */
      const modules = [];
      for (let i = 0; i < count; i++) {
        const module = r.name(`import ${i} module name`);
        const field = r.name(`import ${i} field name`);
        const descStart = r.pos;
        skipImportDesc(r);
        existing.add(module);
        modules.push(module);
        const renamed = importModules.get(module);
        if (renamed !== undefined) importsRenamed++;
        parts.push(encodeName(renamed ?? module), encodeName(field), bytes.subarray(descStart, r.pos));
      }
      if (r.pos !== r.end) throw new WasmRewriteError(`the import section has ${r.end - r.pos} bytes after its last import`);
      for (const [from, to] of importModules) {
        if (existing.has(from) && existing.has(to)) {
          throw new WasmRewriteError(`it already imports from "${to}", so "${from}" cannot be renamed to it`);
        }
      }
      const newBody = concat(parts);
      out.push(Uint8Array.of(id), uleb32(newBody.length), newBody);
    } else if (id === SECTION_EXPORT && exportNames.size > 0) {
      if (sawExports) throw new WasmRewriteError('it has two export sections');
      sawExports = true;
      const r = new Reader(bytes, top.pos - size, top.pos);
      const count = r.uleb('export count');
      if (count > size) throw new WasmRewriteError(`export count ${count} exceeds the section's ${size} bytes`);
      /** @type {{name: string, desc: Uint8Array}[]} */
      const entries = [];
      for (let i = 0; i < count; i++) {
        const name = r.name(`export ${i} name`);
        const descStart = r.pos;
        const kind = r.byte(`export ${i} kind`);
        if (kind > 0x04) throw new WasmRewriteError(`export ${i} kind 0x${kind.toString(16)} is not known`);
        r.uleb(`export ${i} index`);
        entries.push({ name, desc: bytes.subarray(descStart, r.pos) });
      }
      if (r.pos !== r.end) throw new WasmRewriteError(`the export section has ${r.end - r.pos} bytes after its last export`);
      const names = new Set(entries.map((e) => e.name));
      for (const [from, to] of exportNames) {
        if (names.has(from) && names.has(to)) throw new WasmRewriteError(`it already exports "${to}", so "${from}" cannot be renamed to it`);
      }
      /** @type {Uint8Array[]} */
      const parts = [uleb32(count)];
      finalExportNames = [];
      for (const e of entries) {
        const renamed = exportNames.get(e.name);
        if (renamed !== undefined) exportsRenamed++;
        finalExportNames.push(renamed ?? e.name);
        parts.push(encodeName(renamed ?? e.name), e.desc);
      }
      const newBody = concat(parts);
      out.push(Uint8Array.of(id), uleb32(newBody.length), newBody);
    } else {
      out.push(bytes.subarray(sectionStart, top.pos));
    }
  }
  if (exportNames.size > 0 && finalExportNames === null) finalExportNames = []; // no export section: no exports
  return { bytes: concat(out), importsRenamed, exportsRenamed, exportNames: finalExportNames };
}

/** The module name the browser host gives WASI imports (extism leaves it alone). */
export const WASI_MODULE = 'cspm:wasi';
/** The name `_initialize` gets, so the host runs it once its WASI is bound. */
export const INITIALIZE_EXPORT = 'cspm:_initialize';

/**
 * Prepares a plug-in for the host's own WASI: imports from "wasi_snapshot_preview1" come from
 * {@link WASI_MODULE} and `_initialize` becomes {@link INITIALIZE_EXPORT}. A module without WASI
 * imports comes back unchanged (`wasi: false`).
 * @param {Uint8Array | ArrayBuffer} input
 * @returns {{bytes: Uint8Array, wasi: boolean}}
 */
export function redirectWasi(input) {
  const bytes = input instanceof Uint8Array ? input : new Uint8Array(input);
  const result = rewriteWasm(bytes, {
    importModules: { wasi_snapshot_preview1: WASI_MODULE },
    exports: { _initialize: INITIALIZE_EXPORT },
  });
  if (result.importsRenamed === 0) return { bytes, wasi: false };
  if (result.exportNames?.includes('_start')) {
    // extism would run _start itself, before the host's WASI is bound to the instance
    throw new WasmRewriteError('a WASI command module (it exports _start) cannot run in the browser host: build the plug-in as a reactor (_initialize), as the PDKs do');
  }
  return { bytes: result.bytes, wasi: true };
}
