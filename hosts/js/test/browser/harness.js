// What the browser test does in the page (or in a Worker: inWorker, worker.js): create plug-ins with
// createBrowserPlugin and call them, timing each step. Everything returns plain JSON-able data.
// Imported by path, not by bare name: a module Worker has no import map.
import { createPlugin, CAPABILITIES } from '../../node_modules/@extism/extism/dist/browser/mod.js';
import * as wasiShim from '../../node_modules/@bjorn3/browser_wasi_shim/dist/index.js';
import { createBrowserPlugin } from '../../src/browser/plugin.js';

const USER = 'extism:host/user';
const ABI1 = ['call_llm', 'call_tool', 'call_agent', 'http_fetch', 'kv_get', 'kv_set', 'emit', 'http_open', 'http_read', 'http_close'];

/** What this context offers the host: JSPI, cross-origin isolation, SharedArrayBuffer. */
export function capabilities() {
  const wa = /** @type {any} */ (WebAssembly);
  return {
    jspi: typeof wa.Suspending === 'function' && typeof wa.promising === 'function',
    crossOriginIsolated: Boolean(globalThis.crossOriginIsolated),
    sharedArrayBuffer: typeof SharedArrayBuffer === 'function',
    extismWorker: CAPABILITIES.hasWorkerCapability,
    extismJspi: CAPABILITIES.supportsJSPromiseInterface,
    userAgent: navigator.userAgent,
  };
}

/** @param {string} url */
async function bytesOf(url) {
  const r = await fetch(url);
  if (!r.ok) throw new Error(`GET ${url}: HTTP ${r.status}`);
  return new Uint8Array(await r.arrayBuffer());
}

/**
 * ABI 1 host functions good enough for these tests: http_fetch really fetches (asynchronously),
 * emit records, the rest answer an error document.
 * @param {{chunks: any[]}} seen
 */
function userFunctions(seen) {
  /** @type {Record<string, (ctx: any, off: bigint) => any>} */
  const fns = {};
  for (const name of ABI1) {
    fns[name] = (ctx, off) => {
      ctx.read(off);
      return ctx.store(JSON.stringify({ error: { code: 'not_found', message: `${name} is not in this test host` } }));
    };
  }
  fns.emit = (ctx, off) => {
    seen.chunks.push(JSON.parse(ctx.read(off).text()));
    return ctx.store('{}');
  };
  fns.http_fetch = async (ctx, off) => {
    const req = JSON.parse(ctx.read(off).text());
    const res = await fetch(req.url, { method: req.method ?? 'GET', headers: req.headers ?? {} });
    const body = await res.text();
    return ctx.store(JSON.stringify({ status: res.status, headers: Object.fromEntries(res.headers), body }));
  };
  return fns;
}

/**
 * The conformance plug-in (kind tool): `echo` many times, and `call` with an http:// input, which
 * goes through the async http_fetch host function. mode "main": on this thread with JSPI;
 * "extism-worker": extism's runInWorker (host functions stay here, needs crossOriginIsolated).
 * @param {{wasmUrl: string, fetchUrl: string, mode: 'main' | 'extism-worker', echoCalls?: number}} args
 */
export async function conformance({ wasmUrl, fetchUrl, mode, echoCalls = 200 }) {
  const wasm = await bytesOf(wasmUrl);
  const seen = { chunks: [] };
  const t0 = performance.now();
  const options = { createPlugin, functions: { [USER]: userFunctions(seen) }, config: { kind: 'tool' } };
  const plugin = mode === 'main'
    ? await createBrowserPlugin(wasm, options)
    : await createPlugin({ wasm: [{ data: wasm }], config: { kind: 'tool' } },
      { runInWorker: true, useWasi: false, functions: { [USER]: userFunctions(seen) } });
  const t1 = performance.now();
  const echo = (await plugin.call('echo', 'hello, browser')).text();
  const t2 = performance.now();
  for (let i = 0; i < echoCalls; i++) await plugin.call('echo', `call ${i}`);
  const t3 = performance.now();
  const fetched = (await plugin.call('call', JSON.stringify({ input: fetchUrl }))).json();
  const t4 = performance.now();
  await plugin.close();
  return {
    mode, echo, fetched,
    createMs: t1 - t0, echoMsPerCall: (t3 - t2) / echoCalls, fetchCallMs: t4 - t3,
  };
}

/**
 * llm-local with its model in memory: fetch the module and the mounted files, create the plug-in
 * and call `call` with `request`; chunks emitted (when request.stream) are returned too.
 * @param {{wasmUrl: string, mounts: Record<string, Record<string, string>>, config: Record<string, string>, request: any}} args
 */
export async function llm({ wasmUrl, mounts, config, request }) {
  return runWasi({ wasmUrl, mounts, config, request, exportName: 'call' });
}

/**
 * Any WASI plug-in with in-memory mounts: fetch, create, call one export (default `call`) once.
 * @param {{wasmUrl: string, mounts: Record<string, Record<string, string>>, config: Record<string, string>, request: any, exportName?: string}} args
 */
export async function runWasi({ wasmUrl, mounts, config, request, exportName = 'call' }) {
  const t0 = performance.now();
  const wasm = await bytesOf(wasmUrl);
  /** @type {Record<string, Record<string, Uint8Array>>} */
  const files = {};
  for (const [guest, names] of Object.entries(mounts)) {
    files[guest] = {};
    for (const [name, url] of Object.entries(names)) files[guest][name] = await bytesOf(url);
  }
  const seen = { chunks: [] };
  /** @type {string[]} */
  const stderr = [];
  const t1 = performance.now();
  const plugin = await createBrowserPlugin(wasm, {
    createPlugin, wasiShim, config, mounts: files, functions: { [USER]: userFunctions(seen) },
    stderr: (line) => stderr.push(line), stdout: (line) => stderr.push(line),
  });
  const t2 = performance.now();
  let output;
  try {
    output = (await plugin.call(exportName, JSON.stringify(request))).json();
  } catch (e) {
    output = { thrown: e instanceof Error ? e.message : String(e) };
  }
  const t3 = performance.now();
  await plugin.close();
  const tokens = output?.usage?.output_tokens ?? 0;
  return {
    output, chunks: seen.chunks, stderr,
    fetchMs: t1 - t0, createMs: t2 - t1, callMs: t3 - t2, tokensPerSecond: tokens / ((t3 - t2) / 1000),
  };
}

/** @type {Promise<Worker> | null} */
let worker = null;
let nextId = 0;

/**
 * Runs a harness function in a dedicated module Worker (worker.js) instead of on the page.
 * @param {{fn: string, args: any}} request
 */
export async function inWorker({ fn, args }) {
  worker ??= new Promise((resolve, reject) => {
    const w = new Worker(new URL('./worker.js', import.meta.url), { type: 'module' });
    w.onerror = (e) => reject(new Error(`the worker failed to start: ${e.message}`));
    w.onmessage = (ev) => { if (ev.data?.ready) resolve(w); };
  });
  const w = await worker;
  const id = ++nextId;
  return new Promise((resolve, reject) => {
    /** @param {MessageEvent} ev */
    const listener = (ev) => {
      if (ev.data?.id !== id) return;
      w.removeEventListener('message', listener);
      if ('error' in ev.data) reject(new Error(ev.data.error));
      else resolve(ev.data.result);
    };
    w.addEventListener('message', listener);
    w.postMessage({ id, fn, args });
  });
}

/**
 * browserInstantiate (the Host's hook) with specs shaped as src/host.js makes them: host functions
 * that return promises without being `async`, mounts from a `mountFiles` callback. Calls the
 * conformance plug-in's tool (which fetches through http_fetch) and llm-local.
 * @param {{conformanceUrl: string, fetchUrl: string, llmUrl: string, mounts: Record<string, Record<string, string>>, config: Record<string, string>, request: any}} args
 */
export async function viaInstantiateHook({ conformanceUrl, fetchUrl, llmUrl, mounts, config, request }) {
  const { browserInstantiate } = await import('../../src/browser/instantiate.js');
  /** @type {string[]} */
  const logs = [];
  const logger = Object.fromEntries(['trace', 'debug', 'info', 'warn', 'error'].map((l) => [l, (/** @type {string} */ m) => logs.push(`${l}: ${m}`)]));
  const seen = { chunks: /** @type {any[]} */ ([]) };
  const plain = userFunctions(seen);
  /** @type {Record<string, (ctx: any, off: bigint) => any>} */
  const promising = {};
  for (const [name, fn] of Object.entries(plain)) promising[name] = (ctx, off) => Promise.resolve().then(() => fn(ctx, off));
  const instantiate = browserInstantiate({
    createPlugin, wasiShim,
    mountFiles: async (component) => {
      /** @type {Record<string, Record<string, Uint8Array>>} */
      const files = {};
      for (const m of component.grant.mounts) {
        files[m.guest] = {};
        for (const [name, url] of Object.entries(mounts[m.guest])) files[m.guest][name] = await bytesOf(url);
      }
      return files;
    },
  });
  const tool = await instantiate({
    name: 'tool', component: { grant: { mounts: [] } }, bytes: await bytesOf(conformanceUrl), wasi: false,
    config: { kind: 'tool' }, functions: { [USER]: promising }, logger,
  });
  const fetched = (await tool.call('call', JSON.stringify({ input: fetchUrl }))).json();
  await tool.close();
  const llmPlugin = await instantiate({
    name: 'tiny', component: { grant: { mounts: Object.keys(mounts).map((guest) => ({ guest, writable: false })) } },
    bytes: await bytesOf(llmUrl), wasi: true, config, functions: { [USER]: promising }, logger,
  });
  const answer = (await llmPlugin.call('call', JSON.stringify(request))).json();
  await llmPlugin.close();
  return { fetched, answer, chunks: seen.chunks, logs };
}

/**
 * A routed hop, all on this thread: the conformance plug-in as an agent calls call_tool, whose async
 * host function calls a second instance (a tool) while the agent is suspended by JSPI.
 * @param {{conformanceUrl: string, hops?: number}} args
 */
export async function routedHop({ conformanceUrl, hops = 100 }) {
  const wasm = await bytesOf(conformanceUrl);
  const seen = { chunks: [] };
  const tool = await createBrowserPlugin(wasm, { createPlugin, config: { kind: 'tool' }, functions: { [USER]: userFunctions(seen) } });
  const functions = userFunctions(seen);
  functions.call_tool = async (ctx, off) => {
    const req = JSON.parse(ctx.read(off).text());
    const out = await tool.call('call', JSON.stringify({ input: req.input }));
    return ctx.store(out.text());
  };
  const agent = await createBrowserPlugin(wasm, { createPlugin, config: { kind: 'agent' }, functions: { [USER]: functions } });
  const request = (/** @type {number} */ i) => JSON.stringify({ input: `ahoy ${i}`, tools: [{ name: 'echo', description: 'echoes' }], llms: [] });
  const first = (await agent.call('call', request(0))).json();
  const t0 = performance.now();
  for (let i = 1; i <= hops; i++) {
    const out = (await agent.call('call', request(i))).json();
    if (out.output !== `ahoy ${i}`) throw new Error(`hop ${i}: ${JSON.stringify(out)}`);
  }
  const msPerHop = (performance.now() - t0) / hops;
  await agent.close();
  await tool.close();
  return { first, msPerHop };
}
