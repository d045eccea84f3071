//! `chainsocket/anthropic`: an `llm` plug-in for the Anthropic Messages API.
//!
//! One `call` = one `POST {base_url}/v1/messages` through the host's `http_fetch`. The API key
//! never reaches this module: the host injects it (secret `api_key` as the `x-api-key` header).
//! Every failure, including a bad input, is answered as an `llm` output with `finish_reason:
//! "error"` so the caller (an agent, the CLI) reads a reason instead of a trap.

mod outcome;
mod request;
mod settings;

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
    let mut http = HttpRequest::post(url.clone(), body.to_string())
        .header("content-type", "application/json")
        .header("anthropic-version", settings.anthropic_version.clone());
    for (name, value) in &settings.extra_headers {
        http = http.header(name.clone(), value.clone());
    }
    match chainsocket::http_fetch(&http) {
        Ok(response) => outcome::read(&response, &url, &settings, &request::stop_sequences(&request, &settings).1),
        Err(refusal) => outcome::refused(&refusal, &url),
    }
}

chainsocket::export_bytes!(call, answer);
