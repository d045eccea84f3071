// The Chainsocket host functions (import module `extism:host/user`, each `(i64) -> i64`):
// a raw `hostCall` and one typed wrapper per function.
//
// Handles: the request block is ours (the host does not take it), so it is freed right after the
// call; the response block the host allocated is ours too, read word-wise and freed.

import { free } from "@extism/as-pdk/lib/env";
import { allocBytes, takeBlock, utf8 } from "./kernel";
import { Json } from "./json";
import {
  AgentOutput,
  err,
  HostError,
  HttpRequest,
  HttpResponse,
  LlmInput,
  LlmOutput,
  ok,
  Result,
  ToolOutput,
} from "./types";

@external("extism:host/user", "call_llm")
declare function call_llm(request: u64): u64;
@external("extism:host/user", "call_tool")
declare function call_tool(request: u64): u64;
@external("extism:host/user", "call_agent")
declare function call_agent(request: u64): u64;
@external("extism:host/user", "http_fetch")
declare function http_fetch(request: u64): u64;
@external("extism:host/user", "kv_get")
declare function kv_get(request: u64): u64;
@external("extism:host/user", "kv_set")
declare function kv_set(request: u64): u64;
@external("extism:host/user", "emit")
declare function emit(request: u64): u64;
// the streaming extension (docs/abi.md, "Streaming HTTP"), raw through hostCall
@external("extism:host/user", "http_open")
declare function http_open(request: u64): u64;
@external("extism:host/user", "http_read")
declare function http_read(request: u64): u64;
@external("extism:host/user", "http_close")
declare function http_close(request: u64): u64;

/**
 * Calls host function `fn` with `payload` exactly as given and returns the host's response bytes
 * exactly as received (an error document included). An unknown `fn` answers a local
 * `bad_request` error document, since a wasm module can only import names it declares.
 */
export function hostCall(fn: string, payload: Uint8Array): Uint8Array {
  const req = allocBytes(payload);
  let res: u64 = 0;
  if (fn == "call_llm") res = call_llm(req);
  else if (fn == "call_tool") res = call_tool(req);
  else if (fn == "call_agent") res = call_agent(req);
  else if (fn == "http_fetch") res = http_fetch(req);
  else if (fn == "kv_get") res = kv_get(req);
  else if (fn == "kv_set") res = kv_set(req);
  else if (fn == "emit") res = emit(req);
  else if (fn == "http_open") res = http_open(req);
  else if (fn == "http_read") res = http_read(req);
  else if (fn == "http_close") res = http_close(req);
  else {
    free(req);
    return new HostError("bad_request", "unknown host function '" + fn + "'").toJson().toBytes();
  }
  free(req);
  if (res == 0) return utf8('{"error":{"code":"internal","message":"host returned no response"}}');
  return takeBlock(res);
}

/**
 * Calls `fn` with a JSON request and parses the response; an error document (or a response
 * that is not a JSON object) becomes the Result's error.
 */
export function hostCallJson(fn: string, request: Json): Result<Json> {
  const parsed = Json.parse(hostCall(fn, request.toBytes()));
  const v = parsed.value;
  if (v === null) return err<Json>(new HostError("internal", "host response: " + parsed.error));
  if (!v.isObject) return err<Json>(new HostError("internal", "host response is not a JSON object"));
  const e = HostError.fromResponse(v);
  if (e !== null) return err<Json>(e);
  return ok<Json>(v);
}

/** `{"name": name, ...fields of body}`. */
function named(name: string, body: Json): Json {
  const o = Json.object().set("name", Json.str(name));
  const keys = body.keys();
  for (let i = 0; i < keys.length; i++) o.set(keys[i], body.get(keys[i])!);
  return o;
}

/** Asks the LLM the app declared as `name` (its config name, e.g. `openai`). */
export function callLlm(name: string, input: LlmInput): Result<LlmOutput> {
  const r = hostCallJson("call_llm", named(name, input.toJson()));
  if (!r.ok) return err<LlmOutput>(r.error!);
  return ok<LlmOutput>(LlmOutput.fromJson(r.value!));
}

/** Runs the tool the app declared as `name` with text input. */
export function callTool(name: string, input: string): Result<ToolOutput> {
  const req = Json.object().set("name", Json.str(name)).set("input", Json.str(input));
  return toolResult(hostCallJson("call_tool", req));
}

/** Runs the tool the app declared as `name` with an arguments object. */
export function callToolWithArguments(name: string, args: Json): Result<ToolOutput> {
  const req = Json.object().set("name", Json.str(name)).set("arguments", args);
  return toolResult(hostCallJson("call_tool", req));
}

function toolResult(r: Result<Json>): Result<ToolOutput> {
  if (!r.ok) return err<ToolOutput>(r.error!);
  return ok<ToolOutput>(ToolOutput.fromJson(r.value!));
}

/** Runs the agent the app declared as `name`; `session` null = the host's default. */
export function callAgent(name: string, input: string, session: string | null = null): Result<AgentOutput> {
  const req = Json.object().set("name", Json.str(name)).set("input", Json.str(input));
  if (session !== null) req.set("session", Json.str(session));
  const r = hostCallJson("call_agent", req);
  if (!r.ok) return err<AgentOutput>(r.error!);
  return ok<AgentOutput>(AgentOutput.fromJson(r.value!));
}

/** Fetches a URL of a host granted in plugin.yaml (`capabilities.hosts`). */
export function httpFetch(request: HttpRequest): Result<HttpResponse> {
  const r = hostCallJson("http_fetch", request.toJson());
  if (!r.ok) return err<HttpResponse>(r.error!);
  return ok<HttpResponse>(HttpResponse.fromJson(r.value!));
}

/** A stored value (any JSON), or a JSON null when the key is absent. */
export function kvGet(key: string): Result<Json> {
  const r = hostCallJson("kv_get", Json.object().set("key", Json.str(key)));
  if (!r.ok) return r;
  const v = r.value!.get("value");
  return ok<Json>(v !== null ? v : Json.null());
}

/** Stores `value` (any JSON, at most 1 MiB serialised) under `key`; null on success. */
export function kvSet(key: string, value: Json): HostError | null {
  return hostCallJson("kv_set", Json.object().set("key", Json.str(key)).set("value", value)).error;
}

/** Emits any event object (`{"type": ...}`); null on success. */
export function emitEvent(event: Json): HostError | null {
  return hostCallJson("emit", event).error;
}

/** Streams a chunk of the answer to the user. */
export function emitChunk(text: string): HostError | null {
  return emitEvent(Json.object().set("type", Json.str("chunk")).set("text", Json.str(text)));
}

/** Reports progress; `message` null, `done`/`total` below 0 = not sent. */
export function emitProgress(message: string | null, done: i64 = -1, total: i64 = -1): HostError | null {
  const e = Json.object().set("type", Json.str("progress"));
  if (message !== null) e.set("message", Json.str(message));
  if (done >= 0) e.set("done", Json.int(done));
  if (total >= 0) e.set("total", Json.int(total));
  return emitEvent(e);
}

/**
 * Logs through the Chainsocket layer; `level` is "debug", "info", "warn" or "error" (null or "" =
 * the host's default). Level first, as in Go's `EmitLog(level, message)` and C's `cs_emit_log`.
 */
export function emitLog(level: string | null, message: string): HostError | null {
  const e = Json.object().set("type", Json.str("log"));
  if (level !== null && level.length > 0) e.set("level", Json.str(level));
  return emitEvent(e.set("message", Json.str(message)));
}
