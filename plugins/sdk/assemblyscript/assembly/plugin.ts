// Helpers for a plug-in's `call` export: read the JSON input, run a handler, write the JSON
// output, or on failure set the error message and return 1 (what the host expects).

import { fail, input, output } from "./kernel";
import { Json } from "./json";
import { AgentInput, AgentOutput, failure, LlmInput, LlmOutput, Result, ToolInput, ToolOutput } from "./types";

/**
 * Runs `handler` on the parsed JSON input. Returns the export's status: 0 with the handler's
 * value as output, or 1 with the error's message set (also when the input is not JSON).
 */
export function handleJson(handler: (input: Json) => Result<Json>): i32 {
  const parsed = Json.parse(input());
  const v = parsed.value;
  if (v === null) return fail("input: " + parsed.error);
  const r = handler(v);
  const e = r.error;
  if (e !== null) return fail(e.message);
  output(r.value!.toBytes());
  return 0;
}

// The typed variants below keep the handler in a global: AssemblyScript function values cannot
// capture locals, so this is how the wrapping handler reaches the user's one.
let toolHandler: (input: ToolInput) => Result<ToolOutput> = (i: ToolInput): Result<ToolOutput> =>
  failure<ToolOutput>("no handler");
let llmHandler: (input: LlmInput) => Result<LlmOutput> = (i: LlmInput): Result<LlmOutput> =>
  failure<LlmOutput>("no handler");
let agentHandler: (input: AgentInput) => Result<AgentOutput> = (i: AgentInput): Result<AgentOutput> =>
  failure<AgentOutput>("no handler");

function runTool(v: Json): Result<Json> {
  const r = toolHandler(ToolInput.fromJson(v));
  return new Result<Json>(r.ok ? r.value!.toJson() : null, r.error);
}
function runLlm(v: Json): Result<Json> {
  const r = llmHandler(LlmInput.fromJson(v));
  return new Result<Json>(r.ok ? r.value!.toJson() : null, r.error);
}
function runAgent(v: Json): Result<Json> {
  const r = agentHandler(AgentInput.fromJson(v));
  return new Result<Json>(r.ok ? r.value!.toJson() : null, r.error);
}

/** `call` of a tool plug-in: `{"input"}` or `{"arguments"}` in, `{"output", "is_error"}` out. */
export function handleTool(handler: (input: ToolInput) => Result<ToolOutput>): i32 {
  toolHandler = handler;
  return handleJson(runTool);
}

/** `call` of an llm plug-in: `{"messages", ...}` in, `{"content", "finish_reason", "usage"}` out. */
export function handleLlm(handler: (input: LlmInput) => Result<LlmOutput>): i32 {
  llmHandler = handler;
  return handleJson(runLlm);
}

/** `call` of an agent plug-in: `{"input", "session", "llms", "tools", "agents"}` in, `{"output", "finish_reason"}` out. */
export function handleAgent(handler: (input: AgentInput) => Result<AgentOutput>): i32 {
  agentHandler = handler;
  return handleJson(runAgent);
}
