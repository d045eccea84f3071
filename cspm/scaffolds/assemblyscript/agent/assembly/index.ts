// {{name}}: an agent that hands the request to its first tool and answers with what it said.
//
// It receives {"input", "session", "llms", "tools", "agents"}: the input text, and descriptors of
// what app.yaml gives this agent (so it never hard-codes a name), and answers
// {"output", "finish_reason"}. Every failure is an answer with finish_reason "error", never a trap.
import { AgentInput, AgentOutput, callTool, handleAgent, ok, Result } from "@chainsocket/as-sdk";

function run(req: AgentInput): Result<AgentOutput> {
  if (req.tools.length == 0) {
    return ok(AgentOutput.error("no tool to ask: list one under this agent's `tools:` in app.yaml"));
  }
  const tool = req.tools[0].name; // its name in app.yaml, which is what callTool takes

  // callTool returns a Result: an error when the call itself failed (the tool crashed or timed out,
  // was not declared, …); AssemblyScript cannot catch exceptions, so nothing here throws.
  const r = callTool(tool, req.input);
  const e = r.error;
  if (e !== null) return ok(AgentOutput.error(tool + " failed: " + e.message));

  // The tool ran; it may still report a problem (is_error), e.g. an expression it cannot read.
  const said = r.value!;
  if (said.isError) return ok(AgentOutput.error(tool + " failed: " + said.output));
  return ok(AgentOutput.finalAnswer(tool + " says: " + said.output));
}

// The export the host calls. handleAgent parses the input, runs `run` and writes its answer.
export function call(): i32 {
  return handleAgent(run);
}
