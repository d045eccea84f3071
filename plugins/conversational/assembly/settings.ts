// The agent's configuration, checked once per call. Config values arrive as strings (numbers as
// their JSON text); a bad value is reported to the user, never a trap.

import { AgentInput, configGet, Descriptor, Json } from "@chainsocket/as-sdk";

export const DEFAULT_PROMPT = "You are a helpful assistant.";
export const DEFAULT_MAX_HISTORY_TOKENS: i64 = 2000;
export const DEFAULT_MAX_TURNS: i64 = 20;
export const DEFAULT_MAX_TOOL_ROUNDS: i64 = 4;

export class Settings {
  llm: string = "";
  prompt: string = DEFAULT_PROMPT;
  maxHistoryTokens: i64 = DEFAULT_MAX_HISTORY_TOKENS;
  maxTurns: i64 = DEFAULT_MAX_TURNS;
  /** 0 = not sent. */
  maxTokens: i64 = 0;
  /** NaN = not sent. */
  temperature: f64 = NaN;
  /** Offer the agent's tools to the llm (native tool calling). */
  useTools: bool = true;
  maxToolRounds: i64 = DEFAULT_MAX_TOOL_ROUNDS;
  /** What is wrong with the configuration, or "" when it is usable. */
  problem: string = "";
}

/** A number from config `key`, `def` when unset, NaN (and a problem) when not in [min, max]. */
function configNumber(s: Settings, key: string, def: f64, min: f64, max: f64, integer: bool): f64 {
  const raw = configGet(key);
  if (raw === null || raw.length == 0) return def;
  const parsed = Json.parseString(raw);
  const v = parsed.value;
  if (v !== null && v.isNumber) {
    const n = v.asNumber();
    if (n >= min && n <= max && (!integer || n == Math.floor(n))) return n;
  }
  if (s.problem.length == 0) {
    s.problem =
      "config `" + key + "` must be " + (integer ? "an integer" : "a number") + " from " +
      min.toString() + " to " + max.toString() + ", not '" + raw + "'";
  }
  return NaN;
}

function names(list: Descriptor[]): string {
  const out: string[] = [];
  for (let i = 0; i < list.length; i++) out.push(list[i].name);
  return out.join(", ");
}

export function readSettings(req: AgentInput): Settings {
  const s = new Settings();
  const wanted = configGet("llm");
  if (req.llms.length == 0) {
    s.problem = "conversational needs an llm: list one under the agent's `llms:` in app.yaml";
  } else if (wanted === null || wanted.length == 0) {
    s.llm = req.llms[0].name;
  } else {
    for (let i = 0; i < req.llms.length; i++) if (req.llms[i].name == wanted) s.llm = wanted;
    if (s.llm.length == 0) {
      s.problem =
        "config `llm` names '" + wanted + "', which is not among the llms given to this agent (" +
        names(req.llms) + "): list it under the agent's `llms:` in app.yaml or fix the name";
    }
  }
  const prompt = configGet("prompt");
  if (prompt !== null && prompt.trim().length > 0) s.prompt = prompt;
  s.maxHistoryTokens = <i64>configNumber(s, "max_history_tokens", <f64>DEFAULT_MAX_HISTORY_TOKENS, 1, 1e9, true);
  s.maxTurns = <i64>configNumber(s, "max_turns", <f64>DEFAULT_MAX_TURNS, 0, 10000, true);
  const maxTokens = configNumber(s, "max_tokens", 0, 1, 1e9, true);
  s.maxTokens = isNaN(maxTokens) ? 0 : <i64>maxTokens;
  s.temperature = configNumber(s, "temperature", NaN, 0, 2, false);
  s.maxToolRounds = <i64>configNumber(s, "max_tool_rounds", <f64>DEFAULT_MAX_TOOL_ROUNDS, 1, 20, true);
  const useTools = configGet("use_tools");
  if (useTools !== null && useTools.length > 0) {
    if (useTools == "true" || useTools == "false") s.useTools = useTools == "true";
    else if (s.problem.length == 0) s.problem = "config `use_tools` must be true or false, not '" + useTools + "'";
  }
  return s;
}
