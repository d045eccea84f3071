//! ABI `llm` input → Anthropic Messages API request body.

use chainsocket::serde_json::{json, Map, Value};
use chainsocket::{LlmInput, Message, Role, ToolSpec};

use crate::settings::Settings;

/// The request body: request fields win over config; `max_tokens` is always sent (the API
/// requires it), the other optional fields only when the request or config sets them.
pub fn body(request: &LlmInput, settings: &Settings) -> Result<Value, String> {
    let mut body = Map::new();
    body.insert("model".into(), json!(settings.model));
    body.insert("max_tokens".into(), json!(request.max_tokens.map(u64::from).unwrap_or(settings.max_tokens)));
    let system = system_prompt(&request.messages);
    if !system.is_empty() {
        body.insert("system".into(), json!(system));
    }
    body.insert("messages".into(), Value::Array(conversation(&request.messages)?));
    if let Some(t) = request.temperature.or(settings.temperature) {
        // Anthropic's range is 0..=1 where OpenAI's (and the ABI's) is 0..=2.
        body.insert("temperature".into(), json!(t.min(1.0)));
    }
    let (sent, _) = stop_sequences(request, settings);
    if !sent.is_empty() {
        body.insert("stop_sequences".into(), json!(sent));
    }
    if let Some(p) = request.top_p {
        body.insert("top_p".into(), json!(p));
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

/// The stop sequences split into those the API takes and the whitespace-only ones it refuses
/// ("each stop sequence must contain non-whitespace", e.g. `"\n"`), which the plug-in applies to
/// the answer itself.
pub fn stop_sequences<'a>(request: &'a LlmInput, settings: &'a Settings) -> (Vec<&'a str>, Vec<&'a str>) {
    let all = request.stop.as_ref().or(settings.stop.as_ref()).map(Vec::as_slice).unwrap_or(&[]);
    let all = all.iter().map(String::as_str).filter(|s| !s.is_empty());
    all.partition(|s| !s.trim().is_empty())
}

/// Every system message, in order, joined: the API takes one top-level `system`.
fn system_prompt(messages: &[Message]) -> String {
    let parts: Vec<&str> = messages
        .iter()
        .filter(|m| m.role == Role::System && !m.content.trim().is_empty())
        .map(|m| m.content.as_str())
        .collect();
    parts.join("\n\n")
}

/// The non-system messages as alternating user/assistant turns: tool results become user turns
/// of `tool_result` blocks, tool calls `tool_use` blocks, and consecutive turns of one role are
/// merged (the API rejects two user or two assistant turns in a row).
fn conversation(messages: &[Message]) -> Result<Vec<Value>, String> {
    let mut turns: Vec<(&'static str, Vec<Value>)> = Vec::new();
    for (i, m) in messages.iter().enumerate() {
        let (role, blocks) = match m.role {
            Role::System => continue,
            Role::User => ("user", text_block(&m.content)),
            Role::Assistant => ("assistant", assistant_blocks(m)),
            Role::Tool => ("user", vec![tool_result(m, i)?]),
        };
        if blocks.is_empty() {
            continue; // the API rejects empty text blocks and empty turns
        }
        match turns.last_mut() {
            Some((last, previous)) if *last == role => previous.extend(blocks),
            _ => turns.push((role, blocks)),
        }
    }
    if turns.is_empty() {
        return Err("nothing to send: the request has no non-empty user or assistant message".to_string());
    }
    Ok(turns.into_iter().map(|(role, blocks)| json!({"role": role, "content": compact(blocks)})).collect())
}

/// A lone text block is sent as a plain string, the API's short form.
fn compact(mut blocks: Vec<Value>) -> Value {
    if blocks.len() == 1 && blocks[0].get("type").and_then(Value::as_str) == Some("text") {
        if let Some(Value::String(text)) = blocks[0].get_mut("text").map(Value::take) {
            return Value::String(text);
        }
    }
    Value::Array(blocks)
}

fn text_block(text: &str) -> Vec<Value> {
    if text.is_empty() {
        Vec::new()
    } else {
        vec![json!({"type": "text", "text": text})]
    }
}

fn assistant_blocks(m: &Message) -> Vec<Value> {
    let mut blocks = text_block(&m.content);
    for call in m.tool_calls.as_deref().unwrap_or(&[]) {
        blocks.push(json!({"type": "tool_use", "id": call.id, "name": call.name, "input": call.arguments}));
    }
    blocks
}

fn tool_result(m: &Message, index: usize) -> Result<Value, String> {
    match &m.tool_call_id {
        Some(id) if !id.is_empty() => Ok(json!({"type": "tool_result", "tool_use_id": id, "content": m.content})),
        _ => Err(format!(
            "messages[{}] has role tool but no tool_call_id: Anthropic needs the id of the tool_use it answers",
            index
        )),
    }
}

fn tool(spec: &ToolSpec) -> Value {
    let mut out = Map::new();
    out.insert("name".into(), json!(spec.name));
    if let Some(d) = &spec.description {
        out.insert("description".into(), json!(d));
    }
    let schema = spec.input_schema.clone().unwrap_or_else(|| json!({"type": "object", "properties": {}}));
    out.insert("input_schema".into(), schema);
    Value::Object(out)
}

/// ABI `auto|none|required|NAME` → `{"type": "auto"|"none"|"any"|"tool", "name"?}`. `none` keeps
/// the tools in the request: the API refuses `tool_use` blocks in the history without them.
fn tool_choice(choice: &str, tools: &[ToolSpec]) -> Result<Value, String> {
    match choice {
        "auto" => Ok(json!({"type": "auto"})),
        "none" => Ok(json!({"type": "none"})),
        "required" => Ok(json!({"type": "any"})),
        name if tools.iter().any(|t| t.name == name) => Ok(json!({"type": "tool", "name": name})),
        name => Err(format!(
            "tool_choice `{}` is neither auto, none, required nor the name of an offered tool ({})",
            name,
            tools.iter().map(|t| t.name.as_str()).collect::<Vec<_>>().join(", ")
        )),
    }
}
