// The browser entry of `cspm web` (esbuilt into dist/chainsocket-web.js): the page loads the bundle
// beside it (./app/, made by `cspm bundle`), verifies it as loadBundle does (bundle.json, then every
// file by sha256 with SubtleCrypto as it is read), builds the Host with kv memory on IndexedDB, and
// runs the app's entry once per message, in one session kept in localStorage (so a reload continues
// the conversation the plug-ins remember). No secret exists here: a bundle that needs one cannot run
// in a page, and says so.

import createPlugin from "@extism/extism";
import * as wasiShim from "@bjorn3/browser_wasi_shim";
import { BundleInvalid, loadBundle } from "../src/bundle.js";
import { Host, HostLoadError, PluginFailed, extismInstantiate } from "../src/host.js";
import { MemoryKvStore } from "../src/kv-memory.js";
import { capMemory } from "../src/wasm.js";
import { IdbKvStore } from "../src/browser/kv-idb.js";
import { browserInstantiate } from "../src/browser/instantiate.js";
import { ChatView } from "./chat.js";

// For tests and for pages that embed the host themselves: the same module instance as the page's.
export { IdbKvStore, KvUnavailable, DB_NAME } from "../src/browser/kv-idb.js";
export { KvKeyInvalid, KvTooLarge, MAX_KEY_CHARS, MAX_VALUE_BYTES, QUOTA_BYTES, QUOTA_KEYS } from "../src/kv.js";
export { Host, HostLoadError, PluginFailed, loadBundle, BundleInvalid };

/** Where the page keeps the session of an app (by its kv scope: two apps on one origin keep theirs). */
export const SESSION_PREFIX = "chainsocket-web:session:";

/** What the running page holds, for tests and the console. */
export const page = {
  /** @type {Host | null} */ host: null,
  /** @type {string | null} */ session: null,
  /** @type {import("../src/bundle.js").Bundle | null} */ bundle: null,
};

/** A new session id: 16 hex digits, as the host makes its own. */
function newSessionId() {
  return `web-${globalThis.crypto.randomUUID().replaceAll("-", "").slice(0, 16)}`;
}

/**
 * The session kept for this app, or a new one stored there (in memory only when storage is refused).
 * @param {string} kvScope @param {boolean} fresh
 */
function sessionFor(kvScope, fresh) {
  const key = SESSION_PREFIX + kvScope;
  try {
    const kept = fresh ? null : globalThis.localStorage.getItem(key);
    if (kept && /^[A-Za-z0-9_.:-]{1,128}$/.test(kept)) return { id: kept, resumed: true };
    const id = newSessionId();
    globalThis.localStorage.setItem(key, id);
    return { id, resumed: false };
  } catch {
    return { id: newSessionId(), resumed: false };
  }
}

/**
 * How the page makes a plug-in. A WASI plug-in (llm-local, kb: files mounted in memory) runs on the
 * page's thread through browserInstantiate, with JSPI for the host's asynchronous functions; there
 * each `emit` also yields one task, so the page paints the chunks as they come instead of when the
 * answer is done. Any other plug-in runs in extism's own worker when the page is cross-origin
 * isolated (`cspm web --serve` sends the headers): the page stays responsive and a plug-in past its
 * deadline can be stopped; elsewhere on the page's thread too.
 * @param {import("../src/bundle.js").Bundle} bundle
 * @param {(rel: string) => Promise<Uint8Array>} file a file of the bundle, verified
 * @returns {NonNullable<import("../src/host.js").HostOptions["instantiate"]>}
 */
function instantiateFrom(bundle, file) {
  const onThread = browserInstantiate({
    createPlugin,
    wasiShim,
    // the module's memory maximum written into its bytes, as the host does for what it compiles
    moduleBytes: async (spec) => capMemory(await file(spec.component.module.path), spec.memoryPages).bytes,
    mountFiles: async (component) => {
      /** @type {Record<string, Record<string, Uint8Array>>} */
      const mounts = {};
      for (const mount of component.grant.mounts) {
        /** @type {Record<string, Uint8Array>} */
        const files = {};
        for (const rel of bundle.mountFiles(mount.host)) files[rel.slice(mount.host.length + 1)] = await file(rel);
        mounts[mount.guest] = files;
      }
      return mounts;
    },
  });
  const isolated = Boolean(globalThis.crossOriginIsolated);
  return async (spec) => {
    if (!spec.wasi && isolated) return extismInstantiate(spec);
    const user = spec.functions["extism:host/user"];
    const emit = user?.emit;
    const functions = !emit ? spec.functions : {
      ...spec.functions,
      "extism:host/user": { ...user, emit: async (/** @type {any} */ ctx, /** @type {bigint} */ offset) => {
        const answer = await emit(ctx, offset);
        await nextTask();
        return answer;
      } },
    };
    return onThread({ ...spec, functions });
  };
}

/**
 * The bundle's files, each fetched and verified once however often it is asked for (a module by the
 * host and again by a WASI plug-in's rewrite; every file again when an instance is renewed after a
 * failure). A failed read is forgotten, so the next asks the server again.
 * @param {import("../src/bundle.js").Bundle} bundle
 */
function verifiedFiles(bundle) {
  /** @type {Map<string, Promise<Uint8Array>>} */
  const read = new Map();
  return (/** @type {string} */ rel) => {
    let bytes = read.get(rel);
    if (!bytes) {
      bytes = bundle.readFile(rel);
      read.set(rel, bytes);
      bytes.catch(() => read.delete(rel));
    }
    return bytes;
  };
}

/** A macrotask later (a MessageChannel post: not clamped like setTimeout), so the page can paint. */
function nextTask() {
  return new Promise((resolve) => {
    const channel = new MessageChannel();
    channel.port1.onmessage = () => { channel.port1.close(); resolve(undefined); };
    channel.port2.postMessage(null);
  });
}

/** @param {number} bytes */
function size(bytes) {
  return bytes >= 1 << 20 ? `${(bytes / (1 << 20)).toFixed(1)} MiB` : `${Math.ceil(bytes / 1024)} KiB`;
}

/** @param {unknown} err */
function said(err) {
  if (err instanceof HostLoadError || err instanceof BundleInvalid || err instanceof PluginFailed) return err.message;
  const e = /** @type {Error} */ (err);
  return `${e?.name ?? "Error"}: ${e?.message ?? String(err)}`;
}

/**
 * The kv store of the page: IndexedDB, or memory (said on the page) where the browser refuses it.
 * @param {ChatView} view
 */
async function kvStore(view) {
  const store = new IdbKvStore();
  try {
    await store.db();
    return store;
  } catch (err) {
    view.status(`kv memory lasts only until the page closes: ${said(err)}`, "warn");
    return new MemoryKvStore();
  }
}

async function start() {
  const view = new ChatView();
  view.setState("loading");
  /** @type {((component: string, text: string) => void) | null} where chunks of the running answer go */
  let onChunk = null;
  let host;
  let plan;
  try {
    const base = new URL("./app/", document.baseURI);
    view.status(`reading ${new URL("bundle.json", base).pathname}`);
    const bundle = await loadBundle(base);
    plan = bundle.plan;
    page.bundle = bundle;
    const entry = plan.components[plan.entry];
    view.showApp(plan.app.name, entry.description);
    const total = Object.values(bundle.files).reduce((sum, f) => sum + f.size, 0);
    view.status(`${plan.app.name}: ${Object.keys(plan.components).length} components, ${Object.keys(bundle.files).length} files (${size(total)}) to verify`);
    const kv = await kvStore(view);
    const file = verifiedFiles(bundle);
    host = await Host.load(plan, {
      modules: async (component, name) => {
        view.status(`verifying and compiling ${component.kind} \`${name}\` (${size(component.module.size)})`);
        return file(component.module.path);
      },
      kv,
      instantiate: instantiateFrom(bundle, file),
      mountPath: (mount) => mount.host, // a bundle path: instantiateFrom reads the mount's files from the bundle
      fetch: globalThis.fetch.bind(globalThis),
      onChunk: (component, text) => onChunk?.(component, text),
      onLog: (component, level, message) => view.status(`${component}: ${message}`, level === "error" ? "error" : level === "warn" ? "warn" : "info"),
    });
    page.host = host;
  } catch (err) {
    view.status(said(err), "error");
    view.errorMessage(`The app could not start: ${said(err)}`);
    view.setState("failed");
    return;
  }

  let session = sessionFor(plan.kv_scope, false);
  page.session = session.id;
  view.status(session.resumed ? `continuing session ${session.id} (its memory is in this browser)` : `new session ${session.id}`);
  const ready = /** @type {Host} */ (host);

  view.listen(async (text) => {
    view.userMessage(text);
    const answer = view.answer(plan.entry);
    onChunk = (_component, chunk) => answer.chunk(chunk);
    view.setState("running");
    const started = performance.now();
    try {
      const result = await ready.run(text, { session: session.id });
      const seconds = ((performance.now() - started) / 1000).toFixed(1);
      answer.finish(result.output, result.finishReason, `${result.finishReason} · ${seconds} s`);
    } catch (err) {
      answer.fail(said(err));
      view.status(said(err), "error");
    } finally {
      onChunk = null;
      view.setState("ready");
    }
  }, () => {
    session = sessionFor(plan.kv_scope, true);
    page.session = session.id;
    view.clear();
    view.status(`new session ${session.id}`);
  });
  view.status("ready");
  view.setState("ready");
}

if (typeof document !== "undefined" && document.getElementById("chat")) {
  start().catch((err) => {
    document.body.dataset.state = "failed";
    console.error(err);
  });
}
