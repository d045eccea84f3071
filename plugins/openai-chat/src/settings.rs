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
];

/// What the config asks for, with defaults applied.
pub struct Settings {
    pub base_url: String,
    pub model: String,
    pub temperature: Option<f64>,
    pub max_tokens: Option<u64>,
    pub max_tokens_param: String,
    pub stop: Option<Vec<String>>,
    pub extra_headers: Vec<(String, String)>,
}

impl Settings {
    /// Reads and checks every config key; the error names the key and what it should look like.
    pub fn load() -> Result<Settings, String> {
        let base_url = text("base_url").unwrap_or_else(|| "https://api.openai.com/v1".to_string());
        Ok(Settings {
            base_url: base_url.trim().trim_end_matches('/').to_string(),
            model: text("model").unwrap_or_else(|| "gpt-4o-mini".to_string()),
            temperature: number("temperature")?,
            max_tokens: count("max_tokens")?,
            max_tokens_param: max_tokens_param()?,
            stop: stop_list()?,
            extra_headers: extra_headers()?,
        })
    }

    /// `POST` target of a completion.
    pub fn endpoint(&self) -> String {
        format!("{}/chat/completions", self.base_url)
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

/// The body field that carries the token cap: OpenAI's reasoning models (o1, o3, gpt-5…) refuse
/// `max_tokens` and want `max_completion_tokens`; most compatible servers only know `max_tokens`.
fn max_tokens_param() -> Result<String, String> {
    match text("max_tokens_param").as_deref().map(str::trim) {
        None | Some("max_tokens") => Ok("max_tokens".to_string()),
        Some("max_completion_tokens") => Ok("max_completion_tokens".to_string()),
        Some(other) => {
            Err(format!("config `max_tokens_param` must be max_tokens or max_completion_tokens, not {:?}", other))
        }
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

/// `extra_headers`: an object of string values, for servers that want e.g. `OpenAI-Organization`.
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
                 (e.g. `secrets: {{api_key: env:OPENAI_API_KEY}}`), which the host injects and redacts",
                name
            ));
        }
        headers.push((name, value));
    }
    Ok(headers)
}
