// The conversation kept in kv: whole user/assistant turns, trimmed to a token budget.
//
// Stored under one kv key as a JSON array of chat messages, oldest first:
//   [{"role": "user", "content": "..."}, {"role": "assistant", "content": "..."}, ...]

import { Json, Message } from "@chainsocket/as-sdk";

/** One exchange: what the user said and what the assistant answered. */
export class Turn {
  constructor(
    public user: string,
    public assistant: string,
  ) {}
}

/**
 * Estimated tokens of one message: ceil(characters / 4) + 4 (the usual rule of thumb for English
 * text, plus the per-message overhead of chat formats). Characters are UTF-16 code units.
 */
export function estimateTokens(content: string): i64 {
  return (<i64>content.length + 3) / 4 + 4;
}

function turnTokens(t: Turn): i64 {
  return estimateTokens(t.user) + estimateTokens(t.assistant);
}

/** The turns of a stored history; anything that is not a user message followed by an assistant one is skipped. */
export function turnsFromJson(stored: Json): Turn[] {
  const out: Turn[] = [];
  if (!stored.isArray) return out;
  const ms = stored.asArray();
  for (let i = 0; i + 1 < ms.length; i++) {
    const a = ms[i];
    const b = ms[i + 1];
    if (!a.isObject || !b.isObject) continue;
    if (a.getString("role") == "user" && b.getString("role") == "assistant") {
      out.push(new Turn(a.getString("content"), b.getString("content")));
      i++;
    }
  }
  return out;
}

export function turnsToJson(turns: Turn[]): Json {
  const a = Json.array();
  for (let i = 0; i < turns.length; i++) {
    a.push(Message.user(turns[i].user).toJson());
    a.push(Message.assistant(turns[i].assistant).toJson());
  }
  return a;
}

/**
 * The newest turns that fit: at most `maxTurns`, and with `fixed` tokens already spent (the system
 * prompt, the new user message) no more than `budget` tokens in all. Oldest turns go first, whole.
 */
export function trimTurns(turns: Turn[], fixed: i64, budget: i64, maxTurns: i32): Turn[] {
  let spent = fixed;
  let first = turns.length;
  while (first > 0 && turns.length - first < maxTurns) {
    const cost = turnTokens(turns[first - 1]);
    if (spent + cost > budget) break;
    spent += cost;
    first--;
  }
  return turns.slice(first);
}

/** system, then the turns, then the new user message. */
export function chatMessages(system: string, turns: Turn[], user: string): Message[] {
  const ms: Message[] = [Message.system(system)];
  for (let i = 0; i < turns.length; i++) {
    ms.push(Message.user(turns[i].user));
    ms.push(Message.assistant(turns[i].assistant));
  }
  ms.push(Message.user(user));
  return ms;
}
