// conversational: a chat agent with per-session memory. Each call loads the session's history from
// kv, sends system prompt + the newest turns that fit the token budget + the new message to the first
// llm (which may call the agent's tools), stores the answer, and replies with it. `/reset` forgets
// the session.

import {
  AgentInput,
  AgentOutput,
  handleAgent,
  Json,
  kvGet,
  kvSet,
  log,
  LogLevel,
  ok,
  Result,
} from "@chainsocket/as-sdk";
import { chatMessages, estimateTokens, trimTurns, Turn, turnsFromJson, turnsToJson } from "./history";
import { readSettings } from "./settings";
import { answer } from "./tools";

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

  const out = answer(s, chatMessages(s.prompt, sent, text), req.tools);
  if (out.finishReason != "final_answer") return reply(out.content, out.finishReason);

  sent.push(new Turn(text, out.content));
  const kept = trimTurns(sent, systemTokens, budget, maxTurns);
  const e = kvSet(HISTORY_KEY, turnsToJson(kept));
  if (e !== null) log(LogLevel.Warn, "the answer could not be remembered: " + e.toString());
  return reply(out.content);
}

export function call(): i32 {
  return handleAgent(converse);
}
