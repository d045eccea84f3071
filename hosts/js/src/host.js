// The Chainsocket host in JavaScript: loads a run plan's plug-ins on Extism and routes the JSON
// requests between them as the Python host does (cspm/runtime/engine.py, docs/abi.md). Portable:
// nothing here imports a Node module; Node's module loader, secrets, kv file store and mounts come in
// through the options (src/node.js makes them), a browser's from its own helper.
//
// Each component is one plug-in instance. A call into a plug-in carries a Frame as Extism host
// context, so a host function knows who is calling, in which session, how deep, and by when it must
// end. Extism-JS runs host functions for a synchronous guest only when the guest runs in a worker
// (no JSPI in Node 20), so the default instantiate runs every plug-in in its own worker.

import createPlugin from "@extism/extism";
import { FetchRefused, HttpGateway, READ_BYTES, Streams } from "./http.js";
import { JsonRejected, parseBounded } from "./json.js";
import { KvKeyInvalid, KvTooLarge } from "./kv.js";
import { MemoryKvStore } from "./kv-memory.js";
import { loadPlan } from "./plan.js";
import { argumentsProblem, firstError, messageCheck } from "./schemas.js";
import { WasmFormatError, capMemory } from "./wasm.js";

export const MAX_DEPTH = 8;
export const MAX_REQUEST_BYTES = 16 * 1024 * 1024;
export const MAX_ANSWER_BYTES = 16 * 1024 * 1024;
export const MAX_CHUNK_CHARS = 64 * 1024;
export const MAX_MODULE_BYTES = 64 * 1024 * 1024;
export const MAX_LINE_CHARS = 4000;
export const MAX_LOG_LINES = 2000;
export const MAX_LOG_BYTES = 1024 * 1024;
export const MAX_SECRET_CHARS = 16 * 1024;
export const NAMESPACE = "extism:host/user";
/** The ten host functions of ABI 1 (the last three: the streaming extension). */
export const HOST_FUNCTIONS = /** @type {const} */ (["call_llm", "call_tool", "call_agent", "http_fetch", "kv_get", "kv_set",
  "emit", "http_open", "http_read", "http_close"]);
const ROUTED = /** @type {Record<string, "llm" | "tool" | "agent">} */ ({ call_llm: "llm", call_tool: "tool", call_agent: "agent" });
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
 * @typedef {{
 *   name: string, component: Component, module: WebAssembly.Module, wasi: boolean,
 *   allowedPaths: Record<string, string>, config: Record<string, string>, memoryPages: number,
 *   functions: Record<string, Record<string, (ctx: any, ...args: bigint[]) => any>>,
 *   logger: Record<"trace"|"debug"|"info"|"warn"|"error", (message: string) => void>
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

/** The host could not load the plan (a module, a secret, a mount): nothing ran. */
export class HostLoadError extends Error {}

/** A call into a plug-in failed (returned an error, trapped, timed out, answered malformed JSON). */
export class PluginFailed extends Error {}

/** A request the host refuses (an error document for the calling plug-in). */
class HostRefusal extends Error {
  /** @param {string} code @param {string} message */
  constructor(code, message) {
    super(message);
    this.code = code;
  }
}

/** @param {string} code @param {string} message */
export function errorDocument(code, message) {
  return JSON.stringify({ error: { code, message } });
}

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

/** @param {string} message */
function clip(message) {
  return message.length <= MAX_LINE_CHARS ? message : message.slice(0, MAX_LINE_CHARS) + "…";
}

class Node {
  /** @param {string} name @param {Component} component @param {WebAssembly.Module} module @param {boolean} wasi
   *  @param {Record<string, string>} allowedPaths @param {Secret[]} secrets */
  constructor(name, component, module, wasi, allowedPaths, secrets) {
    this.name = name;
    this.component = component;
    this.module = module;
    this.wasi = wasi;
    this.allowedPaths = allowedPaths;
    this.secrets = secrets;
    /** @type {PluginLike | null} */
    this.plugin = null;
    this.busy = false;
    this.callsSinceReset = 0;
    /** @type {{level: string, message: string}[]} */
    this.logs = [];
    this.logBytes = 0;
    this.droppedLogs = 0;
  }

  descriptor() {
    /** @type {{name: string, description: string, input_schema?: object}} */
    const out = { name: this.name, description: this.component.description };
    if (this.component.input_schema !== null) out.input_schema = this.component.input_schema;
    return out;
  }

  get who() {
    return `${this.component.kind} \`${this.name}\``;
  }
}

/** Host context of one call into a plug-in: its deadline is its own limit or its caller's, whichever ends first. */
class Frame {
  /** @param {Node} node @param {Frame | null} parent @param {string} session */
  constructor(node, parent, session) {
    this.node = node;
    this.parent = parent;
    this.session = session;
    /** @type {number} */
    this.depth = parent === null ? 0 : parent.depth + 1;
    const timeout = node.component.grant.timeout_ms;
    /** @type {number} performance.now() when its time is up */
    this.deadline = performance.now() + timeout;
    this.limit = `${timeout} ms of ${node.who}`;
    this.inherited = false;
    if (parent !== null && parent.deadline < this.deadline) {
      this.deadline = parent.deadline;
      this.limit = parent.limit;
      this.inherited = true;
    }
    /** @type {Streams | null} */
    this.streams = null;
    this.hostCalls = 0; // host functions of this call in progress
    this.lastReturn = -Infinity; // performance.now() when the last one answered
    /** @type {Uint8Array | null} what the guest set with output_set */
    this.output = null;
    /** @type {string | null} what the guest set with error_set: the call failed */
    this.error = null;
    this.ended = false;
  }

  chain() {
    /** @type {string[]} */
    const names = [];
    for (let f = /** @type {Frame | null} */ (this); f !== null; f = f.parent) names.unshift(f.node.name);
    return names;
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
    /** @type {Map<string, Node>} */
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
      /** @type {Map<string, Promise<WebAssembly.Module>>} compiled once per module and memory limit */
      const compiled = new Map();
      for (const [name, component] of Object.entries(plan.components)) {
        const key = component.module.digest;
        if (!bytesByDigest.has(key)) bytesByDigest.set(key, host.#verifiedBytes(name, component));
        const bytes = await /** @type {Promise<Uint8Array>} */ (bytesByDigest.get(key));
        const compileKey = `${key}/${component.grant.memory_pages}`;
        if (!compiled.has(compileKey)) compiled.set(compileKey, host.#compile(component, bytes));
        const module = await /** @type {Promise<WebAssembly.Module>} */ (compiled.get(compileKey));
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
        const node = new Node(name, component, module, wasi, allowedPaths, secrets);
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

  /** @param {Component} component @param {Uint8Array} bytes */
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
    for (const { module: from, name } of WebAssembly.Module.imports(module)) {
      if (from === "extism:host/env" || from === "wasi_snapshot_preview1") continue;
      if (from === NAMESPACE && /** @type {readonly string[]} */ (HOST_FUNCTIONS).includes(name)) continue;
      problems.push(from === NAMESPACE ? `it imports \`${name}\` from ${NAMESPACE}, which is not a Chainsocket host function`
        : `it imports \`${from}.${name}\`, which no Chainsocket host provides`);
    }
    if (problems.length) throw new HostLoadError(`${where}: not a Chainsocket plug-in: ${problems.join("; ")}`);
    return module;
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

  /** A fresh instance of a component. @param {Node} node */
  async #instance(node) {
    /** @type {Record<string, (ctx: any, offset: bigint) => Promise<bigint>>} */
    const functions = {};
    for (const fn of HOST_FUNCTIONS) functions[fn] = (ctx, offset) => this.#hostFunction(fn, ctx, offset);
    // Extism-JS's own output_set ignores the length the guest gives and returns its whole block (an
    // empty output comes back as the 1-byte block a PDK allocated for it). A function given for the
    // kernel's namespace replaces the kernel's, so the host keeps the output itself, cut to its length.
    // error_set likewise: a guest that sets an error and then traps (the SDKs' panic handlers) loses
    // its message in Extism-JS, which reports the trap; the host keeps the message it set.
    const kernel = {
      output_set: (/** @type {any} */ ctx, /** @type {bigint} */ offset, /** @type {bigint} */ length) => {
        const frame = ctx.hostContext();
        const block = ctx.read(offset)?.bytes() ?? new Uint8Array(0);
        if (frame instanceof Frame) frame.output = block.slice(0, Math.min(Number(length), block.byteLength));
      },
      error_set: (/** @type {any} */ ctx, /** @type {bigint} */ offset) => {
        const frame = ctx.hostContext();
        const block = ctx.read(offset)?.bytes() ?? new Uint8Array(0);
        if (frame instanceof Frame) frame.error = clip(new TextDecoder().decode(block.subarray(0, 4 * MAX_LINE_CHARS)));
      },
    };
    const log = (/** @type {string} */ level) => (/** @type {string} */ message) => this.#log(node, level, String(message));
    try {
      return await this.instantiate({
        name: node.name, component: node.component, module: node.module, wasi: node.wasi,
        allowedPaths: node.allowedPaths, config: { ...node.component.config }, memoryPages: node.component.grant.memory_pages,
        functions: { [NAMESPACE]: functions, "extism:host/env": kernel },
        logger: { trace: log("trace"), debug: log("debug"), info: log("info"), warn: log("warn"), error: log("error") },
      });
    } catch (err) {
      throw new HostLoadError(`${node.component.where}: the module could not be instantiated: ${/** @type {Error} */ (err).message}`);
    }
  }

  /** Keep a line within the plug-in's bounds. @param {Node} node @param {string} level @param {string} message */
  #log(node, level, message) {
    message = clip(message);
    const cost = new TextEncoder().encode(message).byteLength;
    if (node.logs.length >= MAX_LOG_LINES || node.logBytes + cost > MAX_LOG_BYTES) {
      node.droppedLogs++;
      return;
    }
    node.logs.push({ level, message });
    node.logBytes += cost;
    this.options.onLog?.(node.name, level, message);
  }

  /** The log lines kept for a component (bounded), and how many were dropped. @param {string} name */
  logs(name) {
    const node = this.#node(name);
    return { lines: [...node.logs], dropped: node.droppedLogs };
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
      if (node.component.kind === "tool" && "arguments" in payload) {
        const problem = argumentsProblem(name, node.component.input_schema, payload.arguments);
        if (problem !== null) throw new PluginFailed(`bad_request: ${problem}`);
      }
      if (node.component.kind === "agent") {
        payload = { ...this.#agentPayload(node, String(payload.input ?? ""), session), ...payload };
      }
      return this.#request(node, payload, session);
    });
  }

  /** @param {Node} node @param {any} payload @param {string} session @returns {Promise<RunResult>} */
  async #request(node, payload, session) {
    const { response } = await this.#invoke(node, payload, null, session);
    if (node.component.kind === "llm") return { output: response.content, finishReason: response.finish_reason, response, session };
    const reason = response.finish_reason ?? (response.is_error ? "error" : "final_answer");
    return { output: response.output, finishReason: reason, response, session };
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
      return this.#call(node, exportName, input, new Frame(node, null, options.session ?? this.session));
    });
  }

  /** @param {Node} node @param {string} text @param {string} session */
  #agentPayload(node, text, session) {
    const calls = node.component.calls;
    const list = (/** @type {string[]} */ names) => names.map((n) => this.#node(n).descriptor());
    return { input: text, session, llms: list(calls.llms), tools: list(calls.tools), agents: list(calls.agents) };
  }

  /**
   * Call a plug-in's `call` with a message; its answer, checked against the schema of its kind.
   * @param {Node} node @param {any} payload @param {Frame | null} parent @param {string} session
   */
  async #invoke(node, payload, parent, session) {
    const frame = new Frame(node, parent, session);
    const raw = await this.#call(node, "call", new TextEncoder().encode(JSON.stringify(payload)), frame);
    let response;
    try {
      response = parseBounded(raw, { maxBytes: MAX_ANSWER_BYTES });
    } catch (err) {
      const head = new TextDecoder().decode(raw.subarray(0, 80));
      throw new PluginFailed(`${node.who} returned invalid JSON: ${JSON.stringify(head)} (${/** @type {Error} */ (err).message})`);
    }
    const check = messageCheck(`${node.component.kind}_output`);
    if (!check(response)) throw new PluginFailed(`${node.who} returned a malformed ${node.component.kind} response: ${firstError(check)}`);
    return { response, raw };
  }

  /**
   * The one place a plug-in is entered: marks it busy (cycles), holds it to its deadline, and replaces
   * the instance after any failure (docs/abi.md §1: a trap skips the guest's clean-up).
   * @param {Node} node @param {string} exportName @param {Uint8Array} input @param {Frame} frame
   * @returns {Promise<Uint8Array>}
   */
  async #call(node, exportName, input, frame) {
    const plugin = node.plugin;
    if (plugin === null) throw new PluginFailed(`${node.who} has no instance (the host is closed or could not renew it)`);
    node.busy = true;
    /** @type {any} */
    let timer = null;
    let stopped = false;
    try {
      if (++node.callsSinceReset >= RESET_EVERY && typeof plugin.reset === "function") {
        // Extism-JS's worker mode never clears the host side's list of the guest's memory blocks, and
        // sends every freed one back and forth on each host function call: a host function would get
        // slower with every call made. reset() clears it (vars are kept).
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
      await this.#renew(node, plugin);
      if (stopped) {
        throw new PluginFailed(frame.inherited ? `${node.who} was stopped: the call's time limit (${frame.limit}) ran out`
          : `${node.who} timed out after ${node.component.grant.timeout_ms} ms (raise \`grant: {timeout_ms: N}\` if it needs longer)`);
      }
      throw new PluginFailed(this.#explain(node, frame, err));
    } finally {
      clearTimeout(timer);
      frame.ended = true;
      frame.streams?.closeAll();
      node.busy = false;
    }
  }

  /** @param {Node} node @param {PluginLike} old */
  async #renew(node, old) {
    node.plugin = null;
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

  /** @param {Node} node @param {Frame} frame @param {unknown} err */
  #explain(node, frame, err) {
    const message = String(/** @type {any} */ (err)?.message ?? err);
    if (frame.error !== null) return `${node.who} failed: ${frame.error}`;
    const set = /^Plugin-originated error: ([\s\S]*)$/.exec(message);
    if (set) return `${node.who} failed: ${set[1]}`;
    // anything else the instance threw is a trap: a worker's RuntimeError reaches this thread as a plain
    // Error (structured clone keeps only the standard error types)
    return `${node.who} crashed (wasm trap): ${message.split("\n")[0]}`;
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
    if (!(frame instanceof Frame)) {
      response = errorDocument("internal", `${fn}: called outside of a call from this host`);
    } else {
      frame.hostCalls++;
      try {
        const request = ctx.read(offset)?.bytes() ?? new Uint8Array(0);
        response = await this.#handle(frame, fn, request);
      } catch (err) {
        response = errorDocument("internal", `${fn}: ${/** @type {Error} */ (err)?.name}: ${/** @type {Error} */ (err)?.message}`);
      } finally {
        frame.hostCalls--;
        frame.lastReturn = performance.now();
      }
    }
    try {
      return ctx.store(response);
    } catch {
      return ctx.store(errorDocument("too_large", `${fn}: the answer does not fit in the plug-in's memory`));
    }
  }

  /** A request, held to the frame's deadline. @param {Frame} frame @param {string} fn @param {Uint8Array} request */
  async #handle(frame, fn, request) {
    const timeout = () => errorDocument("timeout", `${fn}: the call's time limit (${frame.limit}) ran out`);
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

  /** @param {Frame} frame @param {string} fn @param {Uint8Array} request @returns {Promise<string>} */
  async #dispatch(frame, fn, request) {
    try {
      let message;
      try {
        message = parseBounded(request, { maxBytes: MAX_REQUEST_BYTES });
      } catch (err) {
        if (err instanceof JsonRejected) throw new HostRefusal("bad_request", `${fn}: bad request: ${err.message}`);
        throw err;
      }
      const check = messageCheck(`${fn}_request`);
      if (!check(message)) throw new HostRefusal("bad_request", `${fn}: ${worded(fn, message, firstError(check))}`);
      const kind = ROUTED[fn];
      if (kind) return await this.#route(frame, kind, message);
      return JSON.stringify(await this.#hostCall(frame, fn, message));
    } catch (err) {
      if (err instanceof HostRefusal) return errorDocument(err.code, err.message);
      if (err instanceof FetchRefused) {
        return errorDocument(err.code, err.code === "timeout" ? `${err.message} (${frame.limit})` : err.message);
      }
      throw err;
    }
  }

  /** @param {Frame} frame @param {"llm" | "tool" | "agent"} kind @param {any} message @returns {Promise<string>} */
  async #route(frame, kind, message) {
    const caller = frame.node;
    const name = message.name;
    const declared = caller.component.calls[`${kind}s`];
    if (!declared.includes(name)) {
      throw new HostRefusal("not_declared", `${caller.who} did not declare ${kind} \`${name}\` (it declared: ${declared.join(", ") || "none"})`);
    }
    const target = this.#node(name);
    if (target.busy) throw new HostRefusal("cycle", `call cycle: ${[...frame.chain(), name].join(" -> ")}`);
    if (frame.depth + 1 >= MAX_DEPTH) throw new HostRefusal("depth", `call depth over ${MAX_DEPTH}: ${[...frame.chain(), name].join(" -> ")}`);
    const { package: pkg, features } = target.component;
    if (kind === "llm" && message.tools?.length && pkg !== null && !features.includes("tool_calling")) {
      throw new HostRefusal("unsupported", `llm \`${name}\` (${pkg}) does not do native tool calling; describe the tools in the prompt instead`);
    }
    if (kind === "tool" && "arguments" in message) {
      const problem = argumentsProblem(name, target.component.input_schema, message.arguments);
      if (problem !== null) throw new HostRefusal("bad_request", `call_tool: ${problem}`);
    }
    let payload = Object.fromEntries(Object.entries(message).filter(([k]) => k !== "name"));
    let session = frame.session;
    if (kind === "agent") {
      session = message.session || frame.session;
      payload = this.#agentPayload(target, message.input, session);
    }
    try {
      const { raw } = await this.#invoke(target, payload, frame, session);
      return new TextDecoder().decode(raw);
    } catch (err) {
      if (err instanceof PluginFailed) throw new HostRefusal("callee_failed", err.message);
      throw err;
    }
  }

  /** @param {Frame} frame @param {string} fn @param {any} message */
  async #hostCall(frame, fn, message) {
    const node = frame.node;
    const grant = node.component.grant;
    switch (fn) {
      case "http_fetch":
        return this.http.fetch(message, grant.hosts, node.secrets, frame.deadline);
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
        if (!grant.kv) throw new HostRefusal("not_granted", `kv is not granted to \`${node.name}\` (add \`grant: {kv: true}\`)`);
        /** @type {import("./kv.js").Scope} */
        const scope = [this.plan.kv_scope, node.name, frame.session];
        try {
          if (fn === "kv_get") return { value: await this.kv.get(scope, message.key) };
          await this.kv.set(scope, message.key, message.value);
          return {};
        } catch (err) {
          if (err instanceof KvKeyInvalid) throw new HostRefusal("bad_request", `${fn}: ${err.message}`);
          if (err instanceof KvTooLarge) throw new HostRefusal("too_large", `${fn}: ${err.message}`);
          throw err;
        }
      }
      case "emit": {
        if (message.type === "chunk") {
          const text = message.text;
          if (text.length > MAX_CHUNK_CHARS) {
            throw new HostRefusal("bad_request", `emit: a chunk of ${text.length} characters is over the ${MAX_CHUNK_CHARS}-character limit (send it in several)`);
          }
          this.options.onChunk?.(node.name, text);
        } else if (message.type === "log") {
          this.#log(node, message.level ?? "info", message.message);
        } else {
          const { done, total } = message;
          const text = message.message ?? "";
          this.#log(node, "info", total ? `progress ${done ?? "?"}/${total} ${text}`.trim() : text);
        }
        return {};
      }
      default:
        throw new HostRefusal("internal", `${fn}: not a host function`);
    }
  }
}

/**
 * The schema's message, or what a tool input must be when that is what is wrong (its `oneOf` says nothing useful).
 * @param {string} fn @param {any} message @param {string} problem
 */
function worded(fn, message, problem) {
  if (fn === "call_tool" && message && typeof message === "object" && !Array.isArray(message)) {
    const hasInput = "input" in message;
    const hasArgs = "arguments" in message;
    if (hasInput === hasArgs || (hasInput && typeof message.input !== "string")
      || (hasArgs && (typeof message.arguments !== "object" || message.arguments === null || Array.isArray(message.arguments)))) {
      return "a tool input needs `input` (text) or `arguments` (an object), not both";
    }
  }
  return problem;
}
