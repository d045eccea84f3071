// One answer of the model, letting it call the agent's tools (native tool calling) for a few rounds.
// Tool calls and their results live only inside this turn; the history keeps the final answer.

import {
  callLlm,
  callToolWithArguments,
  Descriptor,
  LlmInput,
  log,
  LogLevel,
  Message,
  ToolCall,
  ToolSpec,
} from "@chainsocket/as-sdk";
import { Settings } from "./settings";

/** The model's final answer, or why there is none. */
export class Answer {
  constructor(
    public content: string,
    /** `final_answer`, `max_steps` or `error`. */
    public finishReason: string = "final_answer",
  ) {}
}

function toolNames(tools: Descriptor[]): string {
  const out: string[] = [];
  for (let i = 0; i < tools.length; i++) out.push(tools[i].name);
  return out.join(", ");
}

/** Runs one tool call; any failure becomes the tool message's text so the model can recover. */
function runTool(call: ToolCall, tools: Descriptor[]): string {
  let known = false;
  for (let i = 0; i < tools.length; i++) if (tools[i].name == call.name) known = true;
  if (!known) return "Error: there is no tool named '" + call.name + "'; the tools are: " + toolNames(tools);
  log(LogLevel.Info, "tool " + call.name + " " + call.arguments.toString());
  const r = callToolWithArguments(call.name, call.arguments);
  if (!r.ok) return "Error: tool `" + call.name + "` failed: " + r.error!.toString();
  const out = r.value!;
  return out.isError ? "Error: " + out.output : out.output;
}

/**
 * Asks the llm; while it answers with tool calls (at most `maxToolRounds` rounds), runs them and asks
 * again with their results. An llm without tool calling (`unsupported`) is asked again without tools.
 */
export function answer(s: Settings, messages: Message[], tools: Descriptor[]): Answer {
  let specs: ToolSpec[] | null = null;
  if (s.useTools && tools.length > 0) {
    specs = [];
    for (let i = 0; i < tools.length; i++) specs.push(tools[i].toToolSpec());
  }
  let round: i64 = 0;
  for (; round <= s.maxToolRounds; round++) {
    const request = new LlmInput(messages);
    request.maxTokens = s.maxTokens;
    request.temperature = s.temperature;
    request.tools = specs;
    // Ask for chunks: an llm that streams (llm-local) emits the answer as it is generated, and the host
    // shows it then (`cspm run`), instead of after the whole answer. An llm that does not stream ignores it.
    request.stream = true;
    const answered = callLlm(s.llm, request);
    if (!answered.ok) {
      const e = answered.error!;
      if (e.code == "unsupported" && specs !== null) {
        log(LogLevel.Warn, "llm `" + s.llm + "` cannot call tools (" + e.message + "); asking without them");
        specs = null;
        round--;
        continue;
      }
      return new Answer("llm `" + s.llm + "` failed: " + e.toString(), "error");
    }
    const out = answered.value!;
    if (out.finishReason == "error") {
      const reason = out.error;
      return new Answer("llm `" + s.llm + "` failed: " + (reason !== null ? reason : "no reason given"), "error");
    }
    const calls = out.toolCalls;
    if (calls === null || calls.length == 0 || specs === null) return new Answer(out.content);
    if (round == s.maxToolRounds) break;
    const asked = Message.assistant(out.content);
    asked.toolCalls = calls;
    messages.push(asked);
    for (let i = 0; i < calls.length; i++) messages.push(Message.tool(runTool(calls[i], tools), calls[i].id));
  }
  return new Answer("the model still asked for tools after " + s.maxToolRounds.toString() +
    " rounds of tool calls (config `max_tool_rounds`); ask again or raise the limit", "max_steps");
}
