// Example tool plug-in (the one in docs/sdk/assemblyscript.md). Outside this package, import
// from "@chainsocket/as-sdk" and build with
//   --lib node_modules/@chainsocket/as-sdk/lib --use abort=~lib/@chainsocket/as-sdk/assembly/kernel/abortHandler
import { configGet, failure, handleTool, Json, kvGet, kvSet, ok, Result, ToolInput, ToolOutput } from "../assembly";

/** Greets `{"input": "Ada"}` or `{"arguments": {"name": "Ada"}}`, counting visits per name. */
function greet(req: ToolInput): Result<ToolOutput> {
  const args = req.arguments;
  const text = req.input;
  const name = args !== null ? args.getString("name") : text !== null ? text : "";
  // A bad input is the tool's answer (is_error), not a failure of the plug-in.
  if (name.length == 0) return ok(ToolOutput.error("give me a name"));

  const configured = configGet("greeting"); // plugin config; null when not set
  const greeting = configured !== null ? configured : "Hello";

  // kv keeps values across runs (scoped to app + plug-in + session by the host).
  const seen = kvGet("visits:" + name);
  if (!seen.ok) return failure<ToolOutput>("kv_get: " + seen.error!.message);
  const visits = seen.value!.asInt() + 1; // a JSON null (absent) reads as 0
  const stored = kvSet("visits:" + name, Json.int(visits));
  if (stored !== null) return failure<ToolOutput>("kv_set: " + stored.message);

  return ok(ToolOutput.ok(greeting + ", " + name + "! (visit " + visits.toString() + ")"));
}

export function call(): i32 {
  return handleTool(greet);
}
