//! ABI `llm` input → OpenAI chat completions request body.

use chainsocket::serde_json::{json, Map, Value};
use chainsocket::{LlmInput, Message, Role, ToolSpec};

use crate::settings::Settings;

/// The request body: request fields win over config, and what neither sets is omitted so the
/// server applies its own defaults.
pub fn body(request: &LlmInput, settings: &Settings) -> Result<Value, String> {
    let mut body = Map::new();
    body.insert("model".into(), json!(settings.model));
    body.insert("messages".into(), Value::Array(request.messages.iter().map(message).collect()));
    if let Some(t) = request.temperature.or(settings.temperature) {
        body.insert("temperature".into(), json!(t));
    }
    if let Some(n) = request.max_tokens.map(u64::from).or(settings.max_tokens) {
        body.insert(settings.max_tokens_param.clone(), json!(n));
    }
    if let Some(stop) = request.stop.as_ref().or(settings.stop.as_ref()) {
        if !stop.is_empty() {
            body.insert("stop".into(), json!(stop));
        }
    }
    if let Some(p) = request.top_p {
        body.insert("top_p".into(), json!(p));
    }
    if let Some(seed) = request.seed {
        body.insert("seed".into(), json!(seed));
    }
    let tools = request.tools.as_deref().unwrap_or(&[]);
    if !tools.is_empty() {
        body.insert("tools".into(), Value::Array(tools.iter().map(tool).collect()));
        if let Some(choice) = &request.tool_choice {
            body.insert("tool_choice".into(), tool_choice(choice, tools)?);
        }
    }
    Ok(Value::Object(body))
}

fn message(m: &Message) -> Value {
    let role = match m.role {
        Role::System => "system",
        Role::User => "user",
        Role::Assistant => "assistant",
        Role::Tool => "tool",
    };
    let mut out = Map::new();
    out.insert("role".into(), json!(role));
    match (&m.role, &m.tool_calls) {
        (Role::Assistant, Some(calls)) if !calls.is_empty() => {
            // OpenAI wants null content beside tool calls when the model said nothing.
            let content = if m.content.is_empty() { Value::Null } else { json!(m.content) };
            out.insert("content".into(), content);
            let calls = calls.iter().map(|c| {
                json!({"id": c.id, "type": "function",
                       "function": {"name": c.name, "arguments": c.arguments.to_string()}})
            });
            out.insert("tool_calls".into(), Value::Array(calls.collect()));
        }
        _ => {
            out.insert("content".into(), json!(m.content));
        }
    }
    if let (Role::Tool, Some(id)) = (&m.role, &m.tool_call_id) {
        out.insert("tool_call_id".into(), json!(id));
    }
    Value::Object(out)
}

fn tool(spec: &ToolSpec) -> Value {
    let mut function = Map::new();
    function.insert("name".into(), json!(spec.name));
    if let Some(d) = &spec.description {
        function.insert("description".into(), json!(d));
    }
    let parameters = spec.input_schema.clone().unwrap_or_else(|| json!({"type": "object", "properties": {}}));
    function.insert("parameters".into(), parameters);
    json!({"type": "function", "function": function})
}

/// `auto|none|required` pass through; any other value names a tool, which must be offered.
fn tool_choice(choice: &str, tools: &[ToolSpec]) -> Result<Value, String> {
    match choice {
        "auto" | "none" | "required" => Ok(json!(choice)),
        name if tools.iter().any(|t| t.name == name) => Ok(json!({"type": "function", "function": {"name": name}})),
        name => Err(format!(
            "tool_choice `{}` is neither auto, none, required nor the name of an offered tool ({})",
            name,
            tools.iter().map(|t| t.name.as_str()).collect::<Vec<_>>().join(", ")
        )),
    }
}
