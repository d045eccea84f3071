// The AssemblyScript SDK's conformance plug-in (docs/sdk/conformance.md): every export goes
// through @chainsocket/as-sdk only.

import {
  AgentInput,
  AgentOutput,
  callAgent,
  callLlm,
  callTool,
  callToolWithArguments,
  configGet,
  emitChunk,
  emitEvent,
  emitLog,
  emitProgress,
  fail,
  fromUtf8,
  handleAgent,
  handleJson,
  handleLlm,
  handleTool,
  HostError,
  hostCall,
  httpFetch,
  HttpRequest,
  input,
  inputString,
  Json,
  kvGet,
  kvSet,
  LlmInput,
  LlmOutput,
  log as writeLog,
  LogLevel,
  Message,
  ok,
  output,
  outputString,
  Result,
  ToolInput,
  ToolOutput,
  Usage,
  utf8,
  varGet,
  varSet,
} from "@chainsocket/as-sdk";

export function echo(): i32 {
  output(input());
  return 0;
}

export function config_get(): i32 {
  const key = inputString();
  const v = configGet(key);
  if (v === null) return fail("missing config key: " + key);
  outputString(v);
  return 0;
}

export function count(): i32 {
  const cur = varGet("count");
  let n: i64 = 0;
  if (cur !== null && cur.length > 0) n = i64.parse(fromUtf8(cur));
  n++;
  const s = n.toString();
  varSet("count", utf8(s));
  outputString(s);
  return 0;
}

// `fail` is also the SDK helper's name, hence the rename on export.
function failExport(): i32 {
  return fail(inputString());
}
export { failExport as fail };

// `crash`: the language's own failure, a `throw` (the SDK's abort handler sets the message, then traps).
export function crash(): i32 {
  throw new Error(inputString());
}

export function log(): i32 {
  const m = inputString();
  writeLog(LogLevel.Info, m);
  writeLog(LogLevel.Warn, "warn:" + m);
  outputString("logged");
  return 0;
}

export function raw(): i32 {
  const data = input();
  const nl = data.indexOf(0x0a);
  if (nl < 0) return fail("raw: expected '<function>\\n<payload>'");
  output(hostCall(fromUtf8(data.subarray(0, nl)), data.subarray(nl + 1)));
  return 0;
}

// ---------------------------------------------------------------- host: typed wrappers

function errorOr<T>(r: Result<T>, body: Json | null): Json {
  const e = r.error;
  if (e !== null) return e.toJson();
  return body!;
}

function hostCase(v: Json): Result<Json> {
  const fn = v.getString("fn");
  let req = v.get("request");
  if (req === null) req = Json.object();
  let out: Json;
  if (fn == "call_llm") {
    const r = callLlm(req.getString("name"), LlmInput.fromJson(req));
    out = errorOr<LlmOutput>(r, r.ok ? r.value!.toJson() : null);
  } else if (fn == "call_tool") {
    const args = req.get("arguments");
    const r =
      args !== null
        ? callToolWithArguments(req.getString("name"), args)
        : callTool(req.getString("name"), req.getString("input"));
    out = errorOr<ToolOutput>(r, r.ok ? r.value!.toJson() : null);
  } else if (fn == "call_agent") {
    const r = callAgent(req.getString("name"), req.getString("input"), req.getStringOrNull("session"));
    out = errorOr<AgentOutput>(r, r.ok ? r.value!.toJson() : null);
  } else if (fn == "http_fetch") {
    const r = httpFetch(HttpRequest.fromJson(req));
    out = errorOr(r, r.ok ? r.value!.toJson() : null);
  } else if (fn == "kv_get") {
    const r = kvGet(req.getString("key"));
    out = errorOr<Json>(r, r.ok ? Json.object().set("value", r.value!) : null);
  } else if (fn == "kv_set") {
    let value = req.get("value");
    if (value === null) value = Json.null();
    out = emptyOr(kvSet(req.getString("key"), value));
  } else if (fn == "emit") {
    const t = req.getString("type");
    if (t == "chunk") out = emptyOr(emitChunk(req.getString("text")));
    else if (t == "log") out = emptyOr(emitLog(req.getStringOrNull("level"), req.getString("message")));
    else if (t == "progress")
      out = emptyOr(emitProgress(req.getStringOrNull("message"), req.getInt("done", -1), req.getInt("total", -1)));
    else out = emptyOr(emitEvent(req));
  } else {
    out = new HostError("bad_request", "unknown host function '" + fn + "'").toJson();
  }
  return ok<Json>(out);
}

function emptyOr(e: HostError | null): Json {
  return e !== null ? e.toJson() : Json.object();
}

export function host(): i32 {
  return handleJson(hostCase);
}

// ---------------------------------------------------------------- call, by config `kind`

function tool(i: ToolInput): Result<ToolOutput> {
  const a = i.arguments;
  const s = i.input;
  if (a === null && s !== null && (s.startsWith("http://") || s.startsWith("https://"))) {
    const r = httpFetch(new HttpRequest(s));
    const e = r.error;
    if (e !== null) return ok<ToolOutput>(new ToolOutput("error: " + e.message, true));
    const res = r.value!;
    if (res.status >= 400) return ok<ToolOutput>(new ToolOutput("HTTP " + res.status.toString(), true));
    return ok<ToolOutput>(new ToolOutput(res.body, false));
  }
  return ok<ToolOutput>(new ToolOutput(a !== null ? a.toString() : s !== null ? s : ""));
}

function llm(i: LlmInput): Result<LlmOutput> {
  const ms = i.messages;
  const last = ms.length > 0 ? ms[ms.length - 1].content : "";
  const o = new LlmOutput("echo: " + last, "stop");
  o.usage = new Usage(ms.length, 1);
  return ok<LlmOutput>(o);
}

function agent(i: AgentInput): Result<AgentOutput> {
  if (i.tools.length > 0) {
    const r = callTool(i.tools[0].name, i.input);
    const e = r.error;
    if (e !== null) return ok<AgentOutput>(new AgentOutput("error: " + e.message, "error"));
    return ok<AgentOutput>(new AgentOutput(r.value!.output, "final_answer"));
  }
  if (i.llms.length > 0) {
    const ms: Message[] = [];
    const prompt = configGet("prompt");
    if (prompt !== null && prompt.length > 0) ms.push(Message.system(prompt));
    ms.push(Message.user(i.input));
    const r = callLlm(i.llms[0].name, new LlmInput(ms));
    const e = r.error;
    if (e !== null) return ok<AgentOutput>(new AgentOutput("error: " + e.message, "error"));
    return ok<AgentOutput>(new AgentOutput(r.value!.content, "final_answer"));
  }
  if (i.agents.length > 0) {
    const r = callAgent(i.agents[0].name, i.input, null);
    const e = r.error;
    if (e !== null) return ok<AgentOutput>(new AgentOutput("error: " + e.message, "error"));
    return ok<AgentOutput>(r.value!);
  }
  return ok<AgentOutput>(new AgentOutput(i.input, "final_answer"));
}

export function call(): i32 {
  const kind = configGet("kind");
  if (kind === null || kind == "tool") return handleTool(tool);
  if (kind == "llm") return handleLlm(llm);
  if (kind == "agent") return handleAgent(agent);
  return fail("unknown kind: " + kind);
}
