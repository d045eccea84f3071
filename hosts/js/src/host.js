// The Chainsocket host in JavaScript: loads a run plan's plug-ins on Extism and routes the JSON
// requests between them as the Python host does (cspm/runtime/engine.py, docs/abi.md). Portable:
// nothing here imports a Node module; Node's module loader, secrets, kv file store and mounts come in
// through the options (src/node.js makes them), a browser's from its own helper.
//
// Each component is one plug-in instance. A call into a plug-in carries a Frame as Extism host
// context, so a host function knows who is calling, in which session, how deep, and by when it must
// end. Extism-JS runs host functions for a synchronous guest only when the guest runs in a worker
// (no JSPI in Node 20), so the default instantiate runs every plug-in in its own worker.
// The ABI's rules themselves (routing, schemas, deadlines, wording) are src/rules.js's, which
// src/worker-entry.js applies too.

import createPlugin from "@extism/extism";
import { HttpGateway, READ_BYTES, Streams } from "./http.js";
import { MemoryKvStore } from "./kv-memory.js";
import { loadPlan } from "./plan.js";
import {
  Frame, HOST_FUNCTIONS, HostRefusal, LogBook, NAMESPACE, Node, PluginFailed, ROUTED, agentPayload, calleeRefusal, checkArguments,
  crashedMessage, emitted, errorDocument, failedMessage, internalDocument, kernelFunctions, kvRefusal, noInstanceMessage,
  outsideDocument, parseAnswer, parseRequest, refusalDocument, requireKv, route, runResult, stoppedMessage, storeAnswer, timeoutMessage,
} from "./rules.js";
import { WasmFormatError, capMemory } from "./wasm.js";
import * as abi0 from "./abi0.js";

export {
  HOST_FUNCTIONS, MAX_ANSWER_BYTES, MAX_CHUNK_CHARS, MAX_DEPTH, MAX_LINE_CHARS, MAX_LOG_BYTES, MAX_LOG_LINES, MAX_REQUEST_BYTES,
  NAMESPACE, PluginFailed, errorDocument,
} from "./rules.js";
export const MAX_MODULE_BYTES = 64 * 1024 * 1024;
export const MAX_SECRET_CHARS = 16 * 1024;
/** After the deadline, how long a guest that is inside a host function (answered `timeout`) gets to return. */
const GRACE_MS = 250;
/** Calls into an instance between two resets of Extism-JS's block list (see #call). */
const RESET_EVERY = 8;
/** The most grace a guest gets past its deadline, however it keeps calling host functions. */
const MAX_GRACE_MS = 2000;

/**
 * @typedef {import("./plan.js").Plan} Plan
 * @typedef {import("./plan.js").Component} Component
 * @typedef {import("./plan.js").Mount} Mount
 * @typedef {import("./kv.js").KvStore} KvStore
 * @typedef {import("./http.js").Secret} Secret
 *
 * What a plug-in instance must do for the host: Extism-JS's Plugin is one.
 * @typedef {{
 *   call(name: string, input: Uint8Array, hostContext: unknown): Promise<unknown>,
 *   close(): Promise<void>,
 *   reset?: () => Promise<boolean>
 * }} PluginLike
 *
 * What `instantiate` receives to make one instance (and a fresh one after any failure). `functions`
 * holds the ten host functions (extism:host/user) and a replacement of the kernel's output_set
 * (extism:host/env): give both to Extism as they are.
 *
 * An ABI 0 module (built for Extism 0.x, src/abi0.js) is compiled from its rewritten bytes: they come as
 * `bytes` (for an instantiate that needs bytes rather than `module`), and `abi0.config` is what its
 * `config_get` answers (secrets as placeholders); `functions` then holds the cs0_* host functions.
 * @typedef {{
 *   name: string, component: Component, module: WebAssembly.Module, wasi: boolean,
 *   allowedPaths: Record<string, string>, config: Record<string, string>, memoryPages: number,
 *   functions: Record<string, Record<string, (ctx: any, ...args: bigint[]) => any>>,
 *   logger: Record<"trace"|"debug"|"info"|"warn"|"error", (message: string) => void>,
 *   bytes?: Uint8Array, abi0?: {config: Record<string, string>} | null
 * }} InstanceSpec
 *
 * @typedef {{
 *   modules?: (component: Component, name: string) => Promise<Uint8Array>,
 *   kv?: KvStore,
 *   secrets?: (source: string) => Promise<string | null>,
 *   fetch?: typeof fetch,
 *   onChunk?: (component: string, text: string) => void,
 *   onLog?: (component: string, level: string, message: string) => void,
 *   mountPath?: (mount: Mount) => Promise<string> | string,
 *   instantiate?: (spec: InstanceSpec) => Promise<PluginLike>,
 *   engine?: Engine,
 *   session?: string,
 * }} HostOptions
 *
 * Runs the checked plan's plug-ins another way than one `instantiate`d instance each (Node: src/node.js
 * gives src/worker-host.js's, every instance in one worker): given the checked host (its plan, nodes and
 * kv), the instance specs and the options, the Host that runs them. Ignored when `instantiate` is given.
 * @typedef {(checked: Host, specs: InstanceSpec[], options: HostOptions) => Promise<Host>} Engine
 *
 * @typedef {{output: string, finishReason: string, response: any, session: string}} RunResult
 */

/** @typedef {{module: WebAssembly.Module, abi0: boolean, bytes?: Uint8Array}} Compiled */

/** The host could not load the plan (a module, a secret, a mount): nothing ran. */
export class HostLoadError extends Error {}

/** sha256 hex of bytes with SubtleCrypto (Node ≥ 20 and browsers). @param {Uint8Array} bytes */
export async function sha256Hex(bytes) {
  const digest = await globalThis.crypto.subtle.digest("SHA-256", /** @type {any} */ (bytes));
  return [...new Uint8Array(digest)].map((b) => b.toString(16).padStart(2, "0")).join("");
}

/** The default instance: an Extism-JS plug-in in its own worker. @param {InstanceSpec} spec @returns {Promise<PluginLike>} */
export async function extismInstantiate(spec) {
  const plugin = await createPlugin({ wasm: [{ module: spec.module }] }, {
    runInWorker: true,
    useWasi: spec.wasi,
    allowedPaths: spec.allowedPaths,
    functions: spec.functions,
    config: spec.config,
    logger: /** @type {Console} */ (/** @type {unknown} */ (spec.logger)),
    logLevel: "info",
    memory: { maxPages: spec.memoryPages },
    enableWasiOutput: false,
  });
  return /** @type {PluginLike} */ (/** @type {unknown} */ (plugin));
}

/** A component of the plan and its instance. */
class HostNode extends Node {
  /** @param {string} name @param {Component} component @param {WebAssembly.Module} module @param {boolean} wasi
   *  @param {Record<string, string>} allowedPaths @param {Secret[]} secrets */
  constructor(name, component, module, wasi, allowedPaths, secrets) {
    super(name, component);
    this.module = module;
    this.wasi = wasi;
    this.allowedPaths = allowedPaths;
    this.secrets = secrets;
    /** @type {PluginLike | null} */
    this.plugin = null;
    this.callsSinceReset = 0;
    this.logs = new LogBook();
    /** @type {abi0.Abi0State | null} an Extism 0.x module's state (src/abi0.js), else null */
    this.abi0 = null;
    /** @type {abi0.Placeholders} its secrets' placeholders, which the http gateway swaps back */
    this.placeholders = [];
    /** @type {Uint8Array | undefined} an ABI 0 module's rewritten bytes (InstanceSpec.bytes) */
    this.bytes = undefined;
  }
}

/**
 * Host context of one call into a plug-in (src/rules.js's Frame: deadline, limit, depth, chain), and
 * what its host functions have in progress.
 * @extends {Frame<HostNode>}
 */
class HostFrame extends Frame {
  /** @param {HostNode} node @param {HostFrame | null} parent @param {string} session */
  constructor(node, parent, session) {
    super(node, parent, session);
    /** @type {Streams | null} */
    this.streams = null;
    this.hostCalls = 0; // host functions of this call in progress
    this.lastReturn = -Infinity; // performance.now() when the last one answered
    this.ended = false;
  }
}

export class Host {
  /** @param {Plan} plan @param {HostOptions} options */
  constructor(plan, options) {
    this.plan = plan;
    this.options = options;
    this.session = options.session ?? globalThis.crypto.randomUUID().replaceAll("-", "").slice(0, 16);
    /** @type {KvStore} */
    this.kv = options.kv ?? new MemoryKvStore();
    this.http = new HttpGateway(options.fetch ?? globalThis.fetch.bind(globalThis));
    /** @type {Map<string, HostNode>} */
    this.nodes = new Map();
    /** @type {Promise<unknown>} one top-level request at a time: a plug-in instance is not reentrant */
    this.queue = Promise.resolve();
    this.closed = false;
    this.instantiate = options.instantiate ?? extismInstantiate;
    /** @type {Set<Promise<PluginLike>>} fresh instances being made after a failure */
    this.renewing = new Set();
  }

  /**
   * A host for the plan, every component's module checked against its digest and instantiated.
   * @param {unknown} planData a plan object (`cspm plan APP --json`), checked here
   * @param {HostOptions} [options]
   */
  static async load(planData, options = {}) {
    const plan = loadPlan(planData);
    if (!options.modules) throw new HostLoadError("Host.load needs options.modules (component => module bytes)");
    const engine = options.instantiate ? undefined : options.engine;
    /** @type {InstanceSpec[]} */
    const specs = [];
    /** @type {PluginLike} */
    const idle = { call: async () => { throw new Error("this host hands its plug-ins to an engine"); }, close: async () => {} };
    const host = new Host(plan, engine ? { ...options, instantiate: async (spec) => { specs.push(spec); return idle; } } : options);
    try {
      /** @type {Map<string, Promise<Uint8Array>>} */
      const bytesByDigest = new Map();
      /** @type {Map<string, Promise<Compiled>>} compiled once per module and memory limit */
      const compiled = new Map();
      for (const [name, component] of Object.entries(plan.components)) {
        const key = component.module.digest;
        if (!bytesByDigest.has(key)) bytesByDigest.set(key, host.#verifiedBytes(name, component));
        const bytes = await /** @type {Promise<Uint8Array>} */ (bytesByDigest.get(key));
        const compileKey = `${key}/${component.grant.memory_pages}`;
        if (!compiled.has(compileKey)) compiled.set(compileKey, host.#compile(component, bytes));
        const { module, abi0: old, bytes: rewritten } = await /** @type {Promise<Compiled>} */ (compiled.get(compileKey));
        const usesWasi = WebAssembly.Module.imports(module).some((i) => i.module === "wasi_snapshot_preview1");
        const mounts = component.grant.mounts;
        const wasi = component.grant.wasi ?? (usesWasi || mounts.length > 0);
        /** @type {Record<string, string>} */
        const allowedPaths = {};
        if (wasi) {
          for (const mount of mounts) {
            if (!options.mountPath) throw new HostLoadError(`${component.where}: it mounts ${mount.guest}, and this host has no mounts (options.mountPath)`);
            allowedPaths[mount.guest] = await options.mountPath(mount);
          }
        }
        const secrets = await host.#secrets(name, component);
        const node = new HostNode(name, component, module, wasi, allowedPaths, secrets);
        if (old) {
          const { config, placeholders } = abi0.abi0Config(name, component.config, secrets);
          node.abi0 = new abi0.Abi0State(config);
          node.placeholders = placeholders;
          node.bytes = rewritten;
        }
        host.nodes.set(name, node);
        node.plugin = await host.#instance(node);
      }
      if (engine) return await engine(host, specs, options);
    } catch (err) {
      await host.close();
      throw err;
    }
    return host;
  }

  /** @param {string} name @param {Component} component */
  async #verifiedBytes(name, component) {
    const { where, module } = component;
    if (module.size > MAX_MODULE_BYTES) throw new HostLoadError(`${where}: the module is larger than ${MAX_MODULE_BYTES / 2 ** 20} MiB`);
    let bytes;
    try {
      bytes = await /** @type {NonNullable<HostOptions["modules"]>} */ (this.options.modules)(component, name);
    } catch (err) {
      throw new HostLoadError(`${where}: cannot read the module ${module.digest}: ${/** @type {Error} */ (err).message}`);
    }
    if (bytes.byteLength > MAX_MODULE_BYTES) throw new HostLoadError(`${where}: the module is larger than ${MAX_MODULE_BYTES / 2 ** 20} MiB`);
    const actual = `sha256:${await sha256Hex(bytes)}`;
    if (actual !== module.digest) {  // the plan names the bytes; a host runs only those
      throw new HostLoadError(`${where}: the module's bytes are not ${module.digest} as the plan says (they hash to ${actual}); refusing to run them`);
    }
    return bytes;
  }

  /**
   * The module with the grant's memory cap written in, compiled and checked. An ABI 0 module (detected
   * by its imports, src/abi0.js) is compiled again from its rewritten import section.
   * @param {Component} component @param {Uint8Array} bytes @returns {Promise<Compiled>}
   */
  async #compile(component, bytes) {
    const { where, grant } = component;
    let capped;
    try {
      capped = capMemory(bytes, grant.memory_pages);
    } catch (err) {
      if (err instanceof WasmFormatError) throw new HostLoadError(`${where}: not a usable wasm module: ${err.message}`);
      throw err;
    }
    if (capped.minPages !== null && capped.minPages > grant.memory_pages) {
      throw new HostLoadError(`${where}: the module needs ${capped.minPages} memory pages at start, more than the ${grant.memory_pages} granted`);
    }
    let module;
    try {
      module = await WebAssembly.compile(/** @type {any} */ (capped.bytes));
    } catch (err) {
      throw new HostLoadError(`${where}: the module could not be compiled: ${/** @type {Error} */ (err).message}`);
    }
    const problems = [];
    if (!WebAssembly.Module.exports(module).some((e) => e.name === "call" && e.kind === "function")) {
      problems.push("it does not export a function `call`");
    }
    const imports = WebAssembly.Module.imports(module);
    if (abi0.isAbi0(imports)) {
      problems.push(...abi0.abi0Problems(imports));
      if (problems.length) throw new HostLoadError(`${where}: not a Chainsocket plug-in (${abi0.DESCRIPTION}): ${problems.join("; ")}`);
      let rewritten;
      try {
        rewritten = abi0.rewrite(capped.bytes);
        module = await WebAssembly.compile(/** @type {any} */ (rewritten));
      } catch (err) {
        throw new HostLoadError(`${where}: the module is ${abi0.DESCRIPTION} and this host cannot link it: ${/** @type {Error} */ (err).message}`);
      }
      return { module, abi0: true, bytes: rewritten };
    }
    for (const { module: from, name } of imports) {
      if (from === "extism:host/env" || from === "wasi_snapshot_preview1") continue;
      if (from === NAMESPACE && /** @type {readonly string[]} */ (HOST_FUNCTIONS).includes(name)) continue;
      problems.push(from === NAMESPACE ? `it imports \`${name}\` from ${NAMESPACE}, which is not a Chainsocket host function`
        : `it imports \`${from}.${name}\`, which no Chainsocket host provides`);
    }
    if (problems.length) throw new HostLoadError(`${where}: not a Chainsocket plug-in: ${problems.join("; ")}`);
    return { module, abi0: false };
  }

  /** @param {string} name @param {Component} component @returns {Promise<Secret[]>} */
  async #secrets(name, component) {
    /** @type {Secret[]} */
    const out = [];
    for (const spec of component.secrets) {
      const owner = `secret \`${spec.name}\` of ${component.kind} \`${name}\``;
      if (!this.options.secrets) throw new HostLoadError(`${owner}: this host has no secrets (options.secrets), so it cannot run this component`);
      let value;
      try {
        value = await this.options.secrets(spec.source);
      } catch (err) {
        throw new HostLoadError(`${owner}: ${/** @type {Error} */ (err).message}`);
      }
      if (value === null) throw new HostLoadError(`${owner}: ${spec.source} is not available to this host`);
      if (!value || value.length > MAX_SECRET_CHARS || /[\r\n\0]/.test(value)) {
        throw new HostLoadError(`${owner} is empty, spans several lines or is over ${MAX_SECRET_CHARS / 1024} KiB`);
      }
      out.push({ spec, value });
    }
    return out;
  }

  /** A fresh instance of a component. @param {HostNode} node */
  async #instance(node) {
    /** @type {Record<string, (ctx: any, ...args: bigint[]) => any>} */
    let functions = {};
    for (const fn of HOST_FUNCTIONS) functions[fn] = (ctx, offset) => this.#hostFunction(fn, ctx, offset);
    // A function given for the kernel's namespace replaces the kernel's: the host keeps the output and
    // error a guest sets itself (see kernelFunctions).
    /** @type {Record<string, (ctx: any, ...args: any[]) => any>} */
    const kernel = kernelFunctions();
    if (node.abi0 !== null) {
      functions = abi0.abi0Functions(this.#abi0Engine);
      kernel.memory_bytes = abi0.memoryBytes;
    }
    const log = (/** @type {string} */ level) => (/** @type {string} */ message) => this.#log(node, level, String(message));
    try {
      return await this.instantiate({
        name: node.name, component: node.component, module: node.module, wasi: node.wasi,
        allowedPaths: node.allowedPaths, config: { ...node.component.config }, memoryPages: node.component.grant.memory_pages,
        functions: { [NAMESPACE]: functions, "extism:host/env": kernel },
        logger: { trace: log("trace"), debug: log("debug"), info: log("info"), warn: log("warn"), error: log("error") },
        ...(node.abi0 !== null ? { bytes: node.bytes, abi0: { config: node.abi0.config } } : {}),
      });
    } catch (err) {
      throw new HostLoadError(`${node.component.where}: the module could not be instantiated: ${/** @type {Error} */ (err).message}`);
    }
  }

  /** Keep a line within the plug-in's bounds. @param {HostNode} node @param {string} level @param {string} message */
  #log(node, level, message) {
    const kept = node.logs.add(level, message);
    if (kept !== null) this.options.onLog?.(node.name, level, kept);
  }

  /** The log lines kept for a component (bounded), and how many were dropped. @param {string} name */
  logs(name) {
    return this.#node(name).logs.snapshot();
  }

  /** @param {string} name */
  #node(name) {
    const node = this.nodes.get(name);
    if (!node) throw new Error(`the plan has no component ${JSON.stringify(name)}`);
    return node;
  }

  async close() {
    this.closed = true;
    await Promise.allSettled([...this.renewing]);
    const plugins = [...this.nodes.values()].map((n) => n.plugin).filter((p) => p !== null);
    this.nodes.clear();
    await Promise.all(plugins.map((p) => /** @type {PluginLike} */ (p).close().catch(() => {})));
    await this.kv.close?.();
  }

  // ---- running ---------------------------------------------------------------------------------

  /**
   * @template T
   * @param {() => Promise<T>} work
   * @returns {Promise<T>}
   */
  #serial(work) {
    if (this.closed) return Promise.reject(new Error("the host is closed"));
    const next = this.queue.then(work, work);
    this.queue = next.catch(() => {});
    return next;
  }

  /**
   * One request to the entry component (or another), as `cspm run --input` does: an agent gets
   * `{input, session, llms, tools, agents}`, a tool `{input}`, an llm `{messages: [{role: "user", content}]}`.
   * @param {string} text @param {{entry?: string, session?: string}} [options]
   * @returns {Promise<RunResult>}
   */
  run(text, options = {}) {
    return this.#serial(async () => {
      const node = this.#node(options.entry ?? this.plan.entry);
      const session = options.session ?? this.session;
      const kind = node.component.kind;
      const payload = kind === "agent" ? this.#agentPayload(node, text, session)
        : kind === "tool" ? { input: text } : { messages: [{ role: "user", content: text }] };
      return this.#request(node, payload, session);
    });
  }

  /**
   * One request whose message the caller wrote (a tool's `arguments`, an llm's messages); an agent's
   * descriptors are added as `run` adds them; a tool's `arguments` are checked against its input_schema.
   * @param {string} name @param {Record<string, any>} payload @param {{session?: string}} [options]
   * @returns {Promise<RunResult>}
   */
  runMessage(name, payload, options = {}) {
    return this.#serial(async () => {
      const node = this.#node(name);
      const session = options.session ?? this.session;
      checkArguments(name, node.component, payload);
      if (node.component.kind === "agent") {
        payload = { ...this.#agentPayload(node, String(payload.input ?? ""), session), ...payload };
      }
      return this.#request(node, payload, session);
    });
  }

  /** @param {HostNode} node @param {any} payload @param {string} session @returns {Promise<RunResult>} */
  async #request(node, payload, session) {
    const { response } = await this.#invoke(node, payload, null, session);
    return runResult(node.component, response, session);
  }

  /**
   * Call any export of a plug-in with raw bytes, as the top of a call stack (conformance, benchmarks);
   * PluginFailed when the call fails.
   * @param {string} name @param {string} exportName @param {Uint8Array} input
   * @param {{session?: string}} [options]
   * @returns {Promise<Uint8Array>}
   */
  call(name, exportName, input, options = {}) {
    return this.#serial(async () => {
      const node = this.#node(name);
      return this.#call(node, exportName, input, new HostFrame(node, null, options.session ?? this.session));
    });
  }

  /** @param {HostNode} node @param {string} text @param {string} session */
  #agentPayload(node, text, session) {
    return agentPayload(node, text, session, (n) => this.#node(n));
  }

  /**
   * Call a plug-in's `call` with a message; its answer, checked against the schema of its kind. An ABI 0
   * plug-in takes and gives the original shapes: its answer is built here (so valid) from its text.
   * @param {HostNode} node @param {any} payload @param {HostFrame | null} parent @param {string} session
   */
  async #invoke(node, payload, parent, session) {
    const frame = new HostFrame(node, parent, session);
    const kind = node.component.kind;
    if (node.abi0 !== null) {
      const raw = await this.#call(node, "call", abi0.originalInput(kind, node.name, payload), frame);
      return abi0.invokeAnswer(node, kind, raw);
    }
    const raw = await this.#call(node, "call", new TextEncoder().encode(JSON.stringify(payload)), frame);
    return { response: parseAnswer(node, raw), raw };
  }

  /**
   * The one place a plug-in is entered: marks it busy (cycles), holds it to its deadline, and replaces
   * the instance after any failure (docs/abi.md §1: a trap skips the guest's clean-up).
   * @param {HostNode} node @param {string} exportName @param {Uint8Array} input @param {HostFrame} frame
   * @returns {Promise<Uint8Array>}
   */
  async #call(node, exportName, input, frame) {
    const plugin = node.plugin;
    if (plugin === null) throw new PluginFailed(noInstanceMessage(node));
    node.busy = true;
    node.abi0?.begin();
    /** @type {any} */
    let timer = null;
    let stopped = false;
    try {
      if ((++node.callsSinceReset >= RESET_EVERY || node.abi0 !== null) && typeof plugin.reset === "function") {
        // Extism-JS's worker mode never clears the host side's list of the guest's memory blocks, and
        // sends every freed one back and forth on each host function call: a host function would get
        // slower with every call made. reset() clears it (vars are kept). An ABI 0 plug-in's is cleared
        // before every call, so its memory_bytes counts only what this call holds, as in the other engine.
        node.callsSinceReset = 0;
        await plugin.reset();
      }
      // At the deadline a guest inside a host function is answered `timeout` (#handle) and gets a grace
      // period to return; the worker is stopped only once no answer is on its way to it, since Extism-JS
      // waits without end for a stopped worker to take an answer (a timer that would keep Node alive).
      const stop = new Promise((_, reject) => {
        const check = () => {
          const now = performance.now();
          if (now < frame.deadline) return void (timer = setTimeout(check, frame.deadline - now));
          const answering = frame.hostCalls > 0 || now - frame.lastReturn < GRACE_MS;
          if (answering && now < frame.deadline + MAX_GRACE_MS) return void (timer = setTimeout(check, GRACE_MS));
          stopped = true;
          reject(new Error("deadline"));
        };
        check();
      });
      const pending = plugin.call(exportName, input, frame);
      pending.catch(() => {}); // once stopped, its end (if any) is nobody's concern
      const result = /** @type {any} */ (await Promise.race([pending, stop]));
      if (frame.error !== null) throw new Error(`Plugin-originated error: ${frame.error}`);
      // the output the host kept (output_set above), else what the instance returned (an instantiate hook
      // that does not route the kernel's output_set to the host)
      return frame.output ?? (typeof result?.bytes === "function" ? result.bytes() : new Uint8Array(0));
    } catch (err) {
      // an ABI 0 plug-in that failed after a refused host request (it got 0 or "None"): say which
      const note = frame.error === null ? node.abi0?.note() ?? "" : "";
      await this.#renew(node, plugin);
      if (stopped) throw new PluginFailed(stoppedMessage(node, frame) + note);
      throw new PluginFailed(this.#explain(node, frame, err) + note);
    } finally {
      clearTimeout(timer);
      frame.ended = true;
      frame.streams?.closeAll();
      node.busy = false;
    }
  }

  /** @param {HostNode} node @param {PluginLike} old */
  async #renew(node, old) {
    node.plugin = null;
    node.abi0?.renew();
    old.close().catch(() => {});
    if (this.closed) return;
    const making = this.#instance(node);
    this.renewing.add(making);
    try {
      const fresh = await making;
      if (this.closed) await fresh.close(); // closed meanwhile: close() did not see this one
      else node.plugin = fresh;
    } catch (err) {
      this.#log(node, "error", `could not make a fresh instance: ${/** @type {Error} */ (err).message}`);
    } finally {
      this.renewing.delete(making);
    }
  }

  /** @param {HostNode} node @param {HostFrame} frame @param {unknown} err */
  #explain(node, frame, err) {
    const message = String(/** @type {any} */ (err)?.message ?? err);
    if (frame.error !== null) return failedMessage(node, frame.error);
    const set = /^Plugin-originated error: ([\s\S]*)$/.exec(message);
    if (set) return failedMessage(node, set[1]);
    // anything else the instance threw is a trap: a worker's RuntimeError reaches this thread as a plain
    // Error (structured clone keeps only the standard error types)
    return crashedMessage(node, message);
  }

  // ---- host functions --------------------------------------------------------------------------

  /**
   * One host function call from a guest: never throws (Extism-JS would drop the plug-in), always
   * answers a handle to JSON. @param {string} fn @param {any} ctx @param {bigint} offset
   */
  async #hostFunction(fn, ctx, offset) {
    /** @type {string} */
    let response;
    const frame = ctx.hostContext();
    if (!(frame instanceof HostFrame)) {
      response = outsideDocument(fn);
    } else {
      frame.hostCalls++;
      try {
        const request = ctx.read(offset)?.bytes() ?? new Uint8Array(0);
        response = await this.#handle(frame, fn, request);
      } catch (err) {
        response = internalDocument(fn, err);
      } finally {
        frame.hostCalls--;
        frame.lastReturn = performance.now();
      }
    }
    return storeAnswer(ctx, fn, response);
  }

  /**
   * How the cs0_* functions of an ABI 0 plug-in (src/abi0.js) reach this host: an ABI 1 request they
   * translated is answered by #handle, as the same request of an ABI 1 plug-in.
   * @type {abi0.Abi0Engine<HostFrame>}
   */
  #abi0Engine = {
    frame: (ctx) => { const frame = ctx.hostContext(); return frame instanceof HostFrame ? frame : null; },
    state: (frame) => /** @type {abi0.Abi0State} */ (frame.node.abi0),
    handle: async (frame, fn, request) => {
      frame.hostCalls++;
      try {
        return await this.#handle(frame, fn, request);
      } catch (err) {
        return internalDocument(fn, err);
      } finally {
        frame.hostCalls--;
        frame.lastReturn = performance.now();
      }
    },
    log: (frame, level, message) => this.#log(frame.node, level, message),
  };

  /** A request, held to the frame's deadline. @param {HostFrame} frame @param {string} fn @param {Uint8Array} request */
  async #handle(frame, fn, request) {
    const timeout = () => errorDocument("timeout", timeoutMessage(fn, frame.limit));
    if (performance.now() >= frame.deadline) return timeout();
    /** @type {any} */
    let timer = null;
    const late = new Promise((resolve) => { timer = setTimeout(() => resolve(timeout()), frame.deadline - performance.now()); });
    try {
      return /** @type {string} */ (await Promise.race([this.#dispatch(frame, fn, request), late]));
    } finally {
      clearTimeout(timer);
    }
  }

  /** @param {HostFrame} frame @param {string} fn @param {Uint8Array} request @returns {Promise<string>} */
  async #dispatch(frame, fn, request) {
    try {
      const message = parseRequest(fn, request);
      const kind = ROUTED[fn];
      if (kind) return await this.#route(frame, kind, message);
      return JSON.stringify(await this.#hostCall(frame, fn, message));
    } catch (err) {
      const refused = refusalDocument(err, frame.limit);
      if (refused === null) throw err;
      return refused;
    }
  }

  /** @param {HostFrame} frame @param {"llm" | "tool" | "agent"} kind @param {any} message @returns {Promise<string>} */
  async #route(frame, kind, message) {
    const { target, payload, session } = route(frame, kind, message, (name) => this.#node(name));
    try {
      const { raw } = await this.#invoke(target, payload, frame, session);
      return new TextDecoder().decode(raw);
    } catch (err) {
      throw calleeRefusal(err);
    }
  }

  /** @param {HostFrame} frame @param {string} fn @param {any} message */
  async #hostCall(frame, fn, message) {
    const node = frame.node;
    const grant = node.component.grant;
    switch (fn) {
      case "http_fetch":
        return this.http.fetch(message, grant.hosts, node.secrets, frame.deadline, node.placeholders);
      case "http_open": {
        frame.streams ??= new Streams();
        if (!frame.streams.room()) throw Streams.refused();
        const stream = await this.http.open(message, grant.hosts, node.secrets, frame.deadline);
        if (frame.ended) { stream.close(); throw new HostRefusal("timeout", "http_open: the call ended"); }
        const number = frame.streams.add(stream);
        return { status: stream.status, headers: stream.headers, stream: number };
      }
      case "http_read":
        return (frame.streams ?? new Streams()).read(message.stream, message.max_bytes ?? READ_BYTES);
      case "http_close":
        frame.streams?.close(message.stream);
        return {};
      case "kv_get":
      case "kv_set": {
        requireKv(node);
        /** @type {import("./kv.js").Scope} */
        const scope = [this.plan.kv_scope, node.name, frame.session];
        try {
          if (fn === "kv_get") return { value: await this.kv.get(scope, message.key) };
          await this.kv.set(scope, message.key, message.value);
          return {};
        } catch (err) {
          throw kvRefusal(fn, err);
        }
      }
      case "emit": {
        const wanted = emitted(message);
        if ("chunk" in wanted) this.options.onChunk?.(node.name, wanted.chunk);
        else this.#log(node, wanted.level, wanted.line);
        return {};
      }
      default:
        throw new HostRefusal("internal", `${fn}: not a host function`);
    }
  }
}
