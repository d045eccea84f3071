// conversational: a chat agent with per-session memory. Each call loads the session's history from
// kv, sends system prompt + the newest turns that fit the token budget + the new message to the first
// llm, stores the answer, and replies with it. `/reset` forgets the session.

import {
  AgentInput,
  AgentOutput,
  callLlm,
  handleAgent,
  Json,
  kvGet,
  kvSet,
  LlmInput,
  log,
  LogLevel,
  ok,
  Result,
} from "@chainsocket/as-sdk";
import { chatMessages, estimateTokens, trimTurns, Turn, turnsFromJson, turnsToJson } from "./history";
import { readSettings } from "./settings";

/** The kv key of the history; the host scopes kv to app + agent + session. */
const HISTORY_KEY = "history";
const RESET_COMMAND = "/reset";

function reply(text: string, finishReason: string = "final_answer"): Result<AgentOutput> {
  if (finishReason == "error") log(LogLevel.Warn, text);
  return ok(new AgentOutput(text, finishReason));
}

function converse(req: AgentInput): Result<AgentOutput> {
  const s = readSettings(req);
  if (s.problem.length > 0) return reply(s.problem, "error");
  const text = req.input;
  if (text.trim().toLowerCase() == RESET_COMMAND) {
    const e = kvSet(HISTORY_KEY, Json.array());
    if (e !== null) return reply("could not clear the history: " + e.toString(), "error");
    log(LogLevel.Info, "history cleared");
    return reply("The conversation history of this session is cleared.");
  }
  if (text.trim().length == 0) return reply("the message is empty: say something to the assistant", "error");

  const loaded = kvGet(HISTORY_KEY);
  if (!loaded.ok) {
    return reply("cannot read the conversation memory (kv): " + loaded.error!.toString(), "error");
  }
  const history = turnsFromJson(loaded.value!);
  const budget = s.maxHistoryTokens;
  const maxTurns = <i32>s.maxTurns;
  const systemTokens = estimateTokens(s.prompt);
  const sent = trimTurns(history, systemTokens + estimateTokens(text), budget, maxTurns);
  log(LogLevel.Info, "history: " + history.length.toString() + " turns stored, " + sent.length.toString() +
    " sent (budget " + budget.toString() + " tokens, max_turns " + maxTurns.toString() + ")");

  const request = new LlmInput(chatMessages(s.prompt, sent, text));
  request.maxTokens = s.maxTokens;
  request.temperature = s.temperature;
  const answered = callLlm(s.llm, request);
  if (!answered.ok) return reply("llm `" + s.llm + "` failed: " + answered.error!.toString(), "error");
  const out = answered.value!;
  if (out.finishReason == "error") {
    const reason = out.error;
    return reply("llm `" + s.llm + "` failed: " + (reason !== null ? reason : "no reason given"), "error");
  }

  sent.push(new Turn(text, out.content));
  const kept = trimTurns(sent, systemTokens, budget, maxTurns);
  const e = kvSet(HISTORY_KEY, turnsToJson(kept));
  if (e !== null) log(LogLevel.Warn, "the answer could not be remembered: " + e.toString());
  return reply(out.content);
}

export function call(): i32 {
  return handleAgent(converse);
}
