// Creating one plug-in in a browser on extism's browser build, with WASI answered by the host
// (wasi-files.js) so the plug-in sees its mounted files. The plug-in runs on the calling thread
// (a page or a Worker) because the WASI functions must reach its memory; asynchronous host
// functions then need JSPI (WebAssembly.Suspending, on by default since Chromium 137), which
// extism uses by itself when a host function is an `async function`.
import { redirectWasi, WASI_MODULE, INITIALIZE_EXPORT } from './wasi-rewrite.js';
import { createWasi } from './wasi-files.js';

/** @typedef {import('./wasi-files.js').MountFiles} MountFiles */
/** @typedef {Record<string, Record<string, (ctx: any, ...args: any[]) => any>>} HostFunctions */

/**
 * @typedef {object} BrowserPluginOptions
 * @property {(manifest: any, options: any) => Promise<any>} createPlugin extism's createPlugin
 *   (of the browser build, dist/browser/mod.js; injected so this module has no fixed path to it)
 * @property {import('./wasi-files.js').WasiShim} [wasiShim] the browser_wasi_shim module (0.4), needed
 *   for a plug-in that imports WASI (injected for the same reason)
 * @property {HostFunctions} [functions] host functions by namespace (e.g. "extism:host/user")
 * @property {Record<string, string>} [config] the plug-in's config (plan component `config`)
 * @property {MountFiles} [mounts] guest path -> files, for a plug-in that imports WASI
 * @property {string[]} [writable] guest paths the plug-in may write (in memory)
 * @property {(line: string) => void} [stdout] lines of the plug-in's WASI stdout
 * @property {(line: string) => void} [stderr] lines of its WASI stderr
 * @property {Record<string, unknown>} [extism] more extism options (logger, logLevel, memory);
 *   `useWasi`, `runInWorker` and `functions` are set here and cannot be given
 */

/**
 * A plug-in from its bytes: a module importing WASI gets the host's WASI over `mounts` (its
 * imports renamed to WASI_MODULE, its `_initialize` run here once the WASI is bound); any other
 * module goes to extism unchanged. Returns extism's Plugin (call, close…).
 * @param {Uint8Array} wasm
 * @param {BrowserPluginOptions} options
 */
export async function createBrowserPlugin(wasm, options) {
  const extra = options.extism ?? {};
  for (const key of ['useWasi', 'runInWorker', 'functions', 'allowedPaths']) {
    if (key in extra) throw new TypeError(`createBrowserPlugin: the extism option "${key}" is set by the host`);
  }
  const { bytes, wasi: usesWasi } = redirectWasi(wasm);
  /** @type {HostFunctions} */
  const functions = { ...(options.functions ?? {}) };
  if (WASI_MODULE in functions) throw new TypeError(`createBrowserPlugin: the namespace "${WASI_MODULE}" is the host's`);
  if (usesWasi && !options.wasiShim) throw new TypeError('createBrowserPlugin: the plug-in imports WASI: give wasiShim');
  const wasi = usesWasi && options.wasiShim
    ? createWasi(options.wasiShim, { mounts: options.mounts, writable: options.writable, stdout: options.stdout, stderr: options.stderr })
    : null;
  if (!wasi && options.mounts && Object.keys(options.mounts).length > 0) {
    throw new TypeError('createBrowserPlugin: the plug-in has mounts but does not import WASI, so it cannot read them');
  }
  if (wasi) functions[WASI_MODULE] = wasi.functions;
  const plugin = await options.createPlugin(
    { wasm: [{ data: bytes }], config: options.config ?? {} },
    { ...extra, useWasi: false, runInWorker: false, functions },
  );
  if (wasi) {
    const instance = /** @type {WebAssembly.Instance} */ (await plugin.getInstance());
    wasi.bind(instance);
    const init = instance.exports[INITIALIZE_EXPORT];
    if (typeof init === 'function') {
      try {
        init();
      } catch (e) {
        await plugin.close();
        throw new Error(`the plug-in's _initialize failed: ${e instanceof Error ? e.message : String(e)}`);
      }
    }
  }
  return plugin;
}
