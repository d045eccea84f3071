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
                let output = outcome::read(&response, url, settings, &[]);
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

/// Anthropic's events: `message_start` (input usage), `content_block_delta` with `text_delta` pieces,
/// `message_delta` (stop reason, output usage), `message_stop`; `ping` and others are skipped, and
/// an `error` event ends the answer with its message.
fn read_events(stream: &mut HttpStream, url: &str) -> LlmOutput {
    let mut parser = SseParser::new();
    let mut content = String::new();
    let mut input = Value::Null;
    let mut output_tokens = 0;
    let mut stop: Option<String> = None;
    let mut stopped = false;
    while !stopped {
        let chunk = match stream.read(None) {
            Ok(chunk) => chunk,
            Err(refusal) => return broke_off(&refusal, url), // what was emitted stays shown; the answer failed
        };
        let mut events = parser.feed(&chunk.data);
        if chunk.done {
            events.extend(parser.finish());
        }
        for event in events {
            let doc: Value = match serde_json::from_str(&event.data) {
                Ok(doc) => doc,
                Err(_) => {
                    return failure(format!("malformed event from {} (not JSON): {}", url, outcome::excerpt(&event.data)))
                }
            };
            match doc.get("type").and_then(Value::as_str).unwrap_or("") {
                "message_start" => input = doc.get("message").cloned().unwrap_or(Value::Null),
                "content_block_delta" => {
                    let delta = doc.get("delta").unwrap_or(&Value::Null);
                    if delta.get("type").and_then(Value::as_str) == Some("text_delta") {
                        let piece = delta.get("text").and_then(Value::as_str).unwrap_or("");
                        if !piece.is_empty() {
                            content.push_str(piece);
                            let _ = chainsocket::emit_chunk(piece);
                        }
                    }
                }
                "message_delta" => {
                    if let Some(reason) = doc.get("delta").and_then(|d| d.get("stop_reason")).and_then(Value::as_str) {
                        stop = Some(reason.to_string());
                    }
                    if let Some(n) = doc.get("usage").and_then(|u| u.get("output_tokens")).and_then(Value::as_u64) {
                        output_tokens = n;
                    }
                }
                "message_stop" => {
                    stopped = true;
                    break;
                }
                "error" => {
                    let error = doc.get("error").unwrap_or(&Value::Null);
                    let said = error.get("message").and_then(Value::as_str).map(str::to_string);
                    let said = said.unwrap_or_else(|| outcome::excerpt(&error.to_string()));
                    return failure(format!("{} stopped the stream with an error: {}", url, said));
                }
                _ => {} // ping, content_block_start/stop, thinking deltas: not part of the ABI answer
            }
        }
        if chunk.done {
            break;
        }
    }
    if !stopped {
        return failure(format!("the streamed answer from {} ended before it was complete (no message_stop)", url));
    }
    let usage = Usage { output_tokens, ..outcome::usage(&input) };
    let finish_reason = match stop.as_deref().unwrap_or("end_turn") {
        "refusal" => {
            let said = if content.is_empty() { String::new() } else { format!(": {}", outcome::excerpt(&content)) };
            return LlmOutput { usage, ..failure(format!("the model refused to answer (stop_reason refusal){}", said)) };
        }
        "max_tokens" | "model_context_window_exceeded" => FinishReason::Length,
        _ => FinishReason::Stop,
    };
    LlmOutput { content, finish_reason, usage, tool_calls: None, error: None }
}
