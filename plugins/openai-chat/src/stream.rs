//! A streamed answer (`stream: true`): `POST` with `"stream": true` through the host's `http_open`,
//! server-sent events parsed as they arrive, each piece of text emitted (`emit` chunk), and the
//! whole answer returned at the end as without streaming.

use chainsocket::serde_json::{self, Value};
use chainsocket::{FinishReason, HostError, HttpRequest, HttpStream, LlmOutput, SseParser, Usage};

use crate::outcome::{self, failure};
use crate::settings::Settings;

/// What a stream that is not event-stream (an error status, a server that ignored `stream`) may hold.
const MAX_PLAIN_BODY: usize = 8 * 1024 * 1024;

/// `None` when the host cannot stream (`unsupported`): the caller fetches the answer whole instead.
pub fn complete(http: &HttpRequest, url: &str, settings: &Settings) -> Option<LlmOutput> {
    let mut stream = match chainsocket::http_open(http) {
        Ok(stream) => stream,
        Err(refusal) if refusal.code == "unsupported" => return None,
        Err(refusal) => return Some(outcome::refused(&refusal, url)),
    };
    if !stream.is_event_stream() {
        return Some(match stream.read_to_end(MAX_PLAIN_BODY) {
            Ok(response) => {
                let output = outcome::read(&response, url, settings);
                if output.error.is_none() {
                    let _ = chainsocket::emit_text(&output.content);
                }
                output
            }
            Err(refusal) => broke_off(&refusal, url),
        });
    }
    Some(read_events(&mut stream, url))
}

fn broke_off(refusal: &HostError, url: &str) -> LlmOutput {
    match refusal.code.as_str() {
        "http_error" => failure(format!("the streamed answer from {} broke off: {}", url, refusal.message)),
        _ => outcome::refused(refusal, url),
    }
}

/// OpenAI's chunks: `choices[0].delta.content` pieces, `choices[0].finish_reason`, a last chunk with
/// `usage` (asked for with `stream_options.include_usage`), then `data: [DONE]`.
fn read_events(stream: &mut HttpStream, url: &str) -> LlmOutput {
    let mut parser = SseParser::new();
    let mut content = String::new();
    let mut usage = Usage::default();
    let mut finish: Option<String> = None;
    let mut done = false;
    while !done {
        let chunk = match stream.read(None) {
            Ok(chunk) => chunk,
            Err(refusal) => return broke_off(&refusal, url), // what was emitted stays shown; the answer failed
        };
        let mut events = parser.feed(&chunk.data);
        if chunk.done {
            events.extend(parser.finish());
        }
        for event in events {
            if event.data.trim() == "[DONE]" {
                done = true;
                break;
            }
            let doc: Value = match serde_json::from_str(&event.data) {
                Ok(doc) => doc,
                Err(_) => {
                    return failure(format!("malformed event from {} (not JSON): {}", url, outcome::excerpt(&event.data)))
                }
            };
            if let Some(error) = doc.get("error").filter(|e| !e.is_null()) {
                let said = error.get("message").and_then(Value::as_str).map(str::to_string);
                let said = said.unwrap_or_else(|| outcome::excerpt(&error.to_string()));
                return failure(format!("{} stopped the stream with an error: {}", url, said));
            }
            if let Some(u) = doc.get("usage").filter(|u| u.is_object()) {
                let field = |name: &str| u.get(name).and_then(Value::as_u64).unwrap_or(0);
                usage = Usage { input_tokens: field("prompt_tokens"), output_tokens: field("completion_tokens") };
            }
            let choice = doc.get("choices").and_then(|c| c.get(0));
            if let Some(piece) = choice.and_then(|c| c.get("delta")).and_then(|d| d.get("content")).and_then(Value::as_str) {
                if !piece.is_empty() {
                    content.push_str(piece);
                    let _ = chainsocket::emit_chunk(piece);
                }
            }
            if let Some(reason) = choice.and_then(|c| c.get("finish_reason")).and_then(Value::as_str) {
                finish = Some(reason.to_string());
            }
        }
        if chunk.done {
            break;
        }
    }
    let finish_reason = match finish.as_deref() {
        None if !done => {
            return failure(format!("the streamed answer from {} ended before it was complete (no [DONE])", url))
        }
        Some("length") => FinishReason::Length,
        Some("content_filter") => {
            return LlmOutput {
                usage,
                ..failure(format!(
                    "the server's content filter stopped the answer (finish_reason content_filter); partial text: {}",
                    outcome::excerpt(&content)
                ))
            }
        }
        _ => FinishReason::Stop,
    };
    LlmOutput { content, finish_reason, usage, tool_calls: None, error: None }
}
