//! Conformance plug-in of the Rust SDK (docs/sdk/conformance.md). Uses only `chainsocket`.

use chainsocket::serde_json::{self, json, Value};
use chainsocket::{
    AgentInput, AgentOutput, BoxError, Event, HostError, HttpRequest, LlmInput, LlmOutput, LlmRequest, LogLevel,
    Message, ToolInput, ToolOutput, Usage,
};
use serde::{Deserialize, Serialize};

// ---- call, by config `kind` -------------------------------------------------------------

/// `call` dispatches on the config key `kind` before reading the input, so each kind gets its
/// own typed handler.
#[no_mangle]
pub extern "C" fn call() -> i32 {
    match chainsocket::config("kind").as_deref() {
        Some("llm") => chainsocket::handle(llm),
        Some("agent") => chainsocket::handle(agent),
        _ => chainsocket::handle(tool),
    }
}

fn tool(input: ToolInput) -> Result<ToolOutput, BoxError> {
    if let ToolInput::Text { input: url } = &input {
        if url.starts_with("http://") || url.starts_with("https://") {
            return Ok(match chainsocket::http_fetch(&HttpRequest::get(url.as_str())) {
                Err(e) => ToolOutput::error(format!("error: {}", e.message)),
                Ok(resp) if resp.status >= 400 => ToolOutput::error(format!("HTTP {}", resp.status)),
                Ok(resp) => ToolOutput::ok(resp.body),
            });
        }
    }
    Ok(ToolOutput::ok(input.to_text()))
}

fn llm(input: LlmInput) -> Result<LlmOutput, BoxError> {
    let last = input.messages.last().map(|m| m.content.as_str()).unwrap_or("");
    Ok(LlmOutput {
        content: format!("echo: {}", last),
        finish_reason: chainsocket::FinishReason::Stop,
        usage: Usage { input_tokens: input.messages.len() as u64, output_tokens: 1 },
        tool_calls: None,
        error: None,
    })
}

fn agent(input: AgentInput) -> Result<AgentOutput, BoxError> {
    if let Some(tool) = input.tools.first() {
        return Ok(match chainsocket::call_tool(&tool.name, &input.input) {
            Ok(resp) => AgentOutput::final_answer(resp.output),
            Err(e) => AgentOutput::error(format!("error: {}", e.message)),
        });
    }
    if let Some(llm) = input.llms.first() {
        let mut messages = Vec::new();
        if let Some(prompt) = chainsocket::config("prompt").filter(|p| !p.is_empty()) {
            messages.push(Message::system(prompt));
        }
        messages.push(Message::user(input.input));
        let resp = chainsocket::call_llm(&llm.name, messages)?;
        return Ok(AgentOutput::final_answer(resp.content));
    }
    if let Some(sub) = input.agents.first() {
        return Ok(match chainsocket::call_agent(&sub.name, &input.input, None) {
            Ok(resp) => resp,
            Err(e) => AgentOutput::error(format!("error: {}", e.message)),
        });
    }
    Ok(AgentOutput::final_answer(input.input))
}

// ---- kernel exports ---------------------------------------------------------------------

fn text(bytes: &[u8]) -> String {
    String::from_utf8_lossy(bytes).into_owned()
}

chainsocket::export_bytes!(echo, |input: Vec<u8>| -> Result<Vec<u8>, String> { Ok(input) });

chainsocket::export_bytes!(config_get, |input: Vec<u8>| {
    let key = text(&input);
    chainsocket::config_bytes(&key).ok_or_else(|| format!("missing config key: {}", key))
});

chainsocket::export_bytes!(count, |_input: Vec<u8>| -> Result<Vec<u8>, String> {
    let current = chainsocket::var_get("count")
        .and_then(|v| text(&v).trim().parse::<u64>().ok())
        .unwrap_or(0);
    let next = (current + 1).to_string();
    chainsocket::var_set("count", next.as_bytes());
    Ok(next.into_bytes())
});

chainsocket::export_bytes!(fail, |input: Vec<u8>| -> Result<Vec<u8>, String> { Err(text(&input)) });

// `crash`: the language's own failure (a panic; `panic = "abort"` traps after the SDK's hook sets
// the message), so the host's handling of a trap is tested on every SDK (tests/test_plugin_failures.py).
chainsocket::export_bytes!(crash, |input: Vec<u8>| -> Result<Vec<u8>, String> { panic!("{}", text(&input)) });

chainsocket::export_bytes!(log, |input: Vec<u8>| -> Result<Vec<u8>, String> {
    let message = text(&input);
    chainsocket::log(LogLevel::Info, &message);
    chainsocket::log(LogLevel::Warn, &format!("warn:{}", message));
    Ok(b"logged".to_vec())
});

// ---- host functions ---------------------------------------------------------------------

// `raw`: `<host function>\n<payload>` through the SDK's raw call, bytes in, bytes out.
chainsocket::export_bytes!(raw, |input: Vec<u8>| {
    let split = input.iter().position(|&b| b == b'\n').unwrap_or(input.len());
    let name = text(&input[..split]);
    let payload = input.get(split + 1..).unwrap_or(&[]);
    chainsocket::host_call(&name, payload)
});

#[derive(Deserialize)]
struct HostCase {
    #[serde(rename = "fn")]
    function: String,
    request: Value,
}

#[derive(Deserialize)]
struct NamedLlm {
    name: String,
    #[serde(flatten)]
    request: LlmRequest,
}

#[derive(Deserialize)]
struct NameInput {
    name: String,
    input: String,
    #[serde(default)]
    session: Option<String>,
}

#[derive(Deserialize)]
struct Key {
    key: String,
}

#[derive(Deserialize)]
struct KeyValue {
    key: String,
    value: Value,
}

#[derive(Deserialize)]
struct StreamCase {
    #[serde(flatten)]
    request: HttpRequest,
    #[serde(default)]
    max_bytes: Option<u32>,
}

/// `{"status", "headers", "chunks": [text...]}` of a stream read to its end.
fn read_stream(case: &StreamCase) -> Result<Value, HostError> {
    let mut stream = chainsocket::http_open(&case.request)?;
    let mut chunks = Vec::new();
    loop {
        let chunk = stream.read(case.max_bytes)?;
        if !chunk.data.is_empty() {
            chunks.push(chunk.data);
        }
        if chunk.done {
            break;
        }
    }
    Ok(json!({"status": stream.status, "headers": stream.headers, "chunks": chunks}))
}

/// A typed response as JSON, or the host's error document as `{"error": {...}}`.
fn reply<T: Serialize>(result: Result<T, HostError>) -> Result<Value, BoxError> {
    Ok(match result {
        Ok(v) => serde_json::to_value(v)?,
        Err(e) => json!({ "error": e }),
    })
}

/// `host`: `{"fn", "request"}` through the SDK's typed wrapper of that host function.
fn host_case(case: HostCase) -> Result<Value, BoxError> {
    let r = case.request;
    match case.function.as_str() {
        "call_llm" => {
            let req: NamedLlm = serde_json::from_value(r)?;
            reply(chainsocket::call_llm_with(&req.name, &req.request))
        }
        "call_tool" => {
            let req: NameInput = serde_json::from_value(r)?;
            reply(chainsocket::call_tool(&req.name, &req.input))
        }
        "call_agent" => {
            let req: NameInput = serde_json::from_value(r)?;
            reply(chainsocket::call_agent(&req.name, &req.input, req.session.as_deref()))
        }
        "http_fetch" => reply(chainsocket::http_fetch(&serde_json::from_value::<HttpRequest>(r)?)),
        "http_stream" => {
            // the streaming extension in one call: open, read every piece (`max_bytes` each), close
            let req: StreamCase = serde_json::from_value(r)?;
            reply(read_stream(&req))
        }
        "kv_get" => {
            let req: Key = serde_json::from_value(r)?;
            reply(chainsocket::kv_get(&req.key).map(|value| json!({ "value": value })))
        }
        "kv_set" => {
            let req: KeyValue = serde_json::from_value(r)?;
            reply(chainsocket::kv_set(&req.key, &req.value).map(|()| json!({})))
        }
        "emit" => reply(chainsocket::emit(&serde_json::from_value::<Event>(r)?).map(|()| json!({}))),
        other => Err(format!("unknown host function: {}", other).into()),
    }
}

chainsocket::export!(host, host_case);
