//! What the agent may do: the tools (and sub-agents) the app gave it, found by the name the LLM
//! wrote, and run into an Observation. Every failure becomes observation text the LLM can read.

use chainsocket::serde_json::{Map, Value};
use chainsocket::{AgentFinish, Descriptor, HostError, LogLevel};

use crate::prompt::as_arguments;

/// A callable the LLM can name in `Action:`.
pub struct Action {
    /// Name, description and input schema, as the host described it.
    pub descriptor: Descriptor,
    /// Reached with `call_agent` instead of `call_tool`.
    pub is_agent: bool,
}

/// The tools, then the sub-agents whose names no tool already uses.
pub fn collect(tools: Vec<Descriptor>, agents: Vec<Descriptor>) -> Vec<Action> {
    let mut out: Vec<Action> = tools.into_iter().map(|descriptor| Action { descriptor, is_agent: false }).collect();
    for descriptor in agents {
        if !out.iter().any(|a| a.descriptor.name == descriptor.name) {
            out.push(Action { descriptor, is_agent: true });
        }
    }
    out
}

/// The action the LLM named: exactly, else the only case-insensitive match.
pub fn find<'a>(actions: &'a [Action], name: &str) -> Option<&'a Action> {
    actions.iter().find(|a| a.descriptor.name == name).or_else(|| {
        let mut matches = actions.iter().filter(|a| a.descriptor.name.eq_ignore_ascii_case(name));
        match (matches.next(), matches.next()) {
            (Some(only), None) => Some(only),
            _ => None,
        }
    })
}

/// LangChain's `InvalidTool` observation.
pub fn not_a_tool(actions: &[Action], name: &str) -> String {
    let names: Vec<&str> = actions.iter().map(|a| a.descriptor.name.as_str()).collect();
    format!("{} is not a valid tool, try one of [{}].", name, names.join(", "))
}

/// What the LLM gave an action: ReAct's Action Input text, or native tool-call arguments.
pub enum Input {
    /// Free text.
    Text(String),
    /// A JSON object.
    Arguments(Map<String, Value>),
}

impl Input {
    /// The ReAct Action Input: a JSON object becomes `arguments` for a tool with an input schema.
    pub fn from_action_input(action: &Action, text: String) -> Input {
        match action.descriptor.input_schema.as_ref().and_then(|_| as_arguments(&text)) {
            Some(map) => Input::Arguments(map),
            None => Input::Text(text),
        }
    }

    /// As text, for callees that take text: `{"input": "x"}` is `x`, other objects their JSON.
    fn into_text(self) -> String {
        match self {
            Input::Text(text) => text,
            Input::Arguments(map) => match map.get("input") {
                Some(Value::String(text)) if map.len() == 1 => text.clone(),
                _ => Value::Object(map).to_string(),
            },
        }
    }
}

/// Runs `action` and returns what the LLM reads as its Observation.
pub fn run(action: &Action, input: Input) -> String {
    let name = action.descriptor.name.as_str();
    if action.is_agent {
        return match chainsocket::call_agent(name, &input.into_text(), None) {
            Ok(resp) if resp.finish_reason == AgentFinish::FinalAnswer => non_empty(resp.output),
            Ok(resp) => {
                let why = if resp.finish_reason == AgentFinish::MaxSteps { "max_steps" } else { "error" };
                error_text(&format!("agent {} did not finish ({}): {}", name, why, resp.output))
            }
            Err(e) => host_error(name, &e),
        };
    }
    // Only a tool with an input schema gets `arguments`; every tool accepts text `input`.
    let answer = match input {
        Input::Arguments(map) if action.descriptor.input_schema.is_some() => {
            chainsocket::call_tool_args(name, &Value::Object(map))
        }
        other => chainsocket::call_tool(name, &other.into_text()),
    };
    match answer {
        Ok(resp) if resp.is_error => error_text(&resp.output),
        Ok(resp) => non_empty(resp.output),
        Err(e) => host_error(name, &e),
    }
}

fn non_empty(output: String) -> String {
    if output.trim().is_empty() {
        "(no output)".to_string()
    } else {
        output
    }
}

/// Tool errors read as `Error: …` (once, if the tool already said "error").
fn error_text(text: &str) -> String {
    let text = text.trim();
    if text.to_ascii_lowercase().starts_with("error") {
        text.to_string()
    } else if text.is_empty() {
        "Error: the tool failed without saying why".to_string()
    } else {
        format!("Error: {}", text)
    }
}

fn host_error(name: &str, e: &HostError) -> String {
    chainsocket::log(LogLevel::Warn, &format!("{} refused by the host: {}", name, e));
    format!("Error: {} ({})", e.message, e.code)
}
