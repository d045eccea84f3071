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
// The rules are src/host.js's, both taken from src/rules.js (docs/abi.md): declared names only, cycles,
// depth, schemas, the deadline of a call being its own or its caller's; and a fresh instance after any
// failure. That instance is made asynchronously, so it is ready for the next request, not for a second
// call into the same component within the request in which it failed (that call fails: "has no instance").

import createPlugin from "@extism/extism";
import vm from "node:vm";
import { parentPort, receiveMessageOnPort, workerData } from "node:worker_threads";
import {
  Frame, HOST_FUNCTIONS, NAMESPACE, Node, PluginFailed, ROUTED, agentPayload, calleeRefusal, clip, crashedMessage,
  emitted, errorDocument, failedMessage, internalDocument, kernelFunctions, noInstanceMessage, outsideDocument, parseAnswer,
  parseRequest, refusalDocument, requireKv, route, stoppedMessage, storeAnswer, timeoutMessage,
} from "./rules.js";
import * as abi0 from "./abi0.js";

/** How long past its deadline a request to the main thread may take to be answered (it answers `timeout` itself). */
const GRACE_MS = 250;
const GUARD = new vm.Script("globalThis.__cspmGuest()");

/** @typedef {{name: string, component: any, module: WebAssembly.Module, wasi: boolean, allowedPaths: Record<string, string>, config: Record<string, string>, memoryPages: number, abi0: {config: Record<string, string>} | null}} NodeSpec */

if (!parentPort) throw new Error("worker-entry.js runs in a worker");
const port = parentPort;
const { flag: flagBuffer, answers, specs } = /** @type {{flag: SharedArrayBuffer, answers: import("node:worker_threads").MessagePort, specs: NodeSpec[]}} */ (workerData);
const flag = new Int32Array(flagBuffer);

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

/** A component and its instance in this worker. */
class WorkerNode extends Node {
  /** @param {NodeSpec} spec */
  constructor(spec) {
    super(spec.name, spec.component);
    this.spec = spec;
    /** @type {{ctx: any, exports: WebAssembly.Exports, plugin: any} | null} */
    this.instance = null;
    /** an Extism 0.x module's state (src/abi0.js), else null */
    this.abi0 = spec.abi0 ? new abi0.Abi0State(spec.abi0.config) : null;
  }
}

let nextFrame = 1;
let asked = 0;
/**
 * One call into a plug-in (src/rules.js's Frame), with an id the main thread knows its streams by.
 * @extends {Frame<WorkerNode>}
 */
class WorkerFrame extends Frame {
  /** @param {WorkerNode} node @param {WorkerFrame | null} parent @param {string} session */
  constructor(node, parent, session) {
    super(node, parent, session);
    this.id = nextFrame++;
    this.streams = false; // opened one on the main thread: close them when this call ends
  }
}

/** @type {Map<string, WorkerNode>} */
const nodes = new Map(specs.map((s) => [s.name, new WorkerNode(s)]));
/** @type {Set<Promise<void>>} */
const renewing = new Set();
/** @type {{node: WorkerNode, frame: WorkerFrame}[]} the calls in progress, outermost first */
const entered = [];

/** @param {string} name */
function nodeOf(name) {
  const node = nodes.get(name);
  if (!node) throw new Error(`the plan has no component ${JSON.stringify(name)}`);
  return node;
}

/** @param {WorkerNode} node @param {string} level @param {string} message */
function log(node, level, message) {
  port.postMessage({ type: "log", name: node.name, level, message });
}

/** A fresh foreground instance of a node, its CallContext captured as Extism binds it to our functions. @param {WorkerNode} node */
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
  /** @type {Record<string, any>} */
  const kernel = {};
  const { output_set, error_set } = kernelFunctions();
  if (node.abi0 === null) {
    for (const fn of HOST_FUNCTIONS) functions[fn] = capturing((ctx, offset) => hostFunction(fn, ctx, offset));
    kernel.error_set = capturing(error_set);
  } else {
    for (const [name, fn] of Object.entries(abi0.abi0Functions(ABI0_ENGINE))) functions[name] = capturing(fn);
    kernel.memory_bytes = capturing(abi0.memoryBytes);
  }
  kernel.output_set = capturing(output_set);
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

/** Replace a node's instance (after a failure), in the background: the next top-level call waits for it. @param {WorkerNode} node */
function renew(node) {
  const old = node.instance;
  node.instance = null;
  node.abi0?.renew();
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
 * @param {() => unknown} fn @param {WorkerFrame} frame
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
 * @param {WorkerNode} node @param {string} exportName @param {Uint8Array} input @param {WorkerFrame} frame
 * @returns {Uint8Array}
 */
function call(node, exportName, input, frame) {
  const instance = /** @type {any} */ (node.instance);
  if (instance === null) throw new PluginFailed(noInstanceMessage(node));
  const fn = instance.exports[exportName];
  if (typeof fn !== "function") {
    renew(node);
    throw new PluginFailed(crashedMessage(node, `Plugin error: function "${exportName}" does not exist`));
  }
  const S = /** @type {Record<string, symbol>} */ (SYM);
  const ctx = instance.ctx;
  const depth = entered.length;
  const watched = frame.parent !== null && !frame.inherited; // see guarded()
  entered.push({ node, frame });
  node.busy = true;
  node.abi0?.begin();
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
      const { node: left, frame: ended } = /** @type {{node: WorkerNode, frame: WorkerFrame}} */ (entered.pop());
      if (ended !== frame) renew(left);
      if (ended.parent !== null && !ended.inherited) Atomics.sub(flag, 1, 1);
      left.busy = false;
      if (ended.streams) port.postMessage({ type: "frame-end", frame: ended.id });
    }
  }
  // an ABI 0 plug-in that failed after a refused host request (it got 0 or "None"): say which
  const note = frame.error === null ? node.abi0?.note() ?? "" : "";
  if (trap instanceof Error && /** @type {any} */ (trap).code === "ERR_SCRIPT_EXECUTION_TIMEOUT" || performance.now() > frame.deadline + GRACE_MS) {
    // it ran past its time: the main thread would have stopped it, had it been the top of the stack
    renew(node);
    throw new PluginFailed(stoppedMessage(node, frame) + note);
  }
  if (frame.error !== null) { renew(node); throw new PluginFailed(failedMessage(node, frame.error)); }
  if (trap !== null) {
    renew(node);
    throw new PluginFailed(crashedMessage(node, String(/** @type {any} */ (trap)?.message ?? trap)) + note);
  }
  return frame.output ?? new Uint8Array(0);
}

/**
 * An ABI 0 plug-in takes and gives the original shapes (src/abi0.js): its answer is built from its text.
 * @param {WorkerNode} node @param {any} payload @param {WorkerFrame | null} parent @param {string} session
 */
function invoke(node, payload, parent, session) {
  const frame = new WorkerFrame(node, parent, session);
  const kind = node.component.kind;
  if (node.abi0 !== null) {
    const raw = call(node, "call", abi0.originalInput(kind, node.name, payload), frame);
    return abi0.invokeAnswer(node, kind, raw);
  }
  const raw = call(node, "call", new TextEncoder().encode(JSON.stringify(payload)), frame);
  return { response: parseAnswer(node, raw), raw };
}

/**
 * How the cs0_* functions of an ABI 0 plug-in reach this worker: an ABI 1 request they translated is
 * answered as the same request of an ABI 1 plug-in (dispatch: routing here, http_fetch on the main thread).
 * @type {abi0.Abi0Engine<WorkerFrame>}
 */
const ABI0_ENGINE = {
  frame: (ctx) => { const frame = ctx.hostContext(); return frame instanceof WorkerFrame ? frame : null; },
  state: (frame) => /** @type {abi0.Abi0State} */ (frame.node.abi0),
  handle: (frame, fn, request) => {
    if (performance.now() >= frame.deadline) return errorDocument("timeout", timeoutMessage(fn, frame.limit));
    try {
      return dispatch(frame, fn, request);
    } catch (err) {
      return internalDocument(fn, err);
    }
  },
  log: (frame, level, message) => log(frame.node, level, clip(message)),
};

/** @param {string} fn @param {any} ctx @param {bigint} offset */
function hostFunction(fn, ctx, offset) {
  /** @type {string} */
  let response;
  const frame = ctx.hostContext();
  if (!(frame instanceof WorkerFrame)) {
    response = outsideDocument(fn);
  } else if (performance.now() >= frame.deadline) {
    response = errorDocument("timeout", timeoutMessage(fn, frame.limit));
  } else {
    try {
      response = dispatch(frame, fn, ctx.read(offset)?.bytes() ?? new Uint8Array(0));
    } catch (err) {
      response = internalDocument(fn, err);
    }
  }
  return storeAnswer(ctx, fn, response);
}

/** @param {WorkerFrame} frame @param {string} fn @param {Uint8Array} request @returns {string} */
function dispatch(frame, fn, request) {
  try {
    const message = parseRequest(fn, request);
    const kind = ROUTED[fn];
    if (kind) return routed(frame, kind, message);
    return hostCall(frame, fn, message);
  } catch (err) {
    const refused = refusalDocument(err, frame.limit);
    if (refused === null) throw err;
    return refused;
  }
}

/** @param {WorkerFrame} frame @param {"llm" | "tool" | "agent"} kind @param {any} message @returns {string} */
function routed(frame, kind, message) {
  const { target, payload, session } = route(frame, kind, message, nodeOf);
  try {
    return new TextDecoder().decode(invoke(target, payload, frame, session).raw);
  } catch (err) {
    throw calleeRefusal(err);
  }
}

/** @param {WorkerFrame} frame @param {string} fn @param {any} message @returns {string} */
function hostCall(frame, fn, message) {
  const node = frame.node;
  if (fn === "emit") {
    const wanted = emitted(message);
    if ("chunk" in wanted) port.postMessage({ type: "chunk", name: node.name, text: wanted.chunk });
    else log(node, wanted.level, clip(wanted.line));
    return "{}";
  }
  if (fn === "kv_get" || fn === "kv_set") requireKv(node);
  if (fn === "http_open") frame.streams = true;
  return ask(frame, fn, message);
}

/**
 * A request the main thread answers (I/O): this thread waits for it, at most until the call's deadline
 * and a grace period (the main thread holds its own work to the same deadline and answers `timeout`).
 * @param {WorkerFrame} frame @param {string} fn @param {any} message @returns {string}
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
      return errorDocument("timeout", timeoutMessage(fn, frame.limit));
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
    const frame = new WorkerFrame(node, null, request.session);
    return { bytes: call(node, /** @type {string} */ (request.exportName), /** @type {Uint8Array} */ (request.input), frame) };
  }
  let payload = request.payload;
  if (request.agentText !== undefined) payload = { ...agentPayload(node, request.agentText, request.session, nodeOf), ...payload };
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
