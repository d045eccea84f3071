// {{name}}: an offline stand-in LLM that answers with the last user message.
//
// It receives {"messages": [...], "max_tokens"?, "temperature"?, ...} (see LlmInput) and answers
// {"content", "finish_reason", "usage"}. A real one would call an API with httpFetch (listing its
// origin under `capabilities.hosts` in plugin.yaml) or run a model here.
import { configGet, handleLlm, LlmInput, LlmOutput, ok, Result, Usage } from "@chainsocket/as-sdk";

/** How many whitespace-separated words `text` has: this stand-in's "tokens". */
function countWords(text: string): i64 {
  let words: i64 = 0;
  let inWord = false;
  for (let i = 0; i < text.length; i++) {
    const c = text.charCodeAt(i);
    const space = c == 0x20 || (c >= 0x09 && c <= 0x0d); // space, \t \n \v \f \r
    if (!space && !inWord) words++;
    inWord = !space;
  }
  return words;
}

function answer(req: LlmInput): Result<LlmOutput> {
  let last = "";
  let inputTokens: i64 = 0;
  for (let i = 0; i < req.messages.length; i++) {
    const m = req.messages[i];
    inputTokens += countWords(m.content);
    if (m.role == "user") last = m.content;
  }
  // `prefix` from app.yaml or `cspm call --config prefix=…` (declared in plugin.yaml); null when not
  // set (an empty value reads as not set too).
  const prefix = configGet("prefix");
  const content = (prefix !== null ? prefix : "You said: ") + last;

  const out = new LlmOutput(content, "stop");
  out.usage = new Usage(inputTokens, countWords(content));
  return ok(out);
}

// The export the host calls. handleLlm parses the input, runs answer and writes its output; a
// failure (a Result made by `failure(…)`) becomes the call's error. A model that could not answer
// sets finishReason "error" and `error` on its LlmOutput instead.
export function call(): i32 {
  return handleLlm(answer);
}
