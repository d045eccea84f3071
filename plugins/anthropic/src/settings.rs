//! The plug-in's config (strings from the host; non-strings arrive as JSON text), validated once.

use chainsocket::serde_json::{self, Value};

/// Headers `extra_headers` may not set: credentials belong in secrets (injected and redacted by
/// the host, never visible to this module), and framing headers belong to the host's HTTP client.
const RESERVED_HEADERS: &[&str] = &[
    "authorization",
    "proxy-authorization",
    "api-key",
    "x-api-key",
    "cookie",
    "host",
    "content-length",
    "content-type",
    "transfer-encoding",
    "connection",
    "anthropic-version",
];

/// Cheap and fast, like openai-chat's gpt-4o-mini; `model` picks another.
pub const DEFAULT_MODEL: &str = "claude-haiku-4-5";

/// What the config asks for, with defaults applied.
pub struct Settings {
    pub base_url: String,
    pub model: String,
    pub anthropic_version: String,
    pub temperature: Option<f64>,
    pub max_tokens: u64,
    pub stop: Option<Vec<String>>,
    pub extra_headers: Vec<(String, String)>,
}

impl Settings {
    /// Reads and checks every config key; the error names the key and what it should look like.
    pub fn load() -> Result<Settings, String> {
        let base_url = text("base_url").unwrap_or_else(|| "https://api.anthropic.com".to_string());
        Ok(Settings {
            base_url: base_url.trim().trim_end_matches('/').to_string(),
            model: text("model").unwrap_or_else(|| DEFAULT_MODEL.to_string()),
            anthropic_version: text("anthropic_version").unwrap_or_else(|| "2023-06-01".to_string()),
            temperature: number("temperature")?,
            // The Messages API requires max_tokens: the request's, else this, else 1024.
            max_tokens: count("max_tokens")?.unwrap_or(1024),
            stop: stop_list()?,
            extra_headers: extra_headers()?,
        })
    }

    /// `POST` target of a completion.
    pub fn endpoint(&self) -> String {
        format!("{}/v1/messages", self.base_url)
    }
}

/// A non-blank config value.
fn text(key: &str) -> Option<String> {
    chainsocket::config(key).filter(|v| !v.trim().is_empty())
}

fn number(key: &str) -> Result<Option<f64>, String> {
    match text(key) {
        None => Ok(None),
        Some(raw) => match raw.trim().parse::<f64>() {
            Ok(n) if n.is_finite() && n >= 0.0 => Ok(Some(n)),
            _ => Err(format!("config `{}` must be a number >= 0, not {:?}", key, raw)),
        },
    }
}

fn count(key: &str) -> Result<Option<u64>, String> {
    match text(key) {
        None => Ok(None),
        Some(raw) => match raw.trim().parse::<u64>() {
            Ok(n) if n > 0 => Ok(Some(n)),
            _ => Err(format!("config `{}` must be a positive integer, not {:?}", key, raw)),
        },
    }
}

/// `stop`: a list (JSON text from YAML), or one plain string as a list of one.
fn stop_list() -> Result<Option<Vec<String>>, String> {
    let raw = match text("stop") {
        None => return Ok(None),
        Some(raw) => raw,
    };
    if !raw.trim_start().starts_with('[') {
        return Ok(Some(vec![raw]));
    }
    serde_json::from_str::<Vec<String>>(&raw)
        .map(Some)
        .map_err(|_| format!("config `stop` must be a list of strings, not {}", raw))
}

/// `extra_headers`: an object of string values, for servers that want e.g. `anthropic-beta`.
fn extra_headers() -> Result<Vec<(String, String)>, String> {
    let raw = match text("extra_headers") {
        None => return Ok(Vec::new()),
        Some(raw) => raw,
    };
    let object = match serde_json::from_str::<Value>(&raw) {
        Ok(Value::Object(object)) => object,
        _ => return Err(format!("config `extra_headers` must be a map of header names to strings, not {}", raw)),
    };
    let mut headers = Vec::new();
    for (name, value) in object {
        let value = match value {
            Value::String(s) => s,
            Value::Number(n) => n.to_string(),
            other => return Err(format!("config `extra_headers.{}` must be a string, not {}", name, other)),
        };
        let valid_name = !name.is_empty() && name.bytes().all(|b| b.is_ascii_alphanumeric() || b == b'-' || b == b'_');
        if !valid_name || value.contains(['\r', '\n', '\0']) {
            return Err(format!("config `extra_headers.{}` is not a valid header name and one-line value", name));
        }
        if RESERVED_HEADERS.contains(&name.to_ascii_lowercase().as_str()) {
            return Err(format!(
                "config `extra_headers` may not set `{}`: put keys in the secret `api_key` \
                 (e.g. `secrets: {{api_key: env:ANTHROPIC_API_KEY}}`), which the host injects and redacts",
                name
            ));
        }
        headers.push((name, value));
    }
    Ok(headers)
}
