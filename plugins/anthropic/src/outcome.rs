//! Anthropic Messages API response (or failure) → ABI `llm` output.

use chainsocket::serde_json::{self, Value};
use chainsocket::{FinishReason, HostError, HttpResponse, LlmOutput, ToolCall, Usage};

use crate::settings::Settings;

/// An `llm` output that reports `reason` instead of trapping.
pub fn failure(reason: impl Into<String>) -> LlmOutput {
    LlmOutput {
        content: String::new(),
        finish_reason: FinishReason::Error,
        usage: Usage::default(),
        tool_calls: None,
        error: Some(reason.into()),
    }
}

/// Why a grant hint names `http://`.
const PLAIN_HTTP: &str = " (plain http must be written `http://`: a bare host means https)";

/// The host refused or could not complete the fetch (error document from `http_fetch`).
pub fn refused(refusal: &HostError, url: &str) -> LlmOutput {
    match refusal.code.as_str() {
        "not_granted" => failure(match grant_entry(url) {
            Some(entry) => format!(
                "the host refused to fetch {}: {}. Grant it in the app config: `grant: {{hosts: [{}]}}`{}, \
                 or set `base_url` to a granted server",
                url,
                refusal.message,
                entry,
                if entry.contains("http://") { PLAIN_HTTP } else { "" }
            ),
            None => format!(
                "the host refused to fetch {}: {}. Set `base_url` to an http:// or https:// URL",
                url, refusal.message
            ),
        }),
        "timeout" => failure(format!(
            "the request to {} timed out after the call's time limit: {}. Raise that limit in the app config \
             (`grant: {{timeout_ms: N}}` of the component it names), or lower max_tokens for a shorter answer",
            url, refusal.message
        )),
        "http_error" if refusal.message.contains("Timeout") => failure(format!(
            "no answer from {} in time: {} (a network timeout within the call's time limit: a connection may \
             take 10 s, the whole request the grant's timeout_ms; is the server up and reachable?)",
            url, refusal.message
        )),
        "http_error" => {
            failure(format!("could not reach {}: {} (is the server up and base_url right?)", url, refusal.message))
        }
        _ => failure(format!("http_fetch {} failed: {}", url, refusal)),
    }
}

/// Any HTTP answer: errors by status, then the body of a 2xx.
///
/// `local_stops` are stop sequences the API cannot take (whitespace-only): the text is cut at the
/// first of them, as the server would have stopped there.
pub fn read(response: &HttpResponse, url: &str, settings: &Settings, local_stops: &[&str]) -> LlmOutput {
    let status = response.status;
    if !(200..300).contains(&status) {
        return failure(status_error(response, url, settings));
    }
    let doc: Value = match serde_json::from_str(&response.body) {
        Ok(doc) => doc,
        Err(_) => return failure(format!("malformed response from {} (not JSON): {}", url, excerpt(&response.body))),
    };
    if doc.get("type").and_then(Value::as_str) == Some("error") || doc.get("error").map_or(false, |e| e.is_object()) {
        return failure(format!("{} answered HTTP {} with an error: {}", url, status, api_message(&response.body)));
    }
    let blocks = match doc.get("content").and_then(Value::as_array) {
        Some(blocks) => blocks,
        None => {
            return failure(format!("malformed response from {} (no content blocks): {}", url, excerpt(&response.body)))
        }
    };
    let usage = usage(&doc);
    let mut content = String::new();
    let mut calls = Vec::new();
    for block in blocks {
        match block.get("type").and_then(Value::as_str) {
            Some("text") => content.push_str(block.get("text").and_then(Value::as_str).unwrap_or("")),
            Some("tool_use") => match tool_call(block) {
                Ok(call) => calls.push(call),
                Err(reason) => return LlmOutput { usage, ..failure(reason) },
            },
            _ => {} // thinking, redacted_thinking, server tool blocks: not part of the ABI answer
        }
    }
    let mut stop = doc.get("stop_reason").and_then(Value::as_str).unwrap_or("end_turn");
    if let Some(cut) = local_stops.iter().filter_map(|s| content.find(s)).min() {
        content.truncate(cut);
        if stop != "tool_use" && stop != "refusal" {
            stop = "stop_sequence";
        }
    }
    let finish_reason = match stop {
        "refusal" => {
            let said = if content.is_empty() { String::new() } else { format!(": {}", excerpt(&content)) };
            return LlmOutput {
                usage,
                ..failure(format!("the model refused to answer (stop_reason refusal){}", said))
            };
        }
        _ if !calls.is_empty() => FinishReason::ToolCalls,
        "max_tokens" | "model_context_window_exceeded" => FinishReason::Length,
        "tool_use" => FinishReason::ToolCalls,
        _ => FinishReason::Stop,
    };
    LlmOutput {
        content,
        finish_reason,
        usage,
        tool_calls: if calls.is_empty() { None } else { Some(calls) },
        error: None,
    }
}

/// Prompt tokens include the cached ones (reported apart by the API), so totals stay comparable
/// across calls whatever was cached.
pub fn usage(doc: &Value) -> Usage {
    let field = |name: &str| doc.get("usage").and_then(|u| u.get(name)).and_then(Value::as_u64).unwrap_or(0);
    Usage {
        input_tokens: field("input_tokens") + field("cache_creation_input_tokens") + field("cache_read_input_tokens"),
        output_tokens: field("output_tokens"),
    }
}

fn tool_call(block: &Value) -> Result<ToolCall, String> {
    let name = match block.get("name").and_then(Value::as_str) {
        Some(name) if !name.is_empty() => name.to_string(),
        _ => {
            return Err(format!("malformed tool_use block from the server (no name): {}", excerpt(&block.to_string())))
        }
    };
    let id = match block.get("id").and_then(Value::as_str) {
        Some(id) if !id.is_empty() => id.to_string(),
        _ => return Err(format!("malformed tool_use block for `{}` (no id): {}", name, excerpt(&block.to_string()))),
    };
    let arguments = match block.get("input") {
        None | Some(Value::Null) => Value::Object(Default::default()),
        Some(input) if input.is_object() => input.clone(),
        Some(other) => {
            return Err(format!(
                "the model called `{}` with an input that is not a JSON object: {}",
                name,
                excerpt(&other.to_string())
            ))
        }
    };
    Ok(ToolCall { id, name, arguments })
}

/// What a non-2xx status means for the user, with Anthropic's own error type and message.
fn status_error(response: &HttpResponse, url: &str, settings: &Settings) -> String {
    let status = response.status;
    let said = api_message(&response.body);
    match status {
        401 | 403 => format!(
            "{} refused the request (HTTP {}): the API key is missing, wrong or not allowed. Set the secret \
             `api_key` in the app config (e.g. `secrets: {{api_key: env:ANTHROPIC_API_KEY}}`). Server said: {}",
            url, status, said
        ),
        404 => format!(
            "{} answered HTTP 404: the model `{}` or the base_url `{}` is wrong. Server said: {}",
            url, settings.model, settings.base_url, said
        ),
        429 => format!("rate limited by {} (HTTP 429).{} Server said: {}", url, retry_after(response), said),
        529 => format!(
            "Anthropic is overloaded (HTTP 529); try again later.{} Server said: {}",
            retry_after(response),
            said
        ),
        500..=599 => format!("server error from {} (HTTP {}); try again later. Server said: {}", url, status, said),
        _ => format!("{} answered HTTP {}: {}", url, status, said),
    }
}

fn retry_after(response: &HttpResponse) -> String {
    response
        .headers
        .iter()
        .find(|(k, _)| k.eq_ignore_ascii_case("retry-after"))
        .map(|(_, v)| format!(" Retry after {} s.", v.trim()))
        .unwrap_or_default()
}

/// Anthropic's `{"type": "error", "error": {"type", "message"}}` as `type: message`, else an
/// excerpt of the body.
fn api_message(body: &str) -> String {
    let doc: Value = serde_json::from_str(body).unwrap_or(Value::Null);
    let error = doc.get("error").unwrap_or(&Value::Null);
    let message = error.get("message").and_then(Value::as_str).or_else(|| doc.get("message").and_then(Value::as_str));
    match (error.get("type").and_then(Value::as_str), message) {
        (Some(kind), Some(message)) => format!("{}: {}", kind, message),
        (None, Some(message)) => message.to_string(),
        _ if body.trim().is_empty() => "(empty body)".to_string(),
        _ => excerpt(body),
    }
}

/// The first 200 characters, on one line.
pub fn excerpt(text: &str) -> String {
    let flat: String = text.chars().map(|c| if c.is_control() { ' ' } else { c }).collect();
    let flat = flat.trim();
    if flat.chars().count() > 200 {
        format!("{}…", flat.chars().take(200).collect::<String>())
    } else {
        flat.to_string()
    }
}

/// The `grant.hosts` entry that admits `url`'s origin, written as the app config takes it: the bare
/// `host[:port]` for https (a bare entry means https), `http://host[:port]` for plain http, lower-cased,
/// quoted when YAML would not read it as one plain string. `None` when `url` is not http(s).
fn grant_entry(url: &str) -> Option<String> {
    let (scheme, rest) = url.split_once("://")?;
    let authority = rest.split(|c| c == '/' || c == '?' || c == '#').next().unwrap_or(rest);
    let authority = authority.rsplit('@').next().unwrap_or(authority); // user:password@ is no part of it
    if authority.is_empty() || authority.starts_with(':') {
        return None;
    }
    let authority = authority.to_ascii_lowercase(); // as the host compares names
    let entry = match scheme.to_ascii_lowercase().as_str() {
        "https" => authority,
        "http" => format!("http://{}", authority),
        _ => return None,
    };
    if entry.chars().all(|c| c.is_ascii_alphanumeric() || c == '.' || c == '-' || c == ':') {
        Some(entry)
    } else {
        Some(format!("\"{}\"", entry))
    }
}
