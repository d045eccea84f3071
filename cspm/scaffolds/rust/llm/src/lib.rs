//! {{name}}: an offline stand-in for an LLM, which answers with the last user message.
//!
//! An llm gets a completion request (`messages`, and optionally `max_tokens`, `stop`, `tools`...)
//! and answers with `content`, `finish_reason` and `usage`. A real one would call its API with
//! `chainsocket::http_fetch` (its host listed under `capabilities.hosts` in plugin.yaml).

use chainsocket::{BoxError, FinishReason, LlmInput, LlmOutput, Role, Usage};

fn words(text: &str) -> u64 {
    text.split_whitespace().count() as u64
}

fn reply(request: LlmInput) -> Result<LlmOutput, BoxError> {
    // Every config key read here is declared under `config:` in plugin.yaml, with its default.
    let prefix = chainsocket::config("prefix").unwrap_or_else(|| "You said: ".to_string());
    let last_user = request.messages.iter().rev().find(|m| m.role == Role::User);
    let content = format!("{}{}", prefix, last_user.map_or("", |m| m.content.as_str()));
    // "Tokens" are words here: a real model counts its own.
    let usage = Usage {
        input_tokens: request.messages.iter().map(|m| words(&m.content)).sum(),
        output_tokens: words(&content),
    };
    Ok(LlmOutput {
        content,
        finish_reason: FinishReason::Stop,
        usage,
        tool_calls: None,
        error: None,
    })
}

// Defines the module's export `call`: parses the input, runs `reply`, writes the output (or sets the
// error message and returns 1).
chainsocket::export!(call, reply);
