// {{name}}: a tool that counts the words of a text.
//
// It receives {"arguments": {"text": "..."}} (from an agent, an LLM's tool call or
// `cspm call . --args`; plugin.yaml's input_schema says what they hold and the host checks them
// before this code runs) or {"input": "..."} (plain text), and answers "<count> <unit>".
import { configGet, handleTool, ok, Result, ToolInput, ToolOutput } from "@chainsocket/as-sdk";

/** How many whitespace-separated words `text` has. */
function countWords(text: string): i32 {
  let words = 0;
  let inWord = false;
  for (let i = 0; i < text.length; i++) {
    const c = text.charCodeAt(i);
    const space = c == 0x20 || (c >= 0x09 && c <= 0x0d); // space, \t \n \v \f \r
    if (!space && !inWord) words++;
    inWord = !space;
  }
  return words;
}

function wordCount(req: ToolInput): Result<ToolOutput> {
  // Arguments win when given: read their `text` field (not the whole object as text).
  const args = req.arguments;
  const input = req.input;
  const text = args !== null ? args.getString("text") : input !== null ? input : "";
  // Config comes from app.yaml (`config: {unit: …}`) or `cspm call --config unit=…`; null when not
  // set. plugin.yaml declares every key read here.
  const unit = configGet("unit");
  return ok(ToolOutput.ok(countWords(text).toString() + " " + (unit !== null ? unit : "words")));
}

// The export the host calls. handleTool parses the input, runs wordCount and writes its answer;
// a failure (a Result made by `failure(…)`) becomes the call's error. A tool that ran but wants to
// report a problem to its caller answers ToolOutput.error("…") instead.
export function call(): i32 {
  return handleTool(wordCount);
}
