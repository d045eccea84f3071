// The ABI conformance cases (conformance/abi1.json) on the browser host, in the page: the same
// portable runner as Node's (../conformance-core.js), with every plug-in made by browserInstantiate
// (on the page's thread, the host's asynchronous functions through JSPI), kv in memory per case, and
// fetch() as the host's way out. tests/integration/test_js_browser_conformance.py serves this page
// (bundled by build-page.js: the host imports packages by bare name) and calls
// window.cspmConformance.run(...) through playwright, reading back plain JSON.

import createPlugin from "@extism/extism";
import * as wasiShim from "@bjorn3/browser_wasi_shim";
import { Host } from "../../src/host.js";
import { MemoryKvStore } from "../../src/kv-memory.js";
import { capMemory } from "../../src/wasm.js";
import { browserInstantiate } from "../../src/browser/instantiate.js";
import { MAX_FILE_BYTES, loadCases, moduleValue, parseCasesText, runAll } from "../conformance-core.js";

/** Where the `files` of the case file seem to be: a path only this page's secrets function knows. */
const FILES_AT = "/conformance-files";
/** The largest module the page fetches (the host's own bound, MAX_MODULE_BYTES). */
const MAX_MODULE_BYTES = 64 * 1024 * 1024;

/**
 * The bytes at a URL, refused past `limit` (checked as they arrive, not trusted from a header).
 * @param {string} url @param {number} limit
 */
async function bytesOf(url, limit) {
  const response = await fetch(url, { cache: "no-store" });
  if (!response.ok) throw new Error(`GET ${url}: HTTP ${response.status}`);
  if (!response.body) return new Uint8Array(0);
  const reader = response.body.getReader();
  /** @type {Uint8Array[]} */
  const pieces = [];
  let size = 0;
  for (;;) {
    const { done, value } = await reader.read();
    if (done) break;
    size += value.byteLength;
    if (size > limit) {
      await reader.cancel();
      throw new Error(`GET ${url}: larger than ${limit} bytes`);
    }
    pieces.push(value);
  }
  const out = new Uint8Array(size);
  let at = 0;
  for (const piece of pieces) { out.set(piece, at); at += piece.byteLength; }
  return out;
}

/**
 * The browser's side of a case. Secrets: this page is a test harness, not an app page, so it holds
 * the case file's test secret (its `files`) in memory and answers `file:<path>` sources from it, as
 * the Node host reads the file it wrote (trimmed likewise); no app page ever holds a secret.
 * @param {(component: any) => Promise<Uint8Array>} moduleBytes the module of a component, by its plan path
 * @param {() => Promise<any[]>} echoSeen
 * @returns {import("../conformance-core.js").Runner}
 */
function browserRunner(moduleBytes, echoSeen) {
  const instantiate = browserInstantiate({
    createPlugin,
    wasiShim,
    // the module's memory maximum written into its bytes, as the host does for what it compiles
    moduleBytes: async (spec) => capMemory(await moduleBytes(spec.component), spec.memoryPages).bytes,
    mountFiles: async (_component, name) => { throw new Error(`\`${name}\` mounts files, and the conformance plan mounts none`); },
  });
  return {
    echoSeen,
    openCase: async (files) => {
      /** @type {Record<string, string>} */
      const paths = {};
      /** @type {Map<string, string>} */
      const bySource = new Map();
      for (const [name, content] of Object.entries(files)) {
        paths[name] = `${FILES_AT}/${name}`;
        bySource.set(`file:${paths[name]}`, content.trim());
      }
      const kv = new MemoryKvStore(); // one per case, kept across its restarts
      return {
        files: paths,
        makeHost: (plan, observers) => Host.load(plan, {
          modules: moduleBytes,
          kv,
          secrets: async (source) => {
            const value = bySource.get(source);
            if (value === undefined) throw new Error(`the conformance page has no secret ${JSON.stringify(source.slice(0, 80))}`);
            return value;
          },
          fetch: globalThis.fetch.bind(globalThis),
          instantiate,
          ...observers,
        }),
      };
    },
  };
}

/**
 * Every case (or those in `only`) on one plug-in; plain JSON for the test.
 * @param {{casesUrl: string, schemaUrl: string, moduleUrl: string, echoUrl: string, seenUrl: string, only?: string[]}} args
 *   casesUrl/schemaUrl: the case file and cases.schema.json; moduleUrl: the plug-in under test;
 *   echoUrl: the echo server's base URL (another origin: it answers with CORS headers); seenUrl: a
 *   URL answering the echo server's recorded requests as a JSON list (not itself recorded)
 */
export async function run({ casesUrl, schemaUrl, moduleUrl, echoUrl, seenUrl, only = [] }) {
  const started = performance.now();
  const text = new TextDecoder().decode(await bytesOf(casesUrl, MAX_FILE_BYTES));
  const doc = loadCases(parseCasesText(text, casesUrl), JSON.parse(new TextDecoder().decode(await bytesOf(schemaUrl, MAX_FILE_BYTES))), casesUrl);
  const url = new URL(moduleUrl, document.baseURI).href;
  /** @type {Map<string, Promise<Uint8Array>>} */
  const read = new Map();
  const moduleBytes = (/** @type {any} */ component) => {
    const path = component.module.path;
    let bytes = read.get(path);
    if (!bytes) { bytes = bytesOf(path, MAX_MODULE_BYTES); read.set(path, bytes); }
    return bytes;
  };
  const values = { module: await moduleValue(await moduleBytes({ module: { path: url } }), url), echo_url: echoUrl };
  const echoSeen = async () => {
    const answer = await fetch(seenUrl, { cache: "no-store" });
    if (!answer.ok) throw new Error(`GET ${seenUrl}: HTTP ${answer.status}`);
    return answer.json();
  };
  const results = await runAll(doc, values, browserRunner(moduleBytes, echoSeen), only);
  const failed = results.filter((r) => !r.passed).length;
  return { module: url, passed: results.length - failed, failed, results, ms: performance.now() - started };
}

/** What the page offers playwright. */
export function capabilities() {
  const wa = /** @type {any} */ (WebAssembly);
  return { jspi: typeof wa.Suspending === "function" && typeof wa.promising === "function", userAgent: navigator.userAgent };
}
