//! OpenAI chat completions response (or failure) → ABI `llm` output.

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
pub fn read(response: &HttpResponse, url: &str, settings: &Settings) -> LlmOutput {
    let status = response.status;
    if !(200..300).contains(&status) {
        return failure(status_error(response, url, settings));
    }
    let doc: Value = match serde_json::from_str(&response.body) {
        Ok(doc) => doc,
        Err(_) => return failure(format!("malformed response from {} (not JSON): {}", url, excerpt(&response.body))),
    };
    if doc.get("error").map_or(false, |e| !e.is_null()) {
        return failure(format!("{} answered HTTP {} with an error: {}", url, status, api_message(&response.body)));
    }
    let choice = match doc.get("choices").and_then(|c| c.get(0)) {
        Some(choice) => choice,
        None => return failure(format!("malformed response from {} (no choices): {}", url, excerpt(&response.body))),
    };
    let message = match choice.get("message") {
        Some(m) if m.is_object() => m,
        _ => {
            return failure(format!(
                "malformed response from {} (choice without message): {}",
                url,
                excerpt(&response.body)
            ))
        }
    };
    let usage = usage(&doc);
    let content = message.get("content").and_then(Value::as_str).unwrap_or("").to_string();
    if let Some(refusal) = message.get("refusal").and_then(Value::as_str).filter(|r| !r.is_empty()) {
        return LlmOutput { usage, ..failure(format!("the model refused to answer: {}", excerpt(refusal))) };
    }
    let calls = match tool_calls(message) {
        Ok(calls) => calls,
        Err(reason) => return LlmOutput { usage, ..failure(reason) },
    };
    let finish = choice.get("finish_reason").and_then(Value::as_str).unwrap_or("stop");
    let finish_reason = match finish {
        "content_filter" => {
            return LlmOutput {
                usage,
                ..failure(format!(
                    "the server's content filter stopped the answer (finish_reason content_filter); partial text: {}",
                    excerpt(&content)
                ))
            }
        }
        _ if !calls.is_empty() => FinishReason::ToolCalls,
        "length" => FinishReason::Length,
        "tool_calls" | "function_call" => FinishReason::ToolCalls,
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

fn usage(doc: &Value) -> Usage {
    let field = |name: &str| doc.get("usage").and_then(|u| u.get(name)).and_then(Value::as_u64).unwrap_or(0);
    Usage { input_tokens: field("prompt_tokens"), output_tokens: field("completion_tokens") }
}

/// `message.tool_calls` (and the legacy `function_call`), with their JSON-string arguments parsed.
fn tool_calls(message: &Value) -> Result<Vec<ToolCall>, String> {
    let mut out = Vec::new();
    let listed = message.get("tool_calls").and_then(Value::as_array).cloned().unwrap_or_default();
    let legacy = message.get("function_call").filter(|f| f.is_object()).map(|f| serde_json::json!({"function": f}));
    for (i, call) in listed.iter().chain(legacy.iter()).enumerate() {
        let function = call.get("function").unwrap_or(&Value::Null);
        let name = match function.get("name").and_then(Value::as_str) {
            Some(name) if !name.is_empty() => name.to_string(),
            _ => {
                return Err(format!(
                    "malformed tool call from the server (no function name): {}",
                    excerpt(&call.to_string())
                ))
            }
        };
        let arguments = match function.get("arguments") {
            None | Some(Value::Null) => Value::Object(Default::default()),
            Some(Value::String(s)) if s.trim().is_empty() => Value::Object(Default::default()),
            Some(Value::String(s)) => match serde_json::from_str::<Value>(s) {
                Ok(v) => v,
                Err(e) => {
                    return Err(format!(
                        "the model called `{}` with arguments that are not JSON ({}): {}",
                        name,
                        e,
                        excerpt(s)
                    ))
                }
            },
            Some(other) => other.clone(),
        };
        if !arguments.is_object() {
            return Err(format!(
                "the model called `{}` with arguments that are not a JSON object: {}",
                name,
                excerpt(&arguments.to_string())
            ));
        }
        let id = call.get("id").and_then(Value::as_str).map(str::to_string).unwrap_or_else(|| format!("call_{}", i));
        out.push(ToolCall { id, name, arguments });
    }
    Ok(out)
}

/// What a non-2xx status means for the user, with the server's own message.
fn status_error(response: &HttpResponse, url: &str, settings: &Settings) -> String {
    let status = response.status;
    let said = api_message(&response.body);
    match status {
        401 | 403 => format!(
            "{} refused the request (HTTP {}): the API key is missing or wrong. Set the secret `api_key` \
             in the app config (e.g. `secrets: {{api_key: env:OPENAI_API_KEY}}`). Server said: {}",
            url, status, said
        ),
        404 => format!(
            "{} answered HTTP 404: the model `{}` or the base_url `{}` is wrong. Server said: {}",
            url, settings.model, settings.base_url, said
        ),
        429 => {
            let wait =
                header(response, "retry-after").map(|s| format!(" Retry after {} s.", s.trim())).unwrap_or_default();
            format!("rate limited by {} (HTTP 429).{} Server said: {}", url, wait, said)
        }
        500..=599 => format!("server error from {} (HTTP {}); try again later. Server said: {}", url, status, said),
        _ => format!("{} answered HTTP {}: {}", url, status, said),
    }
}

fn header<'a>(response: &'a HttpResponse, name: &str) -> Option<&'a str> {
    response.headers.iter().find(|(k, _)| k.eq_ignore_ascii_case(name)).map(|(_, v)| v.as_str())
}

/// OpenAI's `{"error": {"message"}}` (or a string `error`/`message`), else an excerpt of the body.
fn api_message(body: &str) -> String {
    let doc: Value = serde_json::from_str(body).unwrap_or(Value::Null);
    let error = doc.get("error").unwrap_or(&Value::Null);
    let found = error
        .get("message")
        .and_then(Value::as_str)
        .or_else(|| error.as_str())
        .or_else(|| doc.get("message").and_then(Value::as_str));
    match found {
        Some(message) => message.to_string(),
        None if body.trim().is_empty() => "(empty body)".to_string(),
        None => excerpt(body),
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
