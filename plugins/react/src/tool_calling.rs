//! `mode: tool_calling`: the same loop over the LLM's native tool calling (`tools` in
//! `call_llm`, `tool_calls` back, `tool` messages in), for LLMs whose manifest has
//! `features: [tool_calling]`. The host refuses `tools` to other LLMs (`unsupported`); the agent
//! then falls back to the ReAct text format.

use chainsocket::serde_json::{json, Map, Value};
use chainsocket::{AgentOutput, FinishReason, LlmRequest, LogLevel, Message, ToolSpec};

use crate::actions::{self, Action, Input};
use crate::scratchpad::truncate;
use crate::settings::Settings;
use crate::{log, stopped, LOG_CHARS};

/// The agent's answer, or `None` when the LLM cannot do tool calling (first call refused).
pub fn run(settings: &Settings, llm: &str, actions: &[Action], question: &str) -> Option<AgentOutput> {
    let specs: Vec<ToolSpec> = actions.iter().map(spec).collect();
    let mut messages = Vec::new();
    if !settings.prompt.is_empty() {
        messages.push(Message::system(settings.prompt.clone()));
    }
    messages.push(Message::user(question));
    let observation_bytes = settings.max_scratchpad_bytes / 4;
    let mut last_thought = String::new();
    for step in 1..=settings.max_steps {
        let request = LlmRequest {
            messages: messages.clone(),
            max_tokens: settings.max_tokens,
            temperature: settings.temperature,
            tools: if specs.is_empty() { None } else { Some(specs.clone()) },
            ..LlmRequest::default()
        };
        let resp = match chainsocket::call_llm_with(llm, &request) {
            Err(e) if e.code == "unsupported" && step == 1 => return None,
            Err(e) => return Some(AgentOutput::error(format!("llm {} failed at step {} ({}): {}", llm, step, e.code,
                                                             e.message))),
            Ok(resp) => resp,
        };
        if resp.finish_reason == FinishReason::Error {
            let reason = resp.error.as_deref().filter(|e| !e.is_empty()).unwrap_or("it gave no reason");
            return Some(AgentOutput::error(format!("llm {} failed at step {}: {}", llm, step, reason)));
        }
        let calls = resp.tool_calls.clone().unwrap_or_default();
        if calls.is_empty() {
            log(LogLevel::Info, &format!("Final Answer: {}", truncate(&resp.content, LOG_CHARS)));
            return Some(AgentOutput::final_answer(resp.content));
        }
        if !resp.content.trim().is_empty() {
            last_thought = resp.content.trim().to_string();
            log(LogLevel::Info, &format!("Thought: {}", truncate(&last_thought, LOG_CHARS)));
        }
        messages.push(Message { tool_calls: Some(calls.clone()), ..Message::assistant(resp.content) });
        for call in calls {
            log(LogLevel::Info, &format!("Action: {} | Action Input: {}", call.name, truncate(&call.arguments.to_string(), LOG_CHARS)));
            let observation = match actions::find(actions, &call.name) {
                Some(action) => actions::run(action, input_of(call.arguments)),
                None => actions::not_a_tool(actions, &call.name),
            };
            log(LogLevel::Info, &format!("Observation: {}", truncate(&observation, LOG_CHARS)));
            messages.push(Message::tool(call.id, truncate(&observation, observation_bytes)));
        }
    }
    Some(stopped(&last_thought))
}

/// A tool as the LLM sees it; one without an input schema takes `{"input": string}`.
fn spec(action: &Action) -> ToolSpec {
    let d = &action.descriptor;
    let schema = d.input_schema.clone().unwrap_or_else(|| {
        json!({"type": "object", "properties": {"input": {"type": "string", "description": "the input"}},
               "required": ["input"]})
    });
    ToolSpec { name: d.name.clone(), description: Some(d.description.clone()), input_schema: Some(schema) }
}

fn input_of(arguments: Value) -> Input {
    match arguments {
        Value::Object(map) => Input::Arguments(map),
        Value::String(text) => Input::Text(text),
        Value::Null => Input::Arguments(Map::new()),
        other => Input::Text(other.to_string()),
    }
}
