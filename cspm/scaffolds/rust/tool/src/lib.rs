//! {{name}}: a tool that counts the words of a text.
//!
//! A tool gets either `{"arguments": {...}}` (from an agent or `cspm call --args`, checked by the
//! host against `input_schema` in plugin.yaml) or `{"input": "..."}` (plain text, e.g. `cspm call
//! --input` or `cspm run`), and answers `{"output": "...", "is_error": false}`.

use chainsocket::{BoxError, ToolInput, ToolOutput};

fn count_words(input: ToolInput) -> Result<ToolOutput, BoxError> {
    let text = match &input {
        // The field `text` of the arguments (not the arguments turned into JSON text).
        ToolInput::Arguments { arguments } => arguments["text"]
            .as_str()
            .ok_or("arguments need a string `text`")?,
        ToolInput::Text { input } => input.as_str(),
    };
    let words = text.split_whitespace().count();
    // Every config key read here is declared under `config:` in plugin.yaml, with its default.
    let unit = chainsocket::config("unit").unwrap_or_else(|| "words".to_string());
    // `ToolOutput::error(..)` would report a failure the caller reads as data; an `Err` (like the
    // `?` above) fails the call itself.
    Ok(ToolOutput::ok(format!("{} {}", words, unit)))
}

// Defines the module's export `call`: parses the input, runs `count_words`, writes the output (or
// sets the error message and returns 1).
chainsocket::export!(call, count_words);
