// Chainsocket ABI 0: plug-ins built for Extism 0.x (extism-pdk 0.3) on Extism-JS (1.x kernel), as the
// Python host runs them (cspm/runtime/abi0.py, docs/abi.md §8). Portable: no Node module, no I/O.
//
// Extism 0.x linked its kernel into module `env` as `extism_*`, and the original Chainsocket host gave
// `env.call_llm/call_tool/call_agent`; Extism 1.x links neither. So the module's import section is
// rewritten (only module and field names change: the count, order and types of its imports stay, so
// every function index in its code still holds):
// - the kernel's memory functions become the 1.x kernel's (`env.extism_alloc` -> `extism:host/env.alloc`);
// - the functions whose 0.x semantics differ become this host's (`extism:host/user.cs0_*`, abi0Functions):
//   in 0.x the host never frees a handle the plug-in passes (the PDK frees it; 1.x's built-ins free it, so
//   forwarding would free it twice), an HTTP failure answers 0 instead of trapping, and the PDK frees
//   the error message right after `error_set`;
// - the three Chainsocket functions become cs0_call_*, which translate the original request shapes to
//   ABI 1 and hand them to the engine's own host function (routing and grant checks: src/rules.js).
// Each engine (src/host.js, src/worker-entry.js) gives abi0Functions how it answers an ABI 1 host
// function; the translations, bounds, ownership and wording are written once, here.

import { JsonRejected, parseBounded } from "./json.js";
import { PluginFailed, clip } from "./rules.js";
import { WasmFormatError, encodeLeb } from "./wasm.js";

export const ENV = "env";
export const EXTISM_ENV = "extism:host/env";
export const EXTISM_USER = "extism:host/user";
export const WASI = "wasi_snapshot_preview1";
export const DESCRIPTION = "built for Extism 0.x (Chainsocket ABI 0)";
export const MAX_REQUEST_BYTES = 16 * 1024 * 1024; // a call_* request, an HTTP body (as the ABI 1 limits)
export const MAX_ANSWER_BYTES = 16 * 1024 * 1024; // what an ABI 0 `call` returns (raw text)
export const MAX_KEY_BYTES = 4096; // a config or var key
export const MAX_HTTP_REQUEST_BYTES = 64 * 1024;
export const MAX_MESSAGE_BYTES = 64 * 1024; // a log line or error message read (cut further by the log book)
export const MAX_VAR_BYTES = 1024 * 1024; // keys + values of one instance's vars (Extism 1.x's default)
export const MAX_VARS = 10_000;
/** The original host's answer to a name it could not serve. */
export const NONE_ANSWER = '{"output": "None"}';

/** Each 0.x import this host links, with its wasm signature (params, results; I = i64, i = i32). */
export const ABI0_IMPORTS = /** @type {Record<string, [string, string]>} */ ({
  extism_alloc: ["I", "I"], extism_free: ["I", ""], extism_length: ["I", "I"],
  extism_load_u8: ["I", "i"], extism_load_u64: ["I", "I"],
  extism_store_u8: ["Ii", ""], extism_store_u64: ["II", ""],
  extism_input_length: ["", "I"], extism_input_offset: ["", "I"],
  extism_input_load_u8: ["I", "i"], extism_input_load_u64: ["I", "I"],
  extism_output_set: ["II", ""], extism_error_set: ["I", ""], extism_memory_bytes: ["", "I"],
  extism_config_get: ["I", "I"], extism_var_get: ["I", "I"], extism_var_set: ["II", ""],
  extism_http_request: ["II", "I"], extism_http_status_code: ["", "i"],
  extism_log_info: ["I", ""], extism_log_debug: ["I", ""], extism_log_warn: ["I", ""], extism_log_error: ["I", ""],
  call_llm: ["I", "I"], call_tool: ["I", "I"], call_agent: ["I", "I"],
});
export const CHAINSOCKET = ["call_llm", "call_tool", "call_agent"];

/** 0.x import -> 1.x kernel function of the same semantics (extism:host/env). */
export const KERNEL = /** @type {Record<string, string>} */ ({
  extism_alloc: "alloc", extism_free: "free", extism_length: "length",
  extism_load_u8: "load_u8", extism_load_u64: "load_u64", extism_store_u8: "store_u8", extism_store_u64: "store_u64",
  extism_input_length: "input_length", extism_input_offset: "input_offset",
  extism_input_load_u8: "input_load_u8", extism_input_load_u64: "input_load_u64",
  extism_output_set: "output_set", extism_memory_bytes: "memory_bytes",
});
/** 0.x import -> this host's function keeping the 0.x semantics (extism:host/user). */
export const HOST = /** @type {Record<string, string>} */ ({
  extism_error_set: "cs0_error_set", extism_config_get: "cs0_config_get",
  extism_var_get: "cs0_var_get", extism_var_set: "cs0_var_set",
  extism_http_request: "cs0_http_request", extism_http_status_code: "cs0_http_status_code",
  extism_log_info: "cs0_log_info", extism_log_debug: "cs0_log_debug", extism_log_warn: "cs0_log_warn",
  extism_log_error: "cs0_log_error",
  call_llm: "cs0_call_llm", call_tool: "cs0_call_tool", call_agent: "cs0_call_agent",
});

/** @typedef {{module: string, name: string, kind: string}} ImportDescriptor */

/**
 * Built for Extism 0.x: it imports the 0.x kernel (`env.extism_*`) or the original Chainsocket host
 * functions (`env.call_*`). @param {readonly ImportDescriptor[]} imports
 */
export function isAbi0(imports) {
  return imports.some((i) => i.module === ENV && (i.name.startsWith("extism_") || CHAINSOCKET.includes(i.name)));
}

/** Why an ABI 0 module's imports cannot be linked (empty when they can), worded as the Python host. @param {readonly ImportDescriptor[]} imports */
export function abi0Problems(imports) {
  /** @type {string[]} */
  const found = [];
  for (const { module, name, kind } of imports) {
    if (module === WASI) continue;
    if (module === ENV && Object.hasOwn(ABI0_IMPORTS, name) && kind === "function") continue;
    if (module === ENV) found.push(`it imports \`env.${name}\`, which is not an Extism 0.x function this host can link`);
    else if (module === EXTISM_ENV || module === EXTISM_USER) found.push(`it imports \`${module}.${name}\` (Extism 1.x) next to Extism 0.x imports from \`env\``);
    else found.push(`it imports \`${module}.${name}\`, which no Chainsocket host provides`);
  }
  return found;
}

// ---- the import-section rewrite ---------------------------------------------------------------------

export { WasmFormatError }; // the host's one class for a module it cannot read (wasm.js)

const UTF8 = new TextDecoder("utf-8", { fatal: true });
const ENCODER = new TextEncoder();
const VALTYPES = /** @type {Record<number, string>} */ ({ 0x7f: "i", 0x7e: "I", 0x7d: "f", 0x7c: "F", 0x7b: "v", 0x70: "r", 0x6f: "x" });
const SHOWN = /** @type {Record<string, string>} */ ({ i: "i32", I: "i64", f: "f32", F: "f64", v: "v128", r: "funcref", x: "externref" });
const KINDS = /** @type {Record<number, string>} */ ({ 0: "func", 1: "table", 2: "memory", 3: "global", 4: "tag" });

/** A bounded cursor over untrusted bytes (cspm/verify/wasm.py's reader, with its messages). */
class Reader {
  /** @param {Uint8Array} data @param {number} pos @param {number} end */
  constructor(data, pos, end) {
    this.data = data;
    this.pos = pos;
    this.end = end;
  }

  byte() {
    if (this.pos >= this.end) throw new WasmFormatError("truncated module");
    return this.data[this.pos++];
  }

  /** An unsigned LEB128 of at most maxBits bits. @param {number} [maxBits] */
  uleb(maxBits = 32) {
    let result = 0n;
    let shift = 0;
    for (;;) {
      const b = this.byte();
      result |= BigInt(b & 0x7f) << BigInt(shift);
      if (!(b & 0x80)) break;
      shift += 7;
      if (shift >= maxBits + 7) throw new WasmFormatError("malformed LEB128 integer");
    }
    if (result >> BigInt(maxBits)) throw new WasmFormatError("integer too large");
    return Number(result);
  }

  name() {
    const n = this.uleb();
    if (this.pos + n > this.end) throw new WasmFormatError("truncated module");
    const raw = this.data.subarray(this.pos, this.pos + n);
    this.pos += n;
    try {
      return UTF8.decode(raw);
    } catch {
      throw new WasmFormatError("a name is not UTF-8");
    }
  }

  limits() {
    const flags = this.byte();
    const bits = flags & 0x04 ? 64 : 32;
    this.uleb(bits);
    if (flags & 0x01) this.uleb(bits);
  }
}

/** @param {number} value */
function uleb(value) {
  return Uint8Array.from(encodeLeb(value));
}

/** @param {string} text */
function encodedName(text) {
  const raw = ENCODER.encode(text);
  return concat([uleb(raw.length), raw]);
}

/** @param {Uint8Array[]} parts */
function concat(parts) {
  const out = new Uint8Array(parts.reduce((n, p) => n + p.length, 0));
  let at = 0;
  for (const part of parts) { out.set(part, at); at += part.length; }
  return out;
}

/**
 * The module with its `env` imports renamed to what Extism 1.x and this host link (KERNEL, HOST), every
 * other byte as it was. The input is untrusted: every length is checked, and anything this rewrite does
 * not expect (an import it cannot map, a signature other than 0.x's, a second import section, bytes past
 * a section's end) is refused with WasmFormatError, worded as cspm/runtime/abi0.py words it.
 * @param {Uint8Array} wasm @returns {Uint8Array}
 */
export function rewrite(wasm) {
  if (wasm.length < 8 || wasm[0] !== 0 || wasm[1] !== 0x61 || wasm[2] !== 0x73 || wasm[3] !== 0x6d) {
    throw new WasmFormatError("not a WebAssembly module (bad magic number)");
  }
  if (wasm[4] !== 1 || wasm[5] !== 0 || wasm[6] !== 0 || wasm[7] !== 0) {
    throw new WasmFormatError("not a core WebAssembly module of version 1 (a component?)");
  }
  const reader = new Reader(wasm, 8, wasm.length);
  /** @type {Uint8Array[]} */
  const out = [wasm.subarray(0, 8)];
  /** @type {[string, string][] | null} */
  let types = null;
  let importsSeen = false;
  while (reader.pos < reader.end) {
    const start = reader.pos;
    const id = reader.byte();
    const size = reader.uleb();
    const body = reader.pos;
    if (size > reader.end - body) throw new WasmFormatError("truncated module (a section runs past the end)");
    if (id === 1) {
      if (types !== null) throw new WasmFormatError("it has two type sections");
      types = readTypes(new Reader(wasm, body, body + size));
      out.push(wasm.subarray(start, body + size));
    } else if (id === 2) {
      if (importsSeen) throw new WasmFormatError("it has two import sections");
      importsSeen = true;
      const renamed = renameImports(new Reader(wasm, body, body + size), types ?? []);
      out.push(Uint8Array.of(2), uleb(renamed.length), renamed);
    } else {
      out.push(wasm.subarray(start, body + size));
    }
    reader.pos = body + size;
  }
  if (!importsSeen) throw new WasmFormatError("it has no import section, so nothing of Extism 0.x to link");
  return concat(out);
}

/** @param {Reader} body @returns {[string, string][]} */
function readTypes(body) {
  /** @type {[string, string][]} */
  const found = [];
  const count = body.uleb();
  for (let t = 0; t < count; t++) {
    const form = body.byte();
    if (form !== 0x60) {
      throw new WasmFormatError(`its type section has a type of form 0x${hex(form)}, which this reader of Extism 0.x modules does not take (only function types)`);
    }
    let params = "";
    for (let n = body.uleb(), i = 0; i < n; i++) params += valtype(body);
    let results = "";
    for (let n = body.uleb(), i = 0; i < n; i++) results += valtype(body);
    found.push([params, results]);
  }
  if (body.pos !== body.end) throw new WasmFormatError("its type section has bytes past its last type");
  return found;
}

/** @param {number} b */
function hex(b) {
  return b.toString(16).padStart(2, "0");
}

/** @param {Reader} body */
function valtype(body) {
  const code = body.byte();
  const kind = VALTYPES[code];
  if (kind === undefined) throw new WasmFormatError(`its type section has a value type 0x${hex(code)} this reader does not take`);
  return kind;
}

/** @param {Reader} body @param {[string, string][]} types */
function renameImports(body, types) {
  const count = body.uleb();
  /** @type {Uint8Array[]} */
  const out = [uleb(count)];
  for (let i = 0; i < count; i++) {
    let module = body.name();
    let name = body.name();
    const described = body.pos;
    const kindByte = body.byte();
    const kind = KINDS[kindByte];
    /** @type {[string, string] | null} */
    let signature = null;
    if (kind === "func") {
      const index = body.uleb();
      if (index >= types.length) throw new WasmFormatError(`its import \`${module}.${name}\` names type ${index}, which it does not define`);
      signature = types[index];
    } else if (kind === "table") {
      body.byte();
      body.limits();
    } else if (kind === "memory") {
      body.limits();
    } else if (kind === "global") {
      body.byte();
      body.byte();
    } else if (kind === "tag") {
      body.byte();
      body.uleb();
    } else {
      throw new WasmFormatError(`unknown import kind ${kindByte}`);
    }
    const descriptor = body.data.subarray(described, body.pos);
    if (module === ENV) {
      if (kind !== "func" || !Object.hasOwn(ABI0_IMPORTS, name)) {
        throw new WasmFormatError(`it imports ${kind === "func" ? "function" : kind} \`env.${name}\`, which is not an Extism 0.x function this host can link`);
      }
      const wanted = ABI0_IMPORTS[name];
      const got = /** @type {[string, string]} */ (signature);
      if (got[0] !== wanted[0] || got[1] !== wanted[1]) {
        throw new WasmFormatError(`its import \`env.${name}\` has the signature ${shown(got)}; Extism 0.x's is ${shown(wanted)}`);
      }
      [module, name] = Object.hasOwn(KERNEL, name) ? [EXTISM_ENV, KERNEL[name]] : [EXTISM_USER, HOST[name]];
    } else if (module !== WASI) {
      throw new WasmFormatError(`it imports \`${module}.${name}\`, which no Chainsocket host provides to an Extism 0.x module`);
    }
    out.push(encodedName(module), encodedName(name), descriptor);
  }
  if (body.pos !== body.end) throw new WasmFormatError("its import section has bytes past its last import");
  return concat(out);
}

/** @param {[string, string]} signature */
function shown([params, results]) {
  return `(${[...params].map((p) => SHOWN[p]).join(", ")}) -> ${[...results].map((r) => SHOWN[r]).join(", ") || "nothing"}`;
}

// ---- per-component state ----------------------------------------------------------------------------

/**
 * @typedef {import("./http.js").Secret} Secret
 * @typedef {[string, Secret][]} Placeholders (placeholder text, its secret): swapped in by the http gateway
 */

/**
 * What the 0.x host functions keep for one component: its config as `config_get` answers it, and per
 * instance (reset when the engine renews it) the vars, the last HTTP status, and for the current call
 * the last refused request (a 0.x plug-in gets 0 or "None" and often fails right after: its error says why).
 */
export class Abi0State {
  /** @param {Record<string, string>} config */
  constructor(config) {
    this.config = config;
    /** @type {Map<string, Uint8Array>} keys as binary strings (one character per byte) */
    this.vars = new Map();
    this.varBytes = 0;
    this.httpStatus = 0;
    /** @type {string | null} */
    this.refusal = null;
  }

  /** A new call into the plug-in. */
  begin() {
    this.refusal = null;
  }

  /** A fresh instance: 0.x vars lived in the instance, so they start over. */
  renew() {
    this.vars.clear();
    this.varBytes = 0;
    this.httpStatus = 0;
    this.begin();
  }

  /** What a failed call's message gets appended when the plug-in set no error itself. */
  note() {
    return this.refusal ? ` (after a refused host request: ${this.refusal})` : "";
  }
}

/** `cspm-secret-<name>-<24 hex>`: URL-, header- and JSON-safe as it stands, random per load. @param {string} name */
export function placeholderFor(name) {
  const safe = [...name].map((ch) => /^[A-Za-z0-9_.-]$/.test(ch) ? ch : "_").join("").slice(0, 40);
  const random = globalThis.crypto.getRandomValues(new Uint8Array(12));
  return `cspm-secret-${safe}-${[...random].map(hex).join("")}`;
}

/**
 * The config `config_get` answers (the component's config; `name` = its name unless the config sets it,
 * as the original host always set it; each secret under its name as a placeholder) and the placeholders.
 * @param {string} name @param {Record<string, string>} config @param {readonly Secret[]} secrets
 * @returns {{config: Record<string, string>, placeholders: Placeholders}}
 */
export function abi0Config(name, config, secrets) {
  const shownConfig = { ...config };
  if (!Object.hasOwn(shownConfig, "name")) shownConfig.name = name;
  /** @type {Placeholders} */
  const placeholders = [];
  for (const secret of secrets) {
    const placeholder = placeholderFor(secret.spec.name);
    shownConfig[secret.spec.name] = placeholder;
    placeholders.push([placeholder, secret]);
  }
  return { config: shownConfig, placeholders };
}

// ---- request translation ----------------------------------------------------------------------------

/** A 0.x host request this host will not serve: answered as 0.x would (0, "None"), and logged. */
export class Refused extends Error {}

/**
 * JSON as Python's json.dumps(value, ensure_ascii=False) writes it (`", "` and `": "`), so both hosts hand
 * an ABI 0 plug-in the same bytes. @param {unknown} value @returns {string}
 */
export function dumps(value) {
  if (Array.isArray(value)) return `[${value.map(dumps).join(", ")}]`;
  if (value !== null && typeof value === "object") {
    return `{${Object.entries(value).map(([k, v]) => `${JSON.stringify(k)}: ${dumps(v)}`).join(", ")}}`;
  }
  return JSON.stringify(value);
}

/**
 * An original request (`LLMReq {name, systemprompt, inputprompt, stop}`, `ToolReq`/`AgentReq {name,
 * input}`) as the ABI 1 call_llm/call_tool/call_agent request.
 * @param {"llm" | "tool" | "agent"} kind @param {any} request @returns {Record<string, any>}
 */
export function toAbi1(kind, request) {
  if (request === null || typeof request !== "object" || Array.isArray(request) || typeof request.name !== "string") {
    throw new Refused("the request is not a JSON object with a `name`");
  }
  const name = request.name;
  if (kind === "llm") {
    // as Python's request.get(key, default): a key given as null is refused, not defaulted
    const system = "systemprompt" in request ? request.systemprompt : "";
    const prompt = "inputprompt" in request ? request.inputprompt : "";
    const stop = "stop" in request ? request.stop : [];
    if (typeof system !== "string" || typeof prompt !== "string" || !Array.isArray(stop) || !stop.every((s) => typeof s === "string")) {
      throw new Refused("an LLMReq needs `systemprompt` and `inputprompt` (text) and `stop` (a list of text)");
    }
    const messages = system ? [{ role: "system", content: system }] : [];
    messages.push({ role: "user", content: prompt });
    return { name, messages, ...(stop.length ? { stop } : {}) };
  }
  const text = request.input;
  if (typeof text !== "string") throw new Refused(`a ${kind === "tool" ? "ToolReq" : "AgentReq"} needs \`input\` (text)`);
  return { name, input: text };
}

/**
 * The text of an ABI 1 answer, for `ActionRep {output}`; Refused when it is an error.
 * @param {"llm" | "tool" | "agent"} kind @param {any} answer @returns {string}
 */
export function fromAbi1(kind, answer) {
  const error = answer?.error;
  if (error !== null && typeof error === "object" && !Array.isArray(error)) throw new Refused(`${error.code}: ${error.message}`);
  if (kind === "llm") {
    if (answer.finish_reason === "error") throw new Refused(`the llm answered an error: ${answer.error || answer.content}`);
    return String(answer.content ?? "");
  }
  return String(answer.output ?? "");
}

/**
 * What an ABI 0 plug-in's `call` receives for an ABI 1 request: the original shapes, named as the
 * original host named them (the component's own name). An llm's system messages become `systemprompt`,
 * its last message `inputprompt`, and the turns between are appended to it as `Role: content` lines.
 * @param {"llm" | "tool" | "agent"} kind @param {string} name @param {Record<string, any>} payload
 */
export function originalInput(kind, name, payload) {
  /** @type {Record<string, any>} */
  let body;
  if (kind === "llm") {
    /** @type {{role: string, content: string}[]} */
    const messages = payload.messages ?? [];
    const system = messages.filter((m) => m.role === "system").map((m) => m.content);
    const turns = messages.filter((m) => m.role !== "system");
    const history = turns.slice(0, -1).map((m) => `${capitalize(String(m.role ?? "user"))}: ${m.content}`);
    body = {
      name, systemprompt: [system.join("\n\n"), history.join("\n")].filter(Boolean).join("\n\n"),
      inputprompt: turns.length ? turns[turns.length - 1].content : "", stop: [...(payload.stop ?? [])],
    };
  } else if (kind === "tool" && !("input" in payload)) {
    body = { name, input: dumps(payload.arguments ?? {}) };
  } else {
    body = { name, input: payload.input ?? "" };
  }
  return ENCODER.encode(dumps(body));
}

/** Python's str.capitalize. @param {string} text */
function capitalize(text) {
  return text.slice(0, 1).toUpperCase() + text.slice(1).toLowerCase();
}

/**
 * An ABI 0 plug-in's output (raw text, which the original host wrapped as `ActionRep {output}`) as the
 * ABI 1 answer of its kind; Refused when it is too large. Token counts are unknown: 0.
 * @param {"llm" | "tool" | "agent"} kind @param {Uint8Array} raw
 */
export function answerOf(kind, raw) {
  if (raw.byteLength > MAX_ANSWER_BYTES) throw new Refused(`its answer is larger than ${MAX_ANSWER_BYTES / 2 ** 20} MiB`);
  const text = new TextDecoder().decode(raw);
  if (kind === "llm") return { content: text, finish_reason: "stop", usage: { input_tokens: 0, output_tokens: 0 } };
  if (kind === "tool") return { output: text, is_error: false };
  return { output: text, finish_reason: "final_answer" };
}

/**
 * `invoke`'s end for an ABI 0 node, in both engines: its raw output as the ABI 1 answer (built here,
 * so valid) and that answer's JSON bytes, or PluginFailed naming the node.
 * @param {{ who: string }} node @param {"llm" | "tool" | "agent"} kind @param {Uint8Array} raw
 * @returns {{ response: any, raw: Uint8Array }}
 */
export function invokeAnswer(node, kind, raw) {
  let response;
  try {
    response = answerOf(kind, raw);
  } catch (err) {
    throw new PluginFailed(`${node.who} returned an unusable answer: ${/** @type {Error} */ (err).message}`);
  }
  return { response, raw: new TextEncoder().encode(JSON.stringify(response)) };
}

// ---- host functions ---------------------------------------------------------------------------------

/**
 * How an engine serves the cs0_* functions: the calling frame's 0.x state, an ABI 1 host function
 * answered as the engine answers any (`call_tool`, `call_llm`, `call_agent`, `http_fetch`: its JSON
 * text, an error document when refused; synchronously in the one-worker engine, a promise in the
 * others), and a log line of the component's.
 * @template F
 * @typedef {{
 *   frame(ctx: any): F | null,
 *   state(frame: F): Abi0State,
 *   handle(frame: F, fn: string, request: Uint8Array): string | Promise<string>,
 *   log(frame: F, level: string, message: string): void,
 * }} Abi0Engine
 */

/**
 * `f(value)`, now when value is not a promise (the one-worker engine's host functions are synchronous),
 * else once it settles.
 * @template T, U @param {T | Promise<T>} value @param {(v: T) => U} f @returns {U | Promise<U>}
 */
function then(value, f) {
  return value instanceof Promise ? value.then(f) : f(value);
}

/** The guest's block `handle` (0: none), at most `limit` bytes. @param {any} ctx @param {bigint} handle @param {number} limit @param {string} what */
function readBlock(ctx, handle, limit, what) {
  if (handle === 0n) return new Uint8Array(0);
  const length = Number(ctx.length(handle));
  if (length > limit) throw new Refused(`${what} is larger than ${limit} bytes`);
  if (length === 0) return new Uint8Array(0);
  return /** @type {Uint8Array} */ (ctx.read(handle)?.bytes() ?? new Uint8Array(0)).subarray(0, length);
}

const STRICT = new TextDecoder("utf-8", { fatal: true });
const LOOSE = new TextDecoder();

/** @param {any} ctx @param {bigint} handle @param {number} limit @param {string} what */
function readText(ctx, handle, limit, what) {
  try {
    return STRICT.decode(readBlock(ctx, handle, limit, what));
  } catch (err) {
    if (err instanceof Refused) throw err;
    throw new Refused(`${what} is not UTF-8 text`);
  }
}

/** A new block holding `data`, which the plug-in owns and frees; 0 for no data or no room. @param {any} ctx @param {Uint8Array | string} data */
function writeBlock(ctx, data) {
  const bytes = typeof data === "string" ? ENCODER.encode(data) : data;
  if (!bytes.byteLength) return 0n;
  try {
    return /** @type {bigint} */ (ctx.store(bytes));
  } catch {
    return 0n;
  }
}

/** @param {Uint8Array} bytes one character per byte: a Map key for bytes */
function binary(bytes) {
  let out = "";
  for (let i = 0; i < bytes.length; i += 8192) out += String.fromCharCode(...bytes.subarray(i, i + 8192));
  return out;
}

/**
 * Log a refusal as the Python host does (`<function>: <why>`, a warning) and keep it for the call's
 * failure message. @template F @param {Abi0Engine<F>} engine @param {F} frame @param {string} fn @param {string} message
 */
function refused(engine, frame, fn, message) {
  engine.state(frame).refusal = `${fn}: ${message}`.slice(0, 400);
  engine.log(frame, "warn", `${fn}: ${message}`);
}

/**
 * The cs0_* host functions (extism:host/user) for an engine. Each never throws into the guest: a refusal
 * is logged and answered as 0.x answered failures (0, or `{"output": "None"}` for call_*); it never
 * frees a handle the plug-in passes, and what it returns is a new block the plug-in owns.
 * @template F @param {Abi0Engine<F>} engine
 * @returns {Record<string, (ctx: any, ...args: bigint[]) => any>}
 */
export function abi0Functions(engine) {
  /** @typedef {(ctx: any, frame: F, args: bigint[]) => any} Handler */
  /** @type {Record<string, Handler>} */
  const handlers = {
    extism_error_set: (ctx, frame, [h]) => {
      // read now: the 0.3 PDK frees the message right after error_set, before the host could
      const text = LOOSE.decode(readBlock(ctx, h, MAX_MESSAGE_BYTES, "the error message"));
      /** @type {any} */ (frame).error = text ? clip(text) : null;
      return undefined;
    },
    extism_config_get: (ctx, frame, [h]) => {
      const config = engine.state(frame).config;
      const key = readText(ctx, h, MAX_KEY_BYTES, "the config key");
      return Object.hasOwn(config, key) ? writeBlock(ctx, config[key]) : 0n;
    },
    extism_var_get: (ctx, frame, [h]) => {
      const value = engine.state(frame).vars.get(binary(readBlock(ctx, h, MAX_KEY_BYTES, "the var key")));
      return value === undefined ? 0n : writeBlock(ctx, value);
    },
    extism_var_set: (ctx, frame, [h, v]) => {
      const state = engine.state(frame);
      const key = binary(readBlock(ctx, h, MAX_KEY_BYTES, "the var key"));
      const old = state.vars.get(key);
      if (old !== undefined) { state.vars.delete(key); state.varBytes -= key.length + old.byteLength; }
      if (v === 0n) return undefined; // 0.x: a value handle of 0 removes the var
      const value = readBlock(ctx, v, MAX_VAR_BYTES, "the var value").slice();
      if (state.varBytes + key.length + value.byteLength > MAX_VAR_BYTES || state.vars.size >= MAX_VARS) {
        throw new Refused(`the vars are full (${MAX_VAR_BYTES / 1024} KiB, ${MAX_VARS} keys): ${JSON.stringify(key.slice(0, 40))} not set`);
      }
      state.vars.set(key, value);
      state.varBytes += key.length + value.byteLength;
      return undefined;
    },
    extism_http_request: (ctx, frame, [h, b]) => {
      // 0.x: {"url", "headers"|"header", "method"} and an optional body; through the engine's http_fetch
      // (grants, secrets and their placeholders, redaction, bounds); 0 when it failed or was refused
      const state = engine.state(frame);
      state.httpStatus = 0;
      let request;
      try {
        request = parseBounded(readBlock(ctx, h, MAX_HTTP_REQUEST_BYTES, "the HTTP request"), { maxBytes: MAX_HTTP_REQUEST_BYTES });
      } catch (err) {
        if (err instanceof JsonRejected) throw new Refused(`the HTTP request is not JSON: ${err.message}`);
        throw err;
      }
      if (request === null || typeof request !== "object" || Array.isArray(request) || typeof request.url !== "string"
        || Object.keys(request).some((k) => !["url", "headers", "header", "method"].includes(k))) {
        throw new Refused('the HTTP request is not `{"url", "headers", "method"}`');
      }
      const headers = request.headers ?? request.header ?? {};
      const method = request.method || "GET";
      if (headers === null || typeof headers !== "object" || Array.isArray(headers) || typeof method !== "string") {
        throw new Refused("the HTTP request's `headers` must be an object and `method` text");
      }
      /** @type {Record<string, any>} */
      const message = { method: method.toUpperCase(), url: request.url, headers };
      if (b !== 0n) message.body = readText(ctx, b, MAX_REQUEST_BYTES, "the HTTP body");
      return then(engine.handle(frame, "http_fetch", ENCODER.encode(JSON.stringify(message))), (text) => {
        const answer = JSON.parse(text); // the host's own JSON
        if (answer.error) throw new Refused(`${answer.error.code}: ${answer.error.message}`);
        state.httpStatus = Number(answer.status);
        return writeBlock(ctx, answer.body);
      });
    },
    extism_http_status_code: (_ctx, frame) => engine.state(frame).httpStatus,
  };
  for (const level of ["info", "debug", "warn", "error"]) {
    handlers[`extism_log_${level}`] = (ctx, frame, [h]) => {
      const text = LOOSE.decode(readBlock(ctx, h, MAX_MESSAGE_BYTES, "the log line"));
      if (level !== "debug") engine.log(frame, level, text); // debug lines are dropped, as the host drops 1.x plug-ins'
      return undefined;
    };
  }
  for (const kind of /** @type {const} */ (["llm", "tool", "agent"])) {
    const fn = `call_${kind}`;
    // an original request routed as ABI 1 (the engine's declarations, depth, cycle and deadline checks);
    // its answer as `ActionRep {output}`, or {"output": "None"} when it was refused
    handlers[fn] = (ctx, frame, [h]) => {
      /** @param {unknown} err */
      const none = (err) => {
        if (!(err instanceof Refused)) throw err;
        refused(engine, frame, fn, `${err.message} (answered {"output": "None"}, as the original host did)`);
        return writeBlock(ctx, NONE_ANSWER);
      };
      try {
        let request;
        try {
          request = parseBounded(readBlock(ctx, h, MAX_REQUEST_BYTES, "the request"), { maxBytes: MAX_REQUEST_BYTES });
        } catch (err) {
          if (err instanceof JsonRejected) throw new Refused(`the request is not JSON: ${err.message}`);
          throw err;
        }
        const message = toAbi1(kind, request);
        const answered = then(engine.handle(frame, fn, ENCODER.encode(JSON.stringify(message))), (text) => {
          let answer;
          try {
            answer = parseBounded(text, { maxBytes: MAX_ANSWER_BYTES * 2 });
          } catch (err) {
            throw new Refused(`the answer is not JSON: ${/** @type {Error} */ (err).message}`);
          }
          return writeBlock(ctx, `{"output": ${JSON.stringify(fromAbi1(kind, answer))}}`);
        });
        return answered instanceof Promise ? answered.catch(none) : answered;
      } catch (err) {
        return none(err);
      }
    };
  }

  /** @type {Record<string, (ctx: any, ...args: bigint[]) => any>} */
  const functions = {};
  for (const [old, handler] of Object.entries(handlers)) {
    const results = ABI0_IMPORTS[old][1];
    const zero = results === "i" ? 0 : results === "I" ? 0n : undefined;
    /** @param {any} ctx @param {F} frame @param {unknown} err */
    const failed = (ctx, frame, err) => {
      const why = err instanceof Refused ? err.message : `${/** @type {Error} */ (err)?.name}: ${/** @type {Error} */ (err)?.message}`;
      refused(engine, frame, old, why);
      // the original host's answer to what it could not serve
      return CHAINSOCKET.includes(old) && !(err instanceof Refused) ? writeBlock(ctx, NONE_ANSWER) : zero;
    };
    functions[HOST[old]] = (ctx, ...args) => {
      const frame = engine.frame(ctx);
      if (frame === null) return zero; // not a call of this host's
      try {
        const result = handler(ctx, frame, args);
        return result instanceof Promise ? result.then((r) => r ?? zero, (err) => failed(ctx, frame, err)) : result ?? zero;
      } catch (err) {
        return failed(ctx, frame, err);
      }
    };
  }
  return functions;
}

/**
 * The 1.x kernel has a `memory_bytes` Extism-JS lacks: here it answers the bytes the kernel's live blocks
 * hold (Extism-JS keeps blocks, not one linear memory), so a plug-in, and a test, can see it stay level.
 * @param {any} ctx @returns {bigint}
 */
export function memoryBytes(ctx) {
  const probe = /** @type {bigint} */ (ctx.alloc(0)); // a block of 0 bytes at the end of the list: its index is the list's length
  const count = Number(probe >> 48n);
  let total = 0n;
  for (let i = 1; i < count; i++) total += /** @type {bigint} */ (ctx.length(BigInt(i) << 48n));
  return total;
}
