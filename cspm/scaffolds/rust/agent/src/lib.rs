//! {{name}}: an agent that hands the question to its first tool and answers with what it said.
//!
//! An agent gets `input` (the task) and the names of what the app lets it call (`tools`, `llms`,
//! `agents`, from its entry in app.yaml); it calls them through host functions and answers with
//! `output` and `finish_reason`.

use chainsocket::{AgentInput, AgentOutput, BoxError};

fn ask_first_tool(task: AgentInput) -> Result<AgentOutput, BoxError> {
    // Names come from the input, never hard-coded: the app decides which tool this is.
    let tool = match task.tools.first() {
        Some(tool) => &tool.name,
        None => {
            return Ok(AgentOutput::error(
                "this agent has no tool: list one under the agent's `tools:` in app.yaml",
            ))
        }
    };
    // Every failure is an answer with finish_reason "error", never a failed call: the caller reads it.
    Ok(match chainsocket::call_tool(tool, &task.input) {
        Ok(answer) if !answer.is_error => {
            AgentOutput::final_answer(format!("{} says: {}", tool, answer.output))
        }
        // The tool ran and reported a failure (e.g. the calculator's "6 *").
        Ok(answer) => AgentOutput::error(format!("{} failed: {}", tool, answer.output)),
        // The call itself failed (the tool trapped, timed out, was not granted...): the host says why.
        Err(e) => AgentOutput::error(format!("{} failed: {}", tool, e.message)),
    })
}

// Defines the module's export `call`: parses the input, runs `ask_first_tool`, writes the output.
chainsocket::export!(call, ask_first_tool);
