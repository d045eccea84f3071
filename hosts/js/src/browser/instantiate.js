// The Host's `instantiate` hook for browsers (src/host.js InstanceSpec -> PluginLike): every
// plug-in on the calling thread (the page, or a Worker running the whole Host) through
// createBrowserPlugin, WASI plug-ins with their mounts in memory.
import { createBrowserPlugin } from './plugin.js';

/** The kernel's namespace: its functions (the host's output_set) are synchronous and stay so. */
const KERNEL = 'extism:host/env';

/**
 * @typedef {object} BrowserInstantiateOptions
 * @property {(manifest: any, options: any) => Promise<any>} createPlugin createPlugin of extism's browser build
 * @property {import('./wasi-files.js').WasiShim} wasiShim the browser_wasi_shim module (0.4)
 * @property {(component: any, name: string) => Promise<import('./wasi-files.js').MountFiles>} mountFiles
 *   the files of a component's mounts (grant.mounts), guest path -> name -> bytes, e.g. from a bundle
 *   after its sha256 checks
 * @property {(spec: any) => Promise<Uint8Array> | Uint8Array} [moduleBytes] the module's bytes when
 *   the spec carries none (`spec.bytes`): the WASI rewrite needs bytes, not a compiled module
 */

/**
 * @param {BrowserInstantiateOptions} options
 * @returns {(spec: any) => Promise<any>} the hook: (InstanceSpec) => extism Plugin
 */
export function browserInstantiate(options) {
  return async (spec) => {
    const wa = /** @type {any} */ (WebAssembly);
    if (typeof wa.Suspending !== 'function' || typeof wa.promising !== 'function') {
      throw new Error('this browser has no JSPI (WebAssembly.Suspending), which the host needs for its asynchronous '
        + 'host functions: use Chromium 137 or later');
    }
    /** @type {Uint8Array | undefined} */
    const bytes = spec.bytes ?? (await options.moduleBytes?.(spec));
    if (!(bytes instanceof Uint8Array)) throw new TypeError('browserInstantiate needs the module bytes: spec.bytes or options.moduleBytes');
    // The host's functions return promises (http_fetch, a call into another plug-in). extism hands a
    // function to JSPI only when it is an `async function`, so each becomes one: the guest is then
    // suspended until the promise settles.
    /** @type {Record<string, Record<string, (ctx: any, ...args: any[]) => any>>} */
    const functions = {};
    for (const [ns, fns] of Object.entries(/** @type {Record<string, Record<string, Function>>} */ (spec.functions ?? {}))) {
      functions[ns] = {};
      for (const [name, fn] of Object.entries(fns)) {
        functions[ns][name] = ns === KERNEL ? /** @type {any} */ (fn) : async (/** @type {any} */ ctx, /** @type {any[]} */ ...args) => fn(ctx, ...args);
      }
    }
    /** @type {{guest: string, writable?: boolean}[]} */
    const mounts = spec.component?.grant?.mounts ?? [];
    const files = mounts.length > 0 ? await options.mountFiles(spec.component, spec.name) : undefined;
    const logger = spec.logger;
    return createBrowserPlugin(bytes, {
      createPlugin: options.createPlugin,
      wasiShim: options.wasiShim,
      functions,
      config: spec.config ?? {},
      mounts: files,
      writable: mounts.filter((m) => m.writable).map((m) => m.guest),
      stdout: logger ? (line) => logger.info(line) : undefined,
      stderr: logger ? (line) => logger.warn(line) : undefined,
      extism: {
        ...(logger ? { logger, logLevel: 'info' } : {}),
        // extism's own bound on its blocks (input, output, vars); the Wasm memory's own maximum is
        // what the host wrote into the module's bytes
        ...(typeof spec.memoryPages === 'number' ? { memory: { maxPages: spec.memoryPages } } : {}),
      },
    });
  };
}
