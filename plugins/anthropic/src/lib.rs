//! `chainsocket/anthropic`: an `llm` plug-in for the Anthropic Messages API.
//!
//! One `call` = one `POST {base_url}/v1/messages` through the host's `http_fetch`, or, when the
//! request asks to `stream` (and offers no tools, and no stop sequence is cut here), through the
//! host's streaming `http_open`, each piece of text emitted as it arrives (stream.rs). The API key
//! never reaches this module: the host injects it (secret `api_key` as the `x-api-key` header).
//! Every failure, including a bad input, is answered as an `llm` output with `finish_reason:
//! "error"` so the caller (an agent, the CLI) reads a reason instead of a trap.

mod outcome;
mod request;
mod settings;
mod stream;

use chainsocket::serde_json::{self, Value};
use chainsocket::{HttpRequest, LlmInput, LlmOutput};

use crate::outcome::failure;
use crate::settings::Settings;

/// The export's handler: never returns an error to the host, only `llm` outputs.
fn answer(input: Vec<u8>) -> Result<Vec<u8>, String> {
    let output = complete(&input);
    serde_json::to_vec(&output).map_err(|e| format!("cannot encode output: {}", e))
}

fn complete(input: &[u8]) -> LlmOutput {
    let request: LlmInput = match serde_json::from_slice(input) {
        Ok(request) => request,
        Err(e) => return failure(format!("invalid llm input: {}", e)),
    };
    let settings = match Settings::load() {
        Ok(settings) => settings,
        Err(reason) => return failure(reason),
    };
    let body: Value = match request::body(&request, &settings) {
        Ok(body) => body,
        Err(reason) => return failure(reason),
    };
    let url = settings.endpoint();
    let local_stops = request::stop_sequences(&request, &settings).1;
    let tools = request.tools.as_deref().map_or(false, |t| !t.is_empty());
    if request.stream == Some(true) && !tools && local_stops.is_empty() {
        let mut streamed = body.clone();
        streamed["stream"] = Value::Bool(true);
        if let Some(output) = stream::complete(&post(&url, &streamed, &settings), &url, &settings) {
            return output;
        }
    }
    match chainsocket::http_fetch(&post(&url, &body, &settings)) {
        Ok(response) => outcome::read(&response, &url, &settings, &local_stops),
        Err(refusal) => outcome::refused(&refusal, &url),
    }
}

fn post(url: &str, body: &Value, settings: &Settings) -> HttpRequest {
    let mut http = HttpRequest::post(url.to_string(), body.to_string())
        .header("content-type", "application/json")
        .header("anthropic-version", settings.anthropic_version.clone());
    for (name, value) in &settings.extra_headers {
        http = http.header(name.clone(), value.clone());
    }
    http
}

chainsocket::export_bytes!(call, answer);
