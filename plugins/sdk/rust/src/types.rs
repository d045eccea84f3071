//! Typed messages of the Chainsocket ABI 1 (docs/abi.md, cspm/schemas/abi/v1.json).
//!
//! Optional fields are `Option`s skipped when `None`, so a serialised value carries only what was
//! set: the host validates requests and outputs against the schema, and ABI 1 only ever adds
//! optional fields.

use std::collections::BTreeMap;

use serde::{Deserialize, Serialize};
use serde_json::Value;

use crate::kernel::LogLevel;

/// Who wrote a chat message.
#[derive(Clone, Copy, Debug, PartialEq, Eq, Serialize, Deserialize)]
#[serde(rename_all = "lowercase")]
pub enum Role {
    /// Instructions (an agent's `prompt`).
    System,
    /// The user's turn.
    User,
    /// The model's turn.
    Assistant,
    /// A tool result answering a `tool_calls` entry.
    Tool,
}

/// One chat message.
#[derive(Clone, Debug, PartialEq, Serialize, Deserialize)]
pub struct Message {
    /// Author.
    pub role: Role,
    /// Text.
    pub content: String,
    /// For `Role::Tool`: the id of the tool call this answers.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub tool_call_id: Option<String>,
    /// For `Role::Assistant`: the tool calls the model asked for.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub tool_calls: Option<Vec<ToolCall>>,
}

impl Message {
    /// A message with the given role and content.
    pub fn new(role: Role, content: impl Into<String>) -> Message {
        Message { role, content: content.into(), tool_call_id: None, tool_calls: None }
    }
    /// A system message.
    pub fn system(content: impl Into<String>) -> Message {
        Message::new(Role::System, content)
    }
    /// A user message.
    pub fn user(content: impl Into<String>) -> Message {
        Message::new(Role::User, content)
    }
    /// An assistant message.
    pub fn assistant(content: impl Into<String>) -> Message {
        Message::new(Role::Assistant, content)
    }
    /// A tool result for the tool call `id`.
    pub fn tool(id: impl Into<String>, content: impl Into<String>) -> Message {
        Message { tool_call_id: Some(id.into()), ..Message::new(Role::Tool, content) }
    }
}

/// A tool call requested by a model.
#[derive(Clone, Debug, PartialEq, Serialize, Deserialize)]
pub struct ToolCall {
    /// Id to echo back in the `Role::Tool` message.
    pub id: String,
    /// Tool name (as the app config names it).
    pub name: String,
    /// Arguments object.
    pub arguments: Value,
}

/// A tool offered to a model (`LlmRequest::tools`).
#[derive(Clone, Debug, PartialEq, Serialize, Deserialize)]
pub struct ToolSpec {
    /// Tool name.
    pub name: String,
    /// What it does, for the model.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub description: Option<String>,
    /// JSON Schema of its arguments.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub input_schema: Option<Value>,
}

/// What the app gave an agent (`AgentInput::tools/llms/agents`): agents discover names here
/// instead of hard-coding them.
#[derive(Clone, Debug, PartialEq, Serialize, Deserialize)]
pub struct Descriptor {
    /// Name to pass to `call_tool`/`call_llm`/`call_agent`.
    pub name: String,
    /// Human description.
    #[serde(default)]
    pub description: String,
    /// JSON Schema of the input, when known.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub input_schema: Option<Value>,
}

/// A completion request: the input of an `llm` plug-in, and the body of `call_llm` (plus `name`).
#[derive(Clone, Debug, Default, PartialEq, Serialize, Deserialize)]
pub struct LlmRequest {
    /// The conversation, oldest first.
    pub messages: Vec<Message>,
    /// Stop sequences.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub stop: Option<Vec<String>>,
    /// Cap on generated tokens.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub max_tokens: Option<u32>,
    /// Sampling temperature, 0..=2.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub temperature: Option<f64>,
    /// Nucleus sampling, 0..=1.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub top_p: Option<f64>,
    /// Sampling seed.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub seed: Option<i64>,
    /// Ask for `emit` chunk events while generating.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub stream: Option<bool>,
    /// Tools the model may call.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub tools: Option<Vec<ToolSpec>>,
    /// `auto`, `none`, `required` or a tool name.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub tool_choice: Option<String>,
}

impl LlmRequest {
    /// A request with only messages.
    pub fn new(messages: Vec<Message>) -> LlmRequest {
        LlmRequest { messages, ..LlmRequest::default() }
    }
}

/// The input of an `llm` plug-in's `call`.
pub type LlmInput = LlmRequest;

/// Why a completion ended.
#[derive(Clone, Copy, Debug, PartialEq, Eq, Serialize, Deserialize)]
#[serde(rename_all = "snake_case")]
pub enum FinishReason {
    /// Natural end or a stop sequence.
    Stop,
    /// `max_tokens` reached.
    Length,
    /// The model failed (see `LlmResponse::error`).
    Error,
    /// The model asked for tool calls.
    ToolCalls,
}

/// Token accounting.
#[derive(Clone, Copy, Debug, Default, PartialEq, Eq, Serialize, Deserialize)]
pub struct Usage {
    /// Prompt tokens.
    pub input_tokens: u64,
    /// Generated tokens.
    pub output_tokens: u64,
}

/// A completion: the output of an `llm` plug-in and the answer of `call_llm`.
#[derive(Clone, Debug, PartialEq, Serialize, Deserialize)]
pub struct LlmResponse {
    /// Generated text.
    pub content: String,
    /// Why it ended.
    pub finish_reason: FinishReason,
    /// Token counts.
    pub usage: Usage,
    /// Requested tool calls (`finish_reason == ToolCalls`).
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub tool_calls: Option<Vec<ToolCall>>,
    /// Model-side error text (`finish_reason == Error`).
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub error: Option<String>,
}

/// The output of an `llm` plug-in's `call`.
pub type LlmOutput = LlmResponse;

/// The input of a `tool` plug-in: free text or a structured arguments object (exactly one).
///
/// Deserialised through [`RawToolInput`] rather than `#[serde(untagged)]`: the error then says
/// what was expected instead of "did not match any variant", and the code is smaller.
#[derive(Clone, Debug, PartialEq, Serialize, Deserialize)]
#[serde(untagged, try_from = "RawToolInput")]
pub enum ToolInput {
    /// `{"input": "..."}`
    Text {
        /// The text.
        input: String,
    },
    /// `{"arguments": {...}}`
    Arguments {
        /// The arguments object.
        arguments: Value,
    },
}

/// The wire shape of [`ToolInput`] before the "exactly one of" check.
#[derive(Deserialize)]
#[doc(hidden)]
pub struct RawToolInput {
    input: Option<String>,
    arguments: Option<Value>,
}

impl TryFrom<RawToolInput> for ToolInput {
    type Error = &'static str;
    fn try_from(raw: RawToolInput) -> Result<ToolInput, Self::Error> {
        match (raw.input, raw.arguments) {
            (Some(input), None) => Ok(ToolInput::Text { input }),
            (None, Some(arguments)) => Ok(ToolInput::Arguments { arguments }),
            _ => Err("expected exactly one of {\"input\": string} or {\"arguments\": object}"),
        }
    }
}

impl ToolInput {
    /// The input as one string: the text, or the arguments as compact JSON.
    pub fn to_text(&self) -> String {
        match self {
            ToolInput::Text { input } => input.clone(),
            ToolInput::Arguments { arguments } => arguments.to_string(),
        }
    }
}

/// The output of a `tool` plug-in and the answer of `call_tool`.
#[derive(Clone, Debug, PartialEq, Eq, Serialize, Deserialize)]
pub struct ToolResponse {
    /// Result text (what the agent/model reads).
    pub output: String,
    /// The tool ran but reports a failure to its caller (still a normal answer, not a trap).
    pub is_error: bool,
}

impl ToolResponse {
    /// A successful result.
    pub fn ok(output: impl Into<String>) -> ToolResponse {
        ToolResponse { output: output.into(), is_error: false }
    }
    /// A failure reported to the caller as data.
    pub fn error(output: impl Into<String>) -> ToolResponse {
        ToolResponse { output: output.into(), is_error: true }
    }
}

/// The output of a `tool` plug-in's `call`.
pub type ToolOutput = ToolResponse;

/// The input of an `agent` plug-in's `call`.
#[derive(Clone, Debug, Default, PartialEq, Serialize, Deserialize)]
pub struct AgentInput {
    /// The task.
    pub input: String,
    /// Session id (scopes `kv_*`).
    #[serde(default)]
    pub session: String,
    /// LLMs this agent may call.
    #[serde(default)]
    pub llms: Vec<Descriptor>,
    /// Tools this agent may call.
    #[serde(default)]
    pub tools: Vec<Descriptor>,
    /// Agents this agent may call.
    #[serde(default)]
    pub agents: Vec<Descriptor>,
}

/// Why an agent stopped.
#[derive(Clone, Copy, Debug, PartialEq, Eq, Serialize, Deserialize)]
#[serde(rename_all = "snake_case")]
pub enum AgentFinish {
    /// It answered.
    FinalAnswer,
    /// It ran out of steps.
    MaxSteps,
    /// It failed (the output says why).
    Error,
}

/// The output of an `agent` plug-in and the answer of `call_agent`.
#[derive(Clone, Debug, PartialEq, Eq, Serialize, Deserialize)]
pub struct AgentResponse {
    /// The answer.
    pub output: String,
    /// Why it stopped.
    pub finish_reason: AgentFinish,
}

impl AgentResponse {
    /// A final answer.
    pub fn final_answer(output: impl Into<String>) -> AgentResponse {
        AgentResponse { output: output.into(), finish_reason: AgentFinish::FinalAnswer }
    }
    /// A failure reported as data.
    pub fn error(output: impl Into<String>) -> AgentResponse {
        AgentResponse { output: output.into(), finish_reason: AgentFinish::Error }
    }
}

/// The output of an `agent` plug-in's `call`.
pub type AgentOutput = AgentResponse;

fn default_method() -> String {
    "GET".to_string()
}

/// An `http_fetch` request. Only granted hosts are reachable; secrets are injected by the host.
#[derive(Clone, Debug, PartialEq, Eq, Serialize, Deserialize)]
pub struct HttpRequest {
    /// `GET`, `POST`, `PUT`, `PATCH`, `DELETE`, `HEAD` or `OPTIONS`.
    #[serde(default = "default_method")]
    pub method: String,
    /// http(s) URL.
    pub url: String,
    /// Request headers.
    #[serde(default)]
    pub headers: BTreeMap<String, String>,
    /// Request body (text).
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub body: Option<String>,
}

impl HttpRequest {
    /// A GET request.
    pub fn get(url: impl Into<String>) -> HttpRequest {
        HttpRequest { method: default_method(), url: url.into(), headers: BTreeMap::new(), body: None }
    }
    /// A POST request with a body.
    pub fn post(url: impl Into<String>, body: impl Into<String>) -> HttpRequest {
        HttpRequest { method: "POST".to_string(), body: Some(body.into()), ..HttpRequest::get(url) }
    }
    /// Adds a header (builder style).
    pub fn header(mut self, name: impl Into<String>, value: impl Into<String>) -> HttpRequest {
        self.headers.insert(name.into(), value.into());
        self
    }
}

/// An `http_fetch` answer (any status: a 404 is a response, not an error).
#[derive(Clone, Debug, PartialEq, Eq, Serialize, Deserialize)]
pub struct HttpResponse {
    /// HTTP status.
    pub status: u16,
    /// Response headers (secrets redacted).
    #[serde(default)]
    pub headers: BTreeMap<String, String>,
    /// Response body (text, secrets redacted).
    #[serde(default)]
    pub body: String,
}

/// An event sent to the host with `emit`.
#[derive(Clone, Debug, PartialEq, Serialize, Deserialize)]
#[serde(tag = "type", rename_all = "lowercase")]
pub enum Event {
    /// A streamed piece of output text.
    Chunk {
        /// The text.
        text: String,
    },
    /// Progress of a long task.
    Progress {
        /// What is happening.
        #[serde(default, skip_serializing_if = "Option::is_none")]
        message: Option<String>,
        /// Units done.
        #[serde(default, skip_serializing_if = "Option::is_none")]
        done: Option<u64>,
        /// Units in all.
        #[serde(default, skip_serializing_if = "Option::is_none")]
        total: Option<u64>,
    },
    /// A log line through the Chainsocket layer.
    Log {
        /// Level (host default: info).
        #[serde(default, skip_serializing_if = "Option::is_none")]
        level: Option<LogLevel>,
        /// The line.
        message: String,
    },
}
