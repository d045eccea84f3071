// WASI preview 1 for plug-ins in a browser, with the plug-in's mounted folders held in memory
// (@bjorn3/browser_wasi_shim). extism's browser build gives WASI plug-ins no files at all, so the
// browser host renames their WASI imports (wasi-rewrite.js) and answers them from here: each plan
// mount `{host, guest}` becomes a preopened directory `guest` holding the files the host fetched
// (and checked by sha256) from the bundle.
//
// The shim module is passed in rather than imported: module Workers get no import map (Chromium
// 156), so a bare import here would keep these files out of a Worker; the caller imports the shim
// by whatever URL or path its environment has.

/** @typedef {typeof import('@bjorn3/browser_wasi_shim')} WasiShim */
/** @typedef {import('@bjorn3/browser_wasi_shim').PreopenDirectory} PreopenDirectory */
/** @typedef {import('@bjorn3/browser_wasi_shim').WASI} WASI */

/** Guest path -> {path inside that folder, "/"-separated -> the file's bytes}. */
/** @typedef {Record<string, Record<string, Uint8Array>>} MountFiles */

/** The most mounts one plug-in may have, files in all of them, and levels of folders in a path. */
export const MAX_MOUNTS = 64;
export const MAX_FILES = 100_000;
export const MAX_DEPTH = 32;
/** The longest line of the plug-in's stdout/stderr passed on (the log-line bound of docs/abi.md). */
export const MAX_LINE_CHARS = 4000;

export class WasiFilesError extends Error {
  /** @param {string} message */
  constructor(message) {
    super(message);
    this.name = 'WasiFilesError';
  }
}

/** @param {string} segment @param {string} where */
function checkSegment(segment, where) {
  if (segment === '' || segment === '.' || segment === '..' || segment.includes('\0') || segment.includes('\\')) {
    throw new WasiFilesError(`${where}: "${segment}" is not a file or folder name (empty, ".", "..", NUL or "\\")`);
  }
  if (new TextEncoder().encode(segment).length > 255) throw new WasiFilesError(`${where}: a name is longer than 255 bytes`);
}

/**
 * Splits a guest folder path ("/models/selfask") into its checked segments; it must be absolute
 * and normal (no ".", "..", "//" or trailing "/").
 * @param {string} guest
 */
function guestSegments(guest) {
  if (typeof guest !== 'string' || !guest.startsWith('/') || guest === '/' || guest.endsWith('/')) {
    throw new WasiFilesError(`mount "${guest}": the guest path must be an absolute folder path like /models/x`);
  }
  const parts = guest.slice(1).split('/');
  if (parts.length > MAX_DEPTH) throw new WasiFilesError(`mount "${guest}": deeper than ${MAX_DEPTH} folders`);
  for (const p of parts) checkSegment(p, `mount "${guest}"`);
  return parts;
}

/**
 * Builds the in-memory preopened folders of a plug-in, one per guest path. Files are read-only
 * unless their guest path is in `writable` (writes then stay in memory and are lost with the
 * plug-in). The bytes are shared, not copied: a read-only file's array must not be changed later.
 * @param {WasiShim} shim @bjorn3/browser_wasi_shim (0.4)
 * @param {MountFiles} mounts
 * @param {{writable?: string[]}} [options]
 * @returns {PreopenDirectory[]}
 */
export function buildPreopens(shim, mounts, options = {}) {
  const { File, Directory, PreopenDirectory } = shim;
  if (mounts === null || typeof mounts !== 'object' || Array.isArray(mounts)) {
    throw new WasiFilesError('mounts must be an object {guestPath: {fileName: bytes}}');
  }
  const guests = Object.keys(mounts);
  if (guests.length > MAX_MOUNTS) throw new WasiFilesError(`${guests.length} mounts (at most ${MAX_MOUNTS})`);
  const writable = new Set(options.writable ?? []);
  for (const w of writable) {
    if (!guests.includes(w)) throw new WasiFilesError(`writable "${w}" is not one of the mounts`);
  }
  let total = 0;
  /** @type {PreopenDirectory[]} */
  const preopens = [];
  for (const guest of guests) {
    guestSegments(guest);
    for (const other of guests) {
      if (other !== guest && other.startsWith(`${guest}/`)) {
        throw new WasiFilesError(`mount "${other}" is inside mount "${guest}": give each folder once`);
      }
    }
    const files = mounts[guest];
    if (files === null || typeof files !== 'object' || Array.isArray(files)) {
      throw new WasiFilesError(`mount "${guest}": its files must be an object {fileName: bytes}`);
    }
    /** @type {Map<string, import('@bjorn3/browser_wasi_shim').Inode>} */
    const root = new Map();
    for (const [name, data] of Object.entries(files)) {
      if (++total > MAX_FILES) throw new WasiFilesError(`more than ${MAX_FILES} files in the mounts`);
      if (!(data instanceof Uint8Array)) throw new WasiFilesError(`mount "${guest}": file "${name}" is not a Uint8Array`);
      const where = `mount "${guest}" file "${name}"`;
      const parts = name.split('/');
      if (parts.length > MAX_DEPTH) throw new WasiFilesError(`${where}: deeper than ${MAX_DEPTH} folders`);
      parts.forEach((p) => checkSegment(p, where));
      let dir = root;
      for (const folder of parts.slice(0, -1)) {
        let entry = dir.get(folder);
        if (entry === undefined) {
          entry = new Directory(new Map());
          dir.set(folder, entry);
        }
        if (!(entry instanceof Directory)) throw new WasiFilesError(`${where}: "${folder}" is a file, not a folder`);
        dir = entry.contents;
      }
      const leaf = parts[parts.length - 1];
      if (dir.has(leaf)) throw new WasiFilesError(`${where}: given twice, or also a folder`);
      const file = new File(new Uint8Array(0), { readonly: !writable.has(guest) });
      file.data = data; // share the bytes: the shim's constructor would copy a model of hundreds of MB
      dir.set(leaf, file);
    }
    preopens.push(new PreopenDirectory(guest, root));
  }
  return preopens;
}

/**
 * A line-buffered sink for fd 1/2 whose lines are cut at MAX_LINE_CHARS (a plug-in printing
 * without newlines cannot grow it without bound).
 * @param {WasiShim['ConsoleStdout']} ConsoleStdout
 * @param {(line: string) => void} write
 */
function lineSink(ConsoleStdout, write) {
  const dec = new TextDecoder('utf-8', { fatal: false });
  let buf = '';
  return new ConsoleStdout((/** @type {Uint8Array} */ bytes) => {
    buf += dec.decode(bytes, { stream: true });
    let nl;
    while ((nl = buf.indexOf('\n')) >= 0) {
      write(buf.slice(0, Math.min(nl, MAX_LINE_CHARS)));
      buf = buf.slice(nl + 1);
    }
    if (buf.length > MAX_LINE_CHARS) {
      write(`${buf.slice(0, MAX_LINE_CHARS - 1)}…`);
      buf = '';
    }
  });
}

/**
 * @typedef {object} BrowserWasiOptions
 * @property {MountFiles} [mounts] the plug-in's folders (see buildPreopens)
 * @property {string[]} [writable] guest paths of mounts the plug-in may write (in memory only)
 * @property {string[]} [args] argv (default ["plugin"])
 * @property {string[]} [env] environment, "KEY=value" (default none: the plan passes config, not env)
 * @property {(line: string) => void} [stdout] each line the plug-in writes to fd 1 (default: dropped)
 * @property {(line: string) => void} [stderr] each line it writes to fd 2 (default: dropped)
 */

/**
 * @typedef {object} BrowserWasi
 * @property {WASI} wasi the shim's WASI instance
 * @property {Record<string, (ctx: unknown, ...args: any[]) => unknown>} functions the WASI imports
 *   as extism host functions (extism passes its call context first; it is dropped). All synchronous,
 *   so extism never wraps them in JSPI's `Suspending`.
 * @property {(instance: WebAssembly.Instance) => void} bind points the WASI functions at this
 *   instance's memory: before it, every WASI call throws.
 */

/**
 * A WASI preview 1 implementation over in-memory mounts, to be given to extism as the host
 * functions of the renamed WASI module (wasi-rewrite.js WASI_MODULE) and bound to the instance.
 * @param {WasiShim} shim @bjorn3/browser_wasi_shim (0.4)
 * @param {BrowserWasiOptions} [options]
 * @returns {BrowserWasi}
 */
export function createWasi(shim, options = {}) {
  const { WASI, File, OpenFile, ConsoleStdout } = shim;
  const drop = () => {};
  const fds = [
    new OpenFile(new File(new Uint8Array(0), { readonly: true })), // stdin: empty
    lineSink(ConsoleStdout, options.stdout ?? drop),
    lineSink(ConsoleStdout, options.stderr ?? drop),
    ...buildPreopens(shim, options.mounts ?? {}, { writable: options.writable }),
  ];
  // debug: false, or the shim logs every path to the console (its default is on)
  const wasi = new WASI(options.args ?? ['plugin'], options.env ?? [], fds, { debug: false });
  let bound = false;
  /** @type {Record<string, (ctx: unknown, ...args: any[]) => unknown>} */
  const functions = {};
  const imports = /** @type {Record<string, (...args: any[]) => unknown>} */ (wasi.wasiImport);
  for (const [name, fn] of Object.entries(imports)) {
    functions[name] = (_ctx, ...args) => {
      if (!bound) throw new Error(`WASI ${name} called before the plug-in's memory was bound`);
      return fn(...args);
    };
  }
  return {
    wasi,
    functions,
    bind(instance) {
      const memory = instance.exports.memory;
      if (!(memory instanceof WebAssembly.Memory)) throw new WasiFilesError('the plug-in exports no memory named "memory"');
      wasi.inst = /** @type {any} */ (instance);
      bound = true;
    },
  };
}
