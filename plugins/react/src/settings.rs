//! The agent's configuration (plugin.yaml `config:`), read once per call from the kernel config.
//! Values arrive as strings (numbers as their JSON text); a bad value is reported, not guessed.

/// How the agent talks to its LLM.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum Mode {
    /// ReAct text format parsed from the completion (works with every LLM).
    React,
    /// Native tool calling (`tools` in `call_llm`), falling back to `React` when the LLM lacks it.
    ToolCalling,
}

/// Everything the agent reads from its config.
#[derive(Clone, Debug)]
pub struct Settings {
    /// Extra instructions / persona (the app's `prompt:`), prepended to the ReAct prompt.
    pub prompt: String,
    /// LLM to use, by its app-config name; `None` = the first one given.
    pub llm: Option<String>,
    /// LLM calls allowed before giving up.
    pub max_steps: u32,
    /// Passed to `call_llm` when set.
    pub max_tokens: Option<u32>,
    /// Passed to `call_llm` when set.
    pub temperature: Option<f64>,
    /// Bytes of scratchpad kept in the prompt; the oldest steps are dropped beyond it.
    pub max_scratchpad_bytes: usize,
    /// Text or native tool calling.
    pub mode: Mode,
}

/// Upper bound of `max_steps`: each step is an LLM call, and a runaway config should not keep
/// an app busy for hours.
const MAX_STEPS_LIMIT: u32 = 100;
/// The smallest scratchpad bound that still holds one truncated step.
const MIN_SCRATCHPAD: usize = 4096;

impl Settings {
    /// Reads the config; `Err` says which key is wrong and what it accepts.
    pub fn load() -> Result<Settings, String> {
        Settings::from_lookup(chainsocket::config)
    }

    fn from_lookup(get: impl Fn(&str) -> Option<String>) -> Result<Settings, String> {
        let value = |key: &str| get(key).map(|v| v.trim().to_string()).filter(|v| !v.is_empty() && v != "null");
        let max_steps = match value("max_steps") {
            None => 10,
            Some(v) => match v.parse::<u32>() {
                Ok(n) if (1..=MAX_STEPS_LIMIT).contains(&n) => n,
                _ => return Err(format!("config max_steps must be an integer from 1 to {}, not {:?}", MAX_STEPS_LIMIT, v)),
            },
        };
        let max_tokens = match value("max_tokens") {
            None => None,
            Some(v) => match v.parse::<u32>() {
                Ok(n) if n > 0 => Some(n),
                _ => return Err(format!("config max_tokens must be a positive integer, not {:?}", v)),
            },
        };
        let temperature = match value("temperature") {
            None => None,
            Some(v) => match v.parse::<f64>() {
                Ok(t) if (0.0..=2.0).contains(&t) => Some(t),
                _ => return Err(format!("config temperature must be a number from 0 to 2, not {:?}", v)),
            },
        };
        let max_scratchpad_bytes = match value("max_scratchpad_bytes") {
            None => 65536,
            Some(v) => match v.parse::<usize>() {
                Ok(n) if n >= MIN_SCRATCHPAD => n,
                _ => return Err(format!("config max_scratchpad_bytes must be an integer of at least {}, not {:?}",
                                        MIN_SCRATCHPAD, v)),
            },
        };
        let mode = match value("mode").as_deref() {
            None | Some("react") => Mode::React,
            Some("tool_calling") => Mode::ToolCalling,
            Some(other) => return Err(format!("config mode must be \"react\" or \"tool_calling\", not {:?}", other)),
        };
        Ok(Settings {
            prompt: get("prompt").unwrap_or_default().trim().to_string(),
            llm: value("llm"),
            max_steps,
            max_tokens,
            temperature,
            max_scratchpad_bytes,
            mode,
        })
    }
}
