// The worker of src/worker-host.js: every plug-in instance of one Host, in this one thread, as a
// foreground Extism-JS instance with SYNCHRONOUS host functions. Why: in Extism-JS's worker mode each
// host function call posts the guest's block list to the main thread and back (~0.2–0.5 ms); here a
// routed call (call_llm/call_tool/call_agent) is a plain nested function call into another instance of
// this thread. Only what must wait on I/O (http_*, kv) goes to the main thread: a message, then
// Atomics.wait on a shared flag until the main thread has posted the answer on a dedicated port
// (read with receiveMessageOnPort, so no size bound on a shared buffer). Logs and chunks are posted
// without waiting. Stopping a guest that computes past its deadline: see guarded() and
// src/worker-host.js (the main thread ends this whole worker, and makes a new one).
//
// The rules are src/host.js's (docs/abi.md): declared names only, cycles, depth, schemas, the deadline
// of a call being its own or its caller's, and a fresh instance after any failure. That instance is
// made asynchronously, so it is ready for the next request, not for a second call into the same
// component within the request in which it failed (that call fails: "has no instance").

import createPlugin from "@extism/extism";
import vm from "node:vm";
import { parentPort, receiveMessageOnPort, workerData } from "node:worker_threads";
import { HOST_FUNCTIONS, MAX_ANSWER_BYTES, MAX_CHUNK_CHARS, MAX_DEPTH, MAX_LINE_CHARS, MAX_REQUEST_BYTES, NAMESPACE, errorDocument } from "./host.js";
import { JsonRejected, parseBounded } from "./json.js";
import { argumentsProblem, firstError, messageCheck } from "./schemas.js";

const ROUTED = /** @type {Record<string, "llm" | "tool" | "agent">} */ ({ call_llm: "llm", call_tool: "tool", call_agent: "agent" });
/** How long past its deadline a request to the main thread may take to be answered (it answers `timeout` itself). */
const GRACE_MS = 250;
const GUARD = new vm.Script("globalThis.__cspmGuest()");

/** @typedef {{name: string, component: any, module: WebAssembly.Module, wasi: boolean, allowedPaths: Record<string, string>, config: Record<string, string>, memoryPages: number}} NodeSpec */

if (!parentPort) throw new Error("worker-entry.js runs in a worker");
const port = parentPort;
const { flag: flagBuffer, answers, specs } = /** @type {{flag: SharedArrayBuffer, answers: import("node:worker_threads").MessagePort, specs: NodeSpec[]}} */ (workerData);
const flag = new Int32Array(flagBuffer);

/** @param {string} message */
function clip(message) {
  return message.length <= MAX_LINE_CHARS ? message : message.slice(0, MAX_LINE_CHARS) + "…";
}

class HostRefusal extends Error {
  /** @param {string} code @param {string} message */
  constructor(code, message) {
    super(message);
    this.code = code;
  }
}

class PluginFailed extends Error {}

/**
 * Extism-JS's CallContext methods are keyed by module-private symbols; the context passed to a host
 * function carries them on its prototype (found once, by their descriptions: the package is pinned).
 * @type {Record<string, symbol> | null}
 */
let SYM = null;
/** @param {any} ctx */
function symbolsOf(ctx) {
  /** @type {Record<string, symbol>} */
  const out = {};
  for (const s of Object.getOwnPropertySymbols(Object.getPrototypeOf(ctx))) out[s.description ?? ""] = s;
  for (const need of ["reset", "store-value", "set-host-context", "begin", "end"]) {
    if (!out[need]) throw new Error(`@extism/extism changed: its CallContext has no ${need} symbol`);
  }
  return out;
}

class Node {
  /** @param {NodeSpec} spec */
  constructor(spec) {
    this.spec = spec;
    this.name = spec.name;
    this.component = spec.component;
    /** @type {{ctx: any, exports: WebAssembly.Exports, plugin: any} | null} */
    this.instance = null;
    this.busy = false;
  }

  get who() {
    return `${this.component.kind} \`${this.name}\``;
  }

  descriptor() {
    /** @type {{name: string, description: string, input_schema?: object}} */
    const out = { name: this.name, description: this.component.description };
    if (this.component.input_schema !== null) out.input_schema = this.component.input_schema;
    return out;
  }
}

let nextFrame = 1;
let asked = 0;
class Frame {
  /** @param {Node} node @param {Frame | null} parent @param {string} session */
  constructor(node, parent, session) {
    this.id = nextFrame++;
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
    /** @type {Uint8Array | null} */
    this.output = null;
    /** @type {string | null} */
    this.error = null;
    this.streams = false; // opened one on the main thread: close them when this call ends
  }

  chain() {
    /** @type {string[]} */
    const names = [];
    for (let f = /** @type {Frame | null} */ (this); f !== null; f = f.parent) names.unshift(f.node.name);
    return names;
  }
}

/** @type {Map<string, Node>} */
const nodes = new Map(specs.map((s) => [s.name, new Node(s)]));
/** @type {Set<Promise<void>>} */
const renewing = new Set();
/** @type {{node: Node, frame: Frame}[]} the calls in progress, outermost first */
const entered = [];

/** @param {string} name */
function nodeOf(name) {
  const node = nodes.get(name);
  if (!node) throw new Error(`the plan has no component ${JSON.stringify(name)}`);
  return node;
}

/** @param {Node} node @param {string} level @param {string} message */
function log(node, level, message) {
  port.postMessage({ type: "log", name: node.name, level, message });
}

/** A fresh foreground instance of a node, its CallContext captured as Extism binds it to our functions. @param {Node} node */
async function instantiate(node) {
  /** @type {any} */
  let captured = null;
  /** @param {(ctx: any, ...args: any[]) => any} fn */
  const capturing = (fn) => {
    // createForegroundPlugin binds each function to the instance's CallContext: keep that context
    /** @type {any} */ (fn).bind = (/** @type {any} */ self, /** @type {any} */ ctx) => { captured = ctx; return Function.prototype.bind.call(fn, self, ctx); };
    return fn;
  };
  /** @type {Record<string, any>} */
  const functions = {};
  for (const fn of HOST_FUNCTIONS) functions[fn] = capturing((ctx, offset) => hostFunction(fn, ctx, offset));
  const kernel = {
    output_set: capturing((ctx, offset, length) => {
      const frame = ctx.hostContext();
      const block = ctx.read(offset)?.bytes() ?? new Uint8Array(0);
      if (frame instanceof Frame) frame.output = block.slice(0, Math.min(Number(length), block.byteLength));
    }),
    error_set: capturing((ctx, offset) => {
      const frame = ctx.hostContext();
      const block = ctx.read(offset)?.bytes() ?? new Uint8Array(0);
      if (frame instanceof Frame) frame.error = clip(new TextDecoder().decode(block.subarray(0, 4 * MAX_LINE_CHARS)));
    }),
  };
  const at = (/** @type {string} */ level) => (/** @type {string} */ message) => log(node, level, clip(String(message)));
  const { spec } = node;
  const plugin = await createPlugin({ wasm: [{ module: spec.module }] }, {
    runInWorker: false,
    useWasi: spec.wasi,
    allowedPaths: spec.allowedPaths,
    functions: { [NAMESPACE]: functions, "extism:host/env": kernel },
    config: spec.config,
    logger: /** @type {Console} */ (/** @type {unknown} */ ({ trace: at("trace"), debug: at("debug"), info: at("info"), warn: at("warn"), error: at("error") })),
    logLevel: "info",
    memory: { maxPages: spec.memoryPages },
    enableWasiOutput: false,
  });
  if (captured === null) throw new Error("@extism/extism changed: it did not bind the host functions to a context");
  SYM ??= symbolsOf(captured);
  const wasm = /** @type {WebAssembly.Instance} */ (await plugin.getInstance());
  return { ctx: captured, plugin, exports: wasm.exports };
}

/** Replace a node's instance (after a failure), in the background: the next top-level call waits for it. @param {Node} node */
function renew(node) {
  const old = node.instance;
  node.instance = null;
  old?.plugin.close().catch(() => {});
  const making = instantiate(node).then((fresh) => { node.instance = /** @type {any} */ (fresh); },
    (err) => log(node, "error", `could not make a fresh instance: ${err.message}`));
  renewing.add(making);
  making.finally(() => renewing.delete(making));
}

/**
 * A nested call with a deadline of its own, earlier than its caller's, stopped if it runs past it (and
 * the grace a guest answered `timeout` gets): node:vm's timeout stops the running code (wasm included)
 * from a watchdog thread and throws ERR_SCRIPT_EXECUTION_TIMEOUT at this boundary, so its caller goes
 * on, as with an instance in a worker of its own. The watchdog is a thread per call (~0.3 ms), so a call
 * that shares its caller's deadline (the usual case) runs without one: past that deadline the main
 * thread ends the worker, and the whole request fails as timed out.
 * @param {() => unknown} fn @param {Frame} frame
 */
function guarded(fn, frame) {
  const global = /** @type {any} */ (globalThis);
  global.__cspmGuest = fn;
  try {
    GUARD.runInThisContext({ timeout: Math.max(1, Math.ceil(frame.deadline - performance.now() + GRACE_MS)) });
  } finally {
    global.__cspmGuest = undefined;
  }
}

/**
 * The one place a plug-in is entered, synchronously: Extism-JS's ForegroundPlugin.call without its
 * promise (the guest's answer and failure are known when the export returns or throws).
 * @param {Node} node @param {string} exportName @param {Uint8Array} input @param {Frame} frame
 * @returns {Uint8Array}
 */
function call(node, exportName, input, frame) {
  const instance = /** @type {any} */ (node.instance);
  if (instance === null) throw new PluginFailed(`${node.who} has no instance (the host is closed or could not renew it)`);
  const fn = instance.exports[exportName];
  if (typeof fn !== "function") {
    renew(node);
    throw new PluginFailed(`${node.who} crashed (wasm trap): Plugin error: function "${exportName}" does not exist`);
  }
  const S = /** @type {Record<string, symbol>} */ (SYM);
  const ctx = instance.ctx;
  const depth = entered.length;
  const watched = frame.parent !== null && !frame.inherited; // see guarded()
  entered.push({ node, frame });
  node.busy = true;
  if (watched) Atomics.add(flag, 1, 1); // the main thread lets its watchdog stop it rather than end the worker
  /** @type {unknown} */
  let trap = null;
  try {
    ctx[S["reset"]](); // drops the previous call's blocks (vars are kept)
    ctx[S["set-host-context"]](frame);
    ctx[S["begin"]](ctx[S["store-value"]](input) ?? null);
    try {
      if (watched) guarded(fn, frame);
      else fn();
    } catch (err) {
      trap = err ?? new Error("unknown");
    } finally {
      ctx[S["end"]]();
    }
  } finally {
    // calls this one made that a watchdog stopped skipped their own clean-up (a stop runs no finally)
    while (entered.length > depth) {
      const { node: left, frame: ended } = /** @type {{node: Node, frame: Frame}} */ (entered.pop());
      if (ended !== frame) renew(left);
      if (ended.parent !== null && !ended.inherited) Atomics.sub(flag, 1, 1);
      left.busy = false;
      if (ended.streams) port.postMessage({ type: "frame-end", frame: ended.id });
    }
  }
  if (trap instanceof Error && /** @type {any} */ (trap).code === "ERR_SCRIPT_EXECUTION_TIMEOUT" || performance.now() > frame.deadline + GRACE_MS) {
    // it ran past its time: the main thread would have stopped it, had it been the top of the stack
    renew(node);
    throw new PluginFailed(frame.inherited ? `${node.who} was stopped: the call's time limit (${frame.limit}) ran out`
      : `${node.who} timed out after ${node.component.grant.timeout_ms} ms (raise \`grant: {timeout_ms: N}\` if it needs longer)`);
  }
  if (frame.error !== null) { renew(node); throw new PluginFailed(`${node.who} failed: ${frame.error}`); }
  if (trap !== null) {
    renew(node);
    throw new PluginFailed(`${node.who} crashed (wasm trap): ${String(/** @type {any} */ (trap)?.message ?? trap).split("\n")[0]}`);
  }
  return frame.output ?? new Uint8Array(0);
}

/** @param {Node} node @param {any} payload @param {Frame | null} parent @param {string} session */
function invoke(node, payload, parent, session) {
  const frame = new Frame(node, parent, session);
  const raw = call(node, "call", new TextEncoder().encode(JSON.stringify(payload)), frame);
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

/** @param {Node} node @param {string} text @param {string} session */
function agentPayload(node, text, session) {
  const calls = node.component.calls;
  const list = (/** @type {string[]} */ names) => names.map((n) => nodeOf(n).descriptor());
  return { input: text, session, llms: list(calls.llms), tools: list(calls.tools), agents: list(calls.agents) };
}

/** @param {string} fn @param {any} ctx @param {bigint} offset */
function hostFunction(fn, ctx, offset) {
  /** @type {string} */
  let response;
  const frame = ctx.hostContext();
  if (!(frame instanceof Frame)) {
    response = errorDocument("internal", `${fn}: called outside of a call from this host`);
  } else if (performance.now() >= frame.deadline) {
    response = errorDocument("timeout", `${fn}: the call's time limit (${frame.limit}) ran out`);
  } else {
    try {
      response = dispatch(frame, fn, ctx.read(offset)?.bytes() ?? new Uint8Array(0));
    } catch (err) {
      response = errorDocument("internal", `${fn}: ${/** @type {Error} */ (err)?.name}: ${/** @type {Error} */ (err)?.message}`);
    }
  }
  try {
    return ctx.store(response);
  } catch {
    return ctx.store(errorDocument("too_large", `${fn}: the answer does not fit in the plug-in's memory`));
  }
}

/** @param {string} fn @param {any} message @param {string} problem */
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

/** @param {Frame} frame @param {string} fn @param {Uint8Array} request @returns {string} */
function dispatch(frame, fn, request) {
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
    if (kind) return route(frame, kind, message);
    return hostCall(frame, fn, message);
  } catch (err) {
    if (err instanceof HostRefusal) return errorDocument(err.code, err.message);
    throw err;
  }
}

/** @param {Frame} frame @param {"llm" | "tool" | "agent"} kind @param {any} message @returns {string} */
function route(frame, kind, message) {
  const caller = frame.node;
  const name = message.name;
  const declared = caller.component.calls[`${kind}s`];
  if (!declared.includes(name)) {
    throw new HostRefusal("not_declared", `${caller.who} did not declare ${kind} \`${name}\` (it declared: ${declared.join(", ") || "none"})`);
  }
  const target = nodeOf(name);
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
    payload = agentPayload(target, message.input, session);
  }
  try {
    return new TextDecoder().decode(invoke(target, payload, frame, session).raw);
  } catch (err) {
    if (err instanceof PluginFailed) throw new HostRefusal("callee_failed", err.message);
    throw err;
  }
}

/** @param {Frame} frame @param {string} fn @param {any} message @returns {string} */
function hostCall(frame, fn, message) {
  const node = frame.node;
  if (fn === "emit") {
    if (message.type === "chunk") {
      if (message.text.length > MAX_CHUNK_CHARS) {
        throw new HostRefusal("bad_request", `emit: a chunk of ${message.text.length} characters is over the ${MAX_CHUNK_CHARS}-character limit (send it in several)`);
      }
      port.postMessage({ type: "chunk", name: node.name, text: message.text });
    } else if (message.type === "log") {
      log(node, message.level ?? "info", clip(message.message));
    } else {
      const { done, total } = message;
      const text = message.message ?? "";
      log(node, "info", clip(total ? `progress ${done ?? "?"}/${total} ${text}`.trim() : text));
    }
    return "{}";
  }
  if ((fn === "kv_get" || fn === "kv_set") && !node.component.grant.kv) {
    throw new HostRefusal("not_granted", `kv is not granted to \`${node.name}\` (add \`grant: {kv: true}\`)`);
  }
  if (fn === "http_open") frame.streams = true;
  return ask(frame, fn, message);
}

/**
 * A request the main thread answers (I/O): this thread waits for it, at most until the call's deadline
 * and a grace period (the main thread holds its own work to the same deadline and answers `timeout`).
 * @param {Frame} frame @param {string} fn @param {any} message @returns {string}
 */
function ask(frame, fn, message) {
  const seq = ++asked;
  Atomics.store(flag, 0, 0);
  port.postMessage({ type: "ask", seq, fn, name: frame.node.name, session: frame.session, frame: frame.id,
    remainingMs: frame.deadline - performance.now(), limit: frame.limit, message });
  const until = frame.deadline + GRACE_MS;
  for (;;) {
    const answer = receiveMessageOnPort(answers);
    if (answer && answer.message.seq === seq) return /** @type {string} */ (answer.message.text);
    if (answer) continue; // the late answer of an earlier request that timed out
    const left = until - performance.now();
    if (left <= 0 || Atomics.wait(flag, 0, 0, left) === "timed-out") {
      return errorDocument("timeout", `${fn}: the call's time limit (${frame.limit}) ran out`);
    }
    Atomics.store(flag, 0, 0);
  }
}

/**
 * One top-level request from the main thread.
 * @param {{id: number, kind: "invoke" | "call", name: string, exportName?: string, input?: Uint8Array, payload?: any, agentText?: string, session: string}} request
 */
function serve(request) {
  const node = nodeOf(request.name);
  if (request.kind === "call") {
    const frame = new Frame(node, null, request.session);
    return { bytes: call(node, /** @type {string} */ (request.exportName), /** @type {Uint8Array} */ (request.input), frame) };
  }
  let payload = request.payload;
  if (request.agentText !== undefined) payload = { ...agentPayload(node, request.agentText, request.session), ...payload };
  return { response: invoke(node, payload, null, request.session).response };
}

let queue = Promise.resolve();
port.on("message", (/** @type {any} */ request) => {
  queue = queue.then(async () => {
    await Promise.all([...renewing]);
    try {
      port.postMessage({ type: "done", id: request.id, ...serve(request) });
    } catch (err) {
      const failed = err instanceof PluginFailed;
      port.postMessage({ type: "done", id: request.id, failed, message: String(/** @type {any} */ (err)?.message ?? err) });
    }
  });
});

try {
  for (const node of nodes.values()) node.instance = /** @type {any} */ (await instantiate(node));
  port.postMessage({ type: "ready" });
} catch (err) {
  const node = [...nodes.values()].find((n) => n.instance === null);
  port.postMessage({ type: "load-failed", message: `${node?.component.where ?? "?"}: the module could not be instantiated: ${/** @type {Error} */ (err).message}` });
}
