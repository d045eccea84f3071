// Typed messages of the Chainsocket ABI (docs/abi.md), each with `fromJson` and `toJson`, so the
// same class serves both sides: a plug-in parses its input / writes its output with them, and the
// host-function wrappers send / receive them.
//
// AssemblyScript has no `i64 | null`, so absent optional numbers use a sentinel, documented on
// each field (`maxTokens` 0, `temperature` and `topP` NaN, `seed` with `hasSeed`); absent optional
// strings and lists are `null`.

import { Json } from "./json";

function stringList(v: Json[] | null): string[] | null {
  if (v === null) return null;
  const out = new Array<string>(v.length);
  for (let i = 0; i < v.length; i++) out[i] = v[i].asString();
  return out;
}

function stringMap(v: Json | null): Map<string, string> {
  const m = new Map<string, string>();
  if (v === null) return m;
  const keys = v.keys();
  for (let i = 0; i < keys.length; i++) m.set(keys[i], v.getString(keys[i]));
  return m;
}

function mapJson(m: Map<string, string>): Json {
  const o = Json.object();
  const keys = m.keys();
  for (let i = 0; i < keys.length; i++) o.set(keys[i], Json.str(m.get(keys[i])));
  return o;
}

/** An error document `{"error": {"code", "message"}}` from the host, or a local failure. */
export class HostError {
  constructor(
    /**
     * An ABI error code (docs/abi.md): `bad_request`, `not_declared`, `cycle`, `depth`, `not_granted`,
     * `unsupported`, `callee_failed`, `http_error`, `timeout` (the call's wall-clock limit, its
     * `timeout_ms` or its caller's, ran out), `too_large`, `internal`.
     */
    public code: string,
    public message: string,
  ) {}

  /** The error document, as the host writes it. */
  toJson(): Json {
    return Json.object().set(
      "error",
      Json.object().set("code", Json.str(this.code)).set("message", Json.str(this.message)),
    );
  }

  /** The error document's `error` object, when `v` is one. */
  static fromResponse(v: Json): HostError | null {
    const e = v.get("error");
    if (e === null || !e.isObject) return null;
    return new HostError(e.getString("code", "internal"), e.getString("message"));
  }

  toString(): string {
    return this.code + ": " + this.message;
  }
}

/**
 * A value or an error. AssemblyScript cannot catch exceptions (`throw` aborts the module), so
 * every call that can fail returns one of these: test `ok`, then read `value`, or `unwrap()`
 * to trap with the error as the call's error message.
 */
export class Result<T> {
  constructor(
    public value: T | null,
    public error: HostError | null,
  ) {}

  get ok(): bool {
    return this.error === null;
  }

  /** The value; on an error, aborts the call with the error text (reported by the host). */
  unwrap(): T {
    const e = this.error;
    if (e !== null) abort(e.toString());
    return this.value!;
  }
}

/** A successful `Result`. */
export function ok<T>(value: T): Result<T> {
  return new Result<T>(value, null);
}

/** A failed `Result` carrying `error`. */
export function err<T>(error: HostError): Result<T> {
  return new Result<T>(null, error);
}

/** A failed `Result` with only a message, for a plug-in's own failures. */
export function failure<T>(message: string): Result<T> {
  return new Result<T>(null, new HostError("error", message));
}

/** A tool call an LLM asked for. */
export class ToolCall {
  constructor(
    public id: string,
    public name: string,
    /** The arguments object. */
    public arguments: Json,
  ) {}

  static fromJson(v: Json): ToolCall {
    const a = v.get("arguments");
    return new ToolCall(v.getString("id"), v.getString("name"), a !== null ? a : Json.object());
  }

  toJson(): Json {
    return Json.object()
      .set("id", Json.str(this.id))
      .set("name", Json.str(this.name))
      .set("arguments", this.arguments);
  }
}

function toolCalls(v: Json[] | null): ToolCall[] | null {
  if (v === null) return null;
  const out = new Array<ToolCall>(v.length);
  for (let i = 0; i < v.length; i++) out[i] = ToolCall.fromJson(v[i]);
  return out;
}

function toolCallsJson(list: ToolCall[]): Json {
  const a = Json.array();
  for (let i = 0; i < list.length; i++) a.push(list[i].toJson());
  return a;
}

/** One chat message. */
export class Message {
  /** Set on a `tool` message: the id of the tool call it answers. */
  toolCallId: string | null = null;
  /** Set on an `assistant` message that asked for tool calls. */
  toolCalls: ToolCall[] | null = null;

  constructor(
    /** `system`, `user`, `assistant` or `tool`. */
    public role: string,
    public content: string,
  ) {}

  static system(content: string): Message {
    return new Message("system", content);
  }
  static user(content: string): Message {
    return new Message("user", content);
  }
  static assistant(content: string): Message {
    return new Message("assistant", content);
  }
  static tool(content: string, toolCallId: string): Message {
    const m = new Message("tool", content);
    m.toolCallId = toolCallId;
    return m;
  }

  static fromJson(v: Json): Message {
    const m = new Message(v.getString("role"), v.getString("content"));
    m.toolCallId = v.getStringOrNull("tool_call_id");
    m.toolCalls = toolCalls(v.getArray("tool_calls"));
    return m;
  }

  toJson(): Json {
    const o = Json.object().set("role", Json.str(this.role)).set("content", Json.str(this.content));
    const id = this.toolCallId;
    if (id !== null) o.set("tool_call_id", Json.str(id));
    const calls = this.toolCalls;
    if (calls !== null) o.set("tool_calls", toolCallsJson(calls));
    return o;
  }
}

/** A tool offered to an LLM (`tools` of `call_llm`). */
export class ToolSpec {
  constructor(
    public name: string,
    public description: string = "",
    /** JSON Schema of the arguments, or null. */
    public inputSchema: Json | null = null,
  ) {}

  static fromJson(v: Json): ToolSpec {
    return new ToolSpec(v.getString("name"), v.getString("description"), v.get("input_schema"));
  }

  toJson(): Json {
    const o = Json.object().set("name", Json.str(this.name));
    if (this.description.length > 0) o.set("description", Json.str(this.description));
    const s = this.inputSchema;
    if (s !== null) o.set("input_schema", s);
    return o;
  }
}

/** What an llm plug-in receives, and what `callLlm` sends (plus the name). */
export class LlmInput {
  /** Stop sequences, or null. */
  stop: string[] | null = null;
  /** Maximum tokens to generate; 0 = not set. */
  maxTokens: i64 = 0;
  /** Sampling temperature 0..2; NaN = not set. */
  temperature: f64 = NaN;
  /** Nucleus sampling 0..1; NaN = not set. */
  topP: f64 = NaN;
  /** Sampling seed, sent only when `hasSeed` (every i64 is a valid seed, so no sentinel). */
  seed: i64 = 0;
  hasSeed: bool = false;
  /** Ask the LLM to stream chunks (sent only when true). */
  stream: bool = false;
  /**
   * The answer must be one of these (1 to 64 non-empty strings); null = free text. An LLM that can
   * score them answers the likeliest, spelt as given; others ignore the field (check the reply).
   */
  choices: string[] | null = null;
  /** Tools the LLM may call, or null. */
  tools: ToolSpec[] | null = null;
  /** `auto`, `none`, `required` or a tool name; null = not set. */
  toolChoice: string | null = null;

  constructor(public messages: Message[] = []) {}

  static fromJson(v: Json): LlmInput {
    const ms = v.getArray("messages");
    const messages: Message[] = [];
    if (ms !== null) for (let i = 0; i < ms.length; i++) messages.push(Message.fromJson(ms[i]));
    const r = new LlmInput(messages);
    r.stop = stringList(v.getArray("stop"));
    r.maxTokens = v.getInt("max_tokens", 0);
    r.temperature = v.getNumber("temperature", NaN);
    r.topP = v.getNumber("top_p", NaN);
    const seed = v.get("seed");
    if (seed !== null && seed.isNumber) {
      r.seed = seed.asInt();
      r.hasSeed = true;
    }
    r.stream = v.getBool("stream");
    r.choices = stringList(v.getArray("choices"));
    const ts = v.getArray("tools");
    if (ts !== null) {
      const tools: ToolSpec[] = [];
      for (let i = 0; i < ts.length; i++) tools.push(ToolSpec.fromJson(ts[i]));
      r.tools = tools;
    }
    r.toolChoice = v.getStringOrNull("tool_choice");
    return r;
  }

  toJson(): Json {
    const ms = Json.array();
    for (let i = 0; i < this.messages.length; i++) ms.push(this.messages[i].toJson());
    const o = Json.object().set("messages", ms);
    const stop = this.stop;
    if (stop !== null) o.set("stop", Json.strings(stop));
    if (this.maxTokens > 0) o.set("max_tokens", Json.int(this.maxTokens));
    if (!isNaN(this.temperature)) o.set("temperature", Json.number(this.temperature));
    if (!isNaN(this.topP)) o.set("top_p", Json.number(this.topP));
    if (this.hasSeed) o.set("seed", Json.int(this.seed));
    if (this.stream) o.set("stream", Json.bool(true));
    const choices = this.choices;
    if (choices !== null) o.set("choices", Json.strings(choices));
    const tools = this.tools;
    if (tools !== null) {
      const a = Json.array();
      for (let i = 0; i < tools.length; i++) a.push(tools[i].toJson());
      o.set("tools", a);
    }
    const tc = this.toolChoice;
    if (tc !== null) o.set("tool_choice", Json.str(tc));
    return o;
  }
}

/** Token counts of an LLM answer. */
export class Usage {
  constructor(
    public inputTokens: i64 = 0,
    public outputTokens: i64 = 0,
  ) {}
}

/** What an llm plug-in returns, and what `callLlm` answers. */
export class LlmOutput {
  usage: Usage = new Usage();
  /** Tool calls the LLM asked for (with finish reason `tool_calls`), or null. */
  toolCalls: ToolCall[] | null = null;
  /** A description of the failure when `finishReason` is `error`, or null. */
  error: string | null = null;

  constructor(
    public content: string = "",
    /** `stop`, `length`, `error` or `tool_calls`. */
    public finishReason: string = "stop",
  ) {}

  static fromJson(v: Json): LlmOutput {
    const r = new LlmOutput(v.getString("content"), v.getString("finish_reason", "stop"));
    const u = v.get("usage");
    if (u !== null) r.usage = new Usage(u.getInt("input_tokens"), u.getInt("output_tokens"));
    r.toolCalls = toolCalls(v.getArray("tool_calls"));
    r.error = v.getStringOrNull("error");
    return r;
  }

  toJson(): Json {
    const o = Json.object()
      .set("content", Json.str(this.content))
      .set("finish_reason", Json.str(this.finishReason))
      .set(
        "usage",
        Json.object()
          .set("input_tokens", Json.int(this.usage.inputTokens))
          .set("output_tokens", Json.int(this.usage.outputTokens)),
      );
    const calls = this.toolCalls;
    if (calls !== null) o.set("tool_calls", toolCallsJson(calls));
    const e = this.error;
    if (e !== null) o.set("error", Json.str(e));
    return o;
  }
}

/** What a tool plug-in receives: either `input` text or an `arguments` object. */
export class ToolInput {
  constructor(
    public input: string | null = null,
    public arguments: Json | null = null,
  ) {}

  static fromJson(v: Json): ToolInput {
    return new ToolInput(v.getStringOrNull("input"), v.get("arguments"));
  }

  toJson(): Json {
    const o = Json.object();
    const a = this.arguments;
    const s = this.input;
    if (a !== null) o.set("arguments", a);
    else o.set("input", Json.str(s !== null ? s : ""));
    return o;
  }
}

/** What a tool plug-in returns, and what `callTool` answers. */
export class ToolOutput {
  constructor(
    public output: string = "",
    /** The tool ran but reports a failure the caller (e.g. an LLM) should see. */
    public isError: bool = false,
  ) {}

  /** A successful result. */
  static ok(output: string): ToolOutput {
    return new ToolOutput(output, false);
  }

  /** A failure reported to the caller as data (`is_error`): the tool ran, the plug-in did not fail. */
  static error(output: string): ToolOutput {
    return new ToolOutput(output, true);
  }

  static fromJson(v: Json): ToolOutput {
    return new ToolOutput(v.getString("output"), v.getBool("is_error"));
  }

  toJson(): Json {
    return Json.object().set("output", Json.str(this.output)).set("is_error", Json.bool(this.isError));
  }
}

/** An llm, tool or agent an app gave to an agent. */
export class Descriptor {
  constructor(
    /** The name to pass to `callLlm`/`callTool`/`callAgent`. */
    public name: string,
    public description: string = "",
    /** JSON Schema of a tool's arguments, or null. */
    public inputSchema: Json | null = null,
  ) {}

  static fromJson(v: Json): Descriptor {
    return new Descriptor(v.getString("name"), v.getString("description"), v.get("input_schema"));
  }

  /** As a `ToolSpec`, to offer this tool to an LLM. */
  toToolSpec(): ToolSpec {
    return new ToolSpec(this.name, this.description, this.inputSchema);
  }

  toJson(): Json {
    const o = Json.object().set("name", Json.str(this.name)).set("description", Json.str(this.description));
    const s = this.inputSchema;
    if (s !== null) o.set("input_schema", s);
    return o;
  }
}

function descriptors(v: Json[] | null): Descriptor[] {
  const out: Descriptor[] = [];
  if (v !== null) for (let i = 0; i < v.length; i++) out.push(Descriptor.fromJson(v[i]));
  return out;
}

function descriptorsJson(list: Descriptor[]): Json {
  const a = Json.array();
  for (let i = 0; i < list.length; i++) a.push(list[i].toJson());
  return a;
}

/** What an agent plug-in receives. */
export class AgentInput {
  /** The session id, or null. */
  session: string | null = null;
  llms: Descriptor[] = [];
  tools: Descriptor[] = [];
  agents: Descriptor[] = [];

  constructor(public input: string = "") {}

  static fromJson(v: Json): AgentInput {
    const r = new AgentInput(v.getString("input"));
    r.session = v.getStringOrNull("session");
    r.llms = descriptors(v.getArray("llms"));
    r.tools = descriptors(v.getArray("tools"));
    r.agents = descriptors(v.getArray("agents"));
    return r;
  }

  toJson(): Json {
    const o = Json.object().set("input", Json.str(this.input));
    const s = this.session;
    if (s !== null) o.set("session", Json.str(s));
    return o
      .set("llms", descriptorsJson(this.llms))
      .set("tools", descriptorsJson(this.tools))
      .set("agents", descriptorsJson(this.agents));
  }
}

/** What an agent plug-in returns, and what `callAgent` answers. */
export class AgentOutput {
  constructor(
    public output: string = "",
    /** `final_answer`, `max_steps` or `error`. */
    public finishReason: string = "final_answer",
  ) {}

  /** An answer (`final_answer`). */
  static finalAnswer(output: string): AgentOutput {
    return new AgentOutput(output, "final_answer");
  }

  /** A failure reported as data (`error`): the output says why; the plug-in did not fail. */
  static error(output: string): AgentOutput {
    return new AgentOutput(output, "error");
  }

  static fromJson(v: Json): AgentOutput {
    return new AgentOutput(v.getString("output"), v.getString("finish_reason", "final_answer"));
  }

  toJson(): Json {
    return Json.object().set("output", Json.str(this.output)).set("finish_reason", Json.str(this.finishReason));
  }
}

/** An `http_fetch` request. Secrets are added by the host, never by the plug-in. */
export class HttpRequest {
  method: string = "GET";
  /** Header names to values (insertion order kept). */
  headers: Map<string, string> = new Map<string, string>();
  /** The request body, or null. */
  body: string | null = null;

  constructor(public url: string) {}

  static fromJson(v: Json): HttpRequest {
    const r = new HttpRequest(v.getString("url"));
    r.method = v.getString("method", "GET");
    r.headers = stringMap(v.get("headers"));
    r.body = v.getStringOrNull("body");
    return r;
  }

  toJson(): Json {
    const o = Json.object()
      .set("method", Json.str(this.method))
      .set("url", Json.str(this.url))
      .set("headers", mapJson(this.headers));
    const b = this.body;
    if (b !== null) o.set("body", Json.str(b));
    return o;
  }
}

/** An `http_fetch` response (secret values already redacted by the host). */
export class HttpResponse {
  headers: Map<string, string> = new Map<string, string>();

  constructor(
    public status: i32 = 0,
    public body: string = "",
  ) {}

  static fromJson(v: Json): HttpResponse {
    const r = new HttpResponse(<i32>v.getInt("status"), v.getString("body"));
    r.headers = stringMap(v.get("headers"));
    return r;
  }

  toJson(): Json {
    return Json.object()
      .set("status", Json.int(this.status))
      .set("headers", mapJson(this.headers))
      .set("body", Json.str(this.body));
  }
}
