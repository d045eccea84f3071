// The rules of ABI 1 (docs/abi.md) that every engine of the JavaScript host applies, written once:
// src/host.js (an instance per component, asynchronous host functions), src/worker-entry.js (every
// instance in one worker, synchronous host functions) and src/worker-host.js (its main thread) import
// them, so a security rule or the wording of a refusal cannot differ between them. Pure: no I/O, no
// Extism, nothing asynchronous; what touches a guest's memory goes through the context it is given.

import { FetchRefused } from "./http.js";
import { JsonRejected, parseBounded } from "./json.js";
import { KvKeyInvalid, KvTooLarge } from "./kv.js";
import { argumentsProblem, firstError, messageCheck } from "./schemas.js";

export const MAX_DEPTH = 8;
export const MAX_REQUEST_BYTES = 16 * 1024 * 1024;
export const MAX_ANSWER_BYTES = 16 * 1024 * 1024;
export const MAX_CHUNK_CHARS = 64 * 1024;
export const MAX_LINE_CHARS = 4000;
export const MAX_LOG_LINES = 2000;
export const MAX_LOG_BYTES = 1024 * 1024;
export const NAMESPACE = "extism:host/user";
/** The ten host functions of ABI 1 (the last three: the streaming extension). */
export const HOST_FUNCTIONS = /** @type {const} */ (["call_llm", "call_tool", "call_agent", "http_fetch", "kv_get", "kv_set",
  "emit", "http_open", "http_read", "http_close"]);
/** The host functions that call another component, and the kind of component each calls. */
export const ROUTED = /** @type {Record<string, "llm" | "tool" | "agent">} */ ({ call_llm: "llm", call_tool: "tool", call_agent: "agent" });

/**
 * @typedef {import("./plan.js").Component} Component
 * @typedef {{name: string, description: string, input_schema?: object}} Descriptor
 */

/** A call into a plug-in failed (returned an error, trapped, timed out, answered malformed JSON). */
export class PluginFailed extends Error {}

/** A request the host refuses (an error document for the calling plug-in). */
export class HostRefusal extends Error {
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

/** A line of a plug-in's, cut to MAX_LINE_CHARS. @param {string} message */
export function clip(message) {
  return message.length <= MAX_LINE_CHARS ? message : message.slice(0, MAX_LINE_CHARS) + "…";
}

/** The log lines kept for one component: at most MAX_LOG_LINES lines and MAX_LOG_BYTES bytes, the rest counted as dropped. */
export class LogBook {
  constructor() {
    /** @type {{level: string, message: string}[]} */
    this.lines = [];
    this.bytes = 0;
    this.dropped = 0;
  }

  /** The line as kept (clipped), or null when it is over the bounds (dropped). @param {string} level @param {string} message */
  add(level, message) {
    message = clip(message);
    const cost = new TextEncoder().encode(message).byteLength;
    if (this.lines.length >= MAX_LOG_LINES || this.bytes + cost > MAX_LOG_BYTES) {
      this.dropped++;
      return null;
    }
    this.lines.push({ level, message });
    this.bytes += cost;
    return message;
  }

  /** What Host.logs answers. */
  snapshot() {
    return { lines: [...this.lines], dropped: this.dropped };
  }
}

/** A component of the plan as the routing rules see it. */
export class Node {
  /** @param {string} name @param {Component} component */
  constructor(name, component) {
    this.name = name;
    this.component = component;
    this.busy = false; // a call into it is in progress: calling it again is a cycle
  }

  /** How a message names it: "tool `search`". */
  get who() {
    return `${this.component.kind} \`${this.name}\``;
  }

  /** What an agent is told of it. @returns {Descriptor} */
  descriptor() {
    /** @type {Descriptor} */
    const out = { name: this.name, description: this.component.description };
    if (this.component.input_schema !== null) out.input_schema = this.component.input_schema;
    return out;
  }
}

/**
 * One call into a plug-in: who, in which session, how deep, and by when it must end. Its deadline is
 * its own limit or its caller's, whichever ends first; `limit` says whose it is.
 * @template {Node} [N=Node]
 */
export class Frame {
  /** @param {N} node @param {Frame<N> | null} parent @param {string} session */
  constructor(node, parent, session) {
    this.node = node;
    this.parent = parent;
    this.session = session;
    /** @type {number} */
    this.depth = parent === null ? 0 : parent.depth + 1;
    const timeout = node.component.grant.timeout_ms;
    /** @type {number} performance.now() when its time is up */
    this.deadline = performance.now() + timeout;
    /** @type {string} whose time limit that is, for messages */
    this.limit = `${timeout} ms of ${node.who}`;
    this.inherited = false;
    if (parent !== null && parent.deadline < this.deadline) {
      this.deadline = parent.deadline;
      this.limit = parent.limit;
      this.inherited = true;
    }
    /** @type {Uint8Array | null} what the guest set with output_set */
    this.output = null;
    /** @type {string | null} what the guest set with error_set: the call failed */
    this.error = null;
  }

  /** The names of the calls that led here, outermost first. */
  chain() {
    /** @type {string[]} */
    const names = [];
    for (let f = /** @type {Frame<N> | null} */ (this); f !== null; f = f.parent) names.unshift(f.node.name);
    return names;
  }
}

// ---- wording of failures ---------------------------------------------------------------------------

/** A host function's answer once the call's time is up. @param {string} fn @param {string} limit */
export function timeoutMessage(fn, limit) {
  return `${fn}: the call's time limit (${limit}) ran out`;
}

/** A component that ran out of time: its own limit, or its caller's. @param {Node} node @param {Frame<any>} frame */
export function stoppedMessage(node, frame) {
  return frame.inherited ? `${node.who} was stopped: the call's time limit (${frame.limit}) ran out`
    : timedOutMessage(node.who, node.component.grant.timeout_ms);
}

/** @param {string} who @param {number} timeoutMs */
export function timedOutMessage(who, timeoutMs) {
  return `${who} timed out after ${timeoutMs} ms (raise \`grant: {timeout_ms: N}\` if it needs longer)`;
}

/** @param {Node} node */
export function noInstanceMessage(node) {
  return `${node.who} has no instance (the host is closed or could not renew it)`;
}

/** A guest that set an error. @param {Node} node @param {string} error */
export function failedMessage(node, error) {
  return `${node.who} failed: ${error}`;
}

/** Anything else the instance threw is a trap. @param {Node} node @param {string} message */
export function crashedMessage(node, message) {
  return `${node.who} crashed (wasm trap): ${message.split("\n")[0]}`;
}

/** A host function called with no frame of this host as context. @param {string} fn */
export function outsideDocument(fn) {
  return errorDocument("internal", `${fn}: called outside of a call from this host`);
}

/** A host function that threw (a bug of the host's, not a refusal). @param {string} fn @param {unknown} err */
export function internalDocument(fn, err) {
  return errorDocument("internal", `${fn}: ${/** @type {Error} */ (err)?.name}: ${/** @type {Error} */ (err)?.message}`);
}

/**
 * Store a host function's answer in the guest's memory (Extism's CallContext), or a `too_large` error
 * when it does not fit. @param {any} ctx @param {string} fn @param {string} response
 */
export function storeAnswer(ctx, fn, response) {
  try {
    return ctx.store(response);
  } catch {
    return ctx.store(errorDocument("too_large", `${fn}: the answer does not fit in the plug-in's memory`));
  }
}

/**
 * The kernel's output_set and error_set (extism:host/env), kept on the call's frame: Extism-JS's own
 * output_set ignores the length the guest gives and returns its whole block (an empty output comes back
 * as the 1-byte block a PDK allocated for it), and a guest that sets an error and then traps (the SDKs'
 * panic handlers) loses its message in Extism-JS, which reports the trap.
 */
export function kernelFunctions() {
  return {
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
}

// ---- requests and answers --------------------------------------------------------------------------

/**
 * A host function's request, parsed (bounded) and checked against its schema; HostRefusal `bad_request` if not.
 * @param {string} fn @param {Uint8Array} request @returns {any}
 */
export function parseRequest(fn, request) {
  let message;
  try {
    message = parseBounded(request, { maxBytes: MAX_REQUEST_BYTES });
  } catch (err) {
    if (err instanceof JsonRejected) throw new HostRefusal("bad_request", `${fn}: bad request: ${err.message}`);
    throw err;
  }
  const check = messageCheck(`${fn}_request`);
  if (!check(message)) throw new HostRefusal("bad_request", `${fn}: ${worded(fn, message, firstError(check))}`);
  return message;
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

/**
 * A plug-in's answer to `call`, parsed (bounded) and checked against the schema of its kind; PluginFailed if not.
 * @param {Node} node @param {Uint8Array} raw
 */
export function parseAnswer(node, raw) {
  let response;
  try {
    response = parseBounded(raw, { maxBytes: MAX_ANSWER_BYTES });
  } catch (err) {
    const head = new TextDecoder().decode(raw.subarray(0, 80));
    throw new PluginFailed(`${node.who} returned invalid JSON: ${JSON.stringify(head)} (${/** @type {Error} */ (err).message})`);
  }
  const check = messageCheck(`${node.component.kind}_output`);
  if (!check(response)) throw new PluginFailed(`${node.who} returned a malformed ${node.component.kind} response: ${firstError(check)}`);
  return response;
}

/**
 * What an agent is sent: its input, session, and the descriptors of what it declared it calls.
 * @param {Node} node @param {string} text @param {string} session @param {(name: string) => Node} nodeOf
 */
export function agentPayload(node, text, session, nodeOf) {
  const calls = node.component.calls;
  const list = (/** @type {string[]} */ names) => names.map((n) => nodeOf(n).descriptor());
  return { input: text, session, llms: list(calls.llms), tools: list(calls.tools), agents: list(calls.agents) };
}

/**
 * The routing rules of a call_llm/call_tool/call_agent request (checked against its schema): declared
 * names only, no cycle, at most MAX_DEPTH deep, native tool calling only where the llm does it, a tool's
 * `arguments` against its input_schema. HostRefusal when refused; else the callee, what it is sent and in
 * which session.
 * @template {Node} N
 * @param {Frame<any>} frame @param {"llm" | "tool" | "agent"} kind @param {any} message @param {(name: string) => N} nodeOf
 * @returns {{target: N, payload: Record<string, any>, session: string}}
 */
export function route(frame, kind, message, nodeOf) {
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
    payload = agentPayload(target, message.input, session, nodeOf);
  }
  return { target, payload, session };
}

/** A callee's failure, as its caller is answered. @param {unknown} err */
export function calleeRefusal(err) {
  return err instanceof PluginFailed ? new HostRefusal("callee_failed", err.message) : err;
}

/**
 * What Host.run and Host.runMessage answer, from the entry component's checked answer.
 * @param {Component} component @param {any} response @param {string} session @returns {import("./host.js").RunResult}
 */
export function runResult(component, response, session) {
  if (component.kind === "llm") return { output: response.content, finishReason: response.finish_reason, response, session };
  const reason = response.finish_reason ?? (response.is_error ? "error" : "final_answer");
  return { output: response.output, finishReason: reason, response, session };
}

/**
 * A tool's `arguments` given to Host.runMessage, checked against its input_schema (PluginFailed if wrong).
 * @param {string} name @param {Component} component @param {Record<string, any>} payload
 */
export function checkArguments(name, component, payload) {
  if (component.kind === "tool" && "arguments" in payload) {
    const problem = argumentsProblem(name, component.input_schema, payload.arguments);
    if (problem !== null) throw new PluginFailed(`bad_request: ${problem}`);
  }
}

/**
 * What an emit request (checked against its schema) asks for: a chunk to pass on (HostRefusal when over
 * MAX_CHUNK_CHARS), or a log line (not yet clipped).
 * @param {any} message @returns {{chunk: string} | {level: string, line: string}}
 */
export function emitted(message) {
  if (message.type === "chunk") {
    const text = message.text;
    if (text.length > MAX_CHUNK_CHARS) {
      throw new HostRefusal("bad_request", `emit: a chunk of ${text.length} characters is over the ${MAX_CHUNK_CHARS}-character limit (send it in several)`);
    }
    return { chunk: text };
  }
  if (message.type === "log") return { level: message.level ?? "info", line: message.message };
  const { done, total } = message;
  const text = message.message ?? "";
  return { level: "info", line: total ? `progress ${done ?? "?"}/${total} ${text}`.trim() : text };
}

/** kv_get/kv_set need `grant: {kv: true}`. @param {Node} node */
export function requireKv(node) {
  if (!node.component.grant.kv) throw new HostRefusal("not_granted", `kv is not granted to \`${node.name}\` (add \`grant: {kv: true}\`)`);
}

/**
 * The error document of a refused host function request (HostRefusal, or http's FetchRefused, whose
 * timeout names the call's limit), or null for anything else.
 * @param {unknown} err @param {string} limit
 */
export function refusalDocument(err, limit) {
  if (err instanceof HostRefusal) return errorDocument(err.code, err.message);
  if (err instanceof FetchRefused) return errorDocument(err.code, err.code === "timeout" ? `${err.message} (${limit})` : err.message);
  return null;
}

/** A kv store's refusal as the guest is answered (anything else is the host's failure). @param {string} fn @param {unknown} err */
export function kvRefusal(fn, err) {
  if (err instanceof KvKeyInvalid) return new HostRefusal("bad_request", `${fn}: ${err.message}`);
  if (err instanceof KvTooLarge) return new HostRefusal("too_large", `${fn}: ${err.message}`);
  return err;
}
