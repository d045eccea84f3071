//! The zero-shot-react-description prompt (LangChain `agents/mrkl/prompt.py`), built from the
//! descriptors the host gave the agent: the agent never hard-codes a tool name.

use chainsocket::serde_json::{Map, Value};
use chainsocket::Descriptor;

const PREFIX: &str = "Answer the following questions as best you can. You have access to the following tools:";
const BEGIN: &str = "Begin!";
/// Longest compact schema shown for one tool; a bigger one is cut with `…}`.
const MAX_SCHEMA_CHARS: usize = 400;

/// The prompt up to and including `Question: {question}`; `\nThought:` and the scratchpad follow.
pub fn prompt_head(persona: &str, actions: &[Descriptor], question: &str) -> String {
    let names: Vec<&str> = actions.iter().map(|d| d.name.as_str()).collect();
    let tool_lines: Vec<String> = actions.iter().map(tool_line).collect();
    let tools = if tool_lines.is_empty() { "(no tools: answer directly)".to_string() } else { tool_lines.join("\n") };
    let format = format!(
        "Use the following format:\n\n\
         Question: the input question you must answer\n\
         Thought: you should always think about what to do\n\
         Action: the action to take, should be one of [{}]\n\
         Action Input: the input to the action\n\
         Observation: the result of the action\n\
         ... (this Thought/Action/Action Input/Observation can repeat N times)\n\
         Thought: I now know the final answer\n\
         Final Answer: the final answer to the original input question",
        names.join(", ")
    );
    let mut parts = Vec::with_capacity(5);
    if !persona.is_empty() {
        parts.push(persona.to_string());
    }
    parts.push(PREFIX.to_string());
    parts.push(tools);
    parts.push(format);
    parts.push(format!("{}\n\nQuestion: {}", BEGIN, question));
    parts.join("\n\n")
}

/// `name: description`, on one line, plus the compact input schema when the tool has one.
fn tool_line(d: &Descriptor) -> String {
    let description = d.description.split_whitespace().collect::<Vec<_>>().join(" ");
    let mut line = if description.is_empty() { d.name.clone() } else { format!("{}: {}", d.name, description) };
    if let Some(schema) = d.input_schema.as_ref().and_then(compact_schema) {
        line.push_str(" Action Input as JSON: ");
        line.push_str(&schema);
    }
    line
}

/// `{"expression": string, "unit"?: "c"|"f"}` for an object schema with properties; `None` for
/// anything else (the tool then only gets text input).
pub fn compact_schema(schema: &Value) -> Option<String> {
    let properties = schema.get("properties")?.as_object()?;
    if properties.is_empty() {
        return None;
    }
    let required: Vec<&str> = schema
        .get("required")
        .and_then(Value::as_array)
        .map(|r| r.iter().filter_map(Value::as_str).collect())
        .unwrap_or_default();
    let fields: Vec<String> = properties
        .iter()
        .map(|(key, prop)| {
            let optional = if required.contains(&key.as_str()) { "" } else { "?" };
            format!("{}{}: {}", Value::String(key.clone()), optional, type_of(prop))
        })
        .collect();
    let mut out = format!("{{{}}}", fields.join(", "));
    if out.chars().count() > MAX_SCHEMA_CHARS {
        out = out.chars().take(MAX_SCHEMA_CHARS).collect::<String>() + "…}";
    }
    Some(out)
}

fn type_of(prop: &Value) -> String {
    if let Some(choices) = prop.get("enum").and_then(Value::as_array) {
        return choices.iter().map(Value::to_string).collect::<Vec<_>>().join("|");
    }
    match prop.get("type") {
        Some(Value::String(t)) if t == "array" => {
            let item = prop.get("items").map(type_of).unwrap_or_else(|| "any".to_string());
            format!("{}[]", item)
        }
        Some(Value::String(t)) => t.clone(),
        Some(Value::Array(types)) => types.iter().filter_map(Value::as_str).collect::<Vec<_>>().join("|"),
        _ => "any".to_string(),
    }
}

/// A JSON object written as the Action Input, for a tool that takes arguments.
pub fn as_arguments(input: &str) -> Option<Map<String, Value>> {
    match chainsocket::serde_json::from_str::<Value>(input.trim()) {
        Ok(Value::Object(map)) => Some(map),
        _ => None,
    }
}
