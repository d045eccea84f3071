//! The Chainsocket host functions (import module `extism:host/user`), raw and typed.
//!
//! Each host function is `(i64 handle) -> i64 handle`: a JSON request in a kernel block the guest
//! keeps owning, a JSON response in a block the guest must free. A refused request never traps;
//! it answers `{"error": {"code", "message"}}`, which the typed calls turn into `Err(HostError)`.

use std::fmt;

use serde::de::DeserializeOwned;
use serde::{Deserialize, Serialize};
use serde_json::Value;

use crate::kernel::Memory;
use crate::types::*;

mod ffi {
    #[link(wasm_import_module = "extism:host/user")]
    extern "C" {
        #[link_name = "call_llm"]
        pub fn cs_call_llm(request: u64) -> u64;
        #[link_name = "call_tool"]
        pub fn cs_call_tool(request: u64) -> u64;
        #[link_name = "call_agent"]
        pub fn cs_call_agent(request: u64) -> u64;
        #[link_name = "http_fetch"]
        pub fn cs_http_fetch(request: u64) -> u64;
        #[link_name = "kv_get"]
        pub fn cs_kv_get(request: u64) -> u64;
        #[link_name = "kv_set"]
        pub fn cs_kv_set(request: u64) -> u64;
        #[link_name = "emit"]
        pub fn cs_emit(request: u64) -> u64;
    }
}

/// An error document from the host (`{"error": {"code", "message"}}`), or a failure of the SDK
/// to talk to it.
///
/// `code` is one of the ABI codes (`bad_request`, `not_declared`, `cycle`, `depth`, `not_granted`,
/// `unsupported`, `callee_failed`, `http_error`, `timeout`, `too_large`, `internal`). The SDK
/// itself only produces `bad_request` (unknown host function name) and `internal` (the host
/// answered something that is not the documented JSON).
#[derive(Clone, Debug, PartialEq, Eq, Serialize, Deserialize)]
pub struct HostError {
    /// Machine-readable code.
    pub code: String,
    /// Human-readable message.
    pub message: String,
}

impl HostError {
    fn new(code: &str, message: impl Into<String>) -> HostError {
        HostError { code: code.to_string(), message: message.into() }
    }
}

impl fmt::Display for HostError {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        write!(f, "{}: {}", self.code, self.message)
    }
}

impl std::error::Error for HostError {}

/// The host functions by name.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum HostFn {
    /// `call_llm`
    CallLlm,
    /// `call_tool`
    CallTool,
    /// `call_agent`
    CallAgent,
    /// `http_fetch`
    HttpFetch,
    /// `kv_get`
    KvGet,
    /// `kv_set`
    KvSet,
    /// `emit`
    Emit,
}

impl HostFn {
    /// Looks a host function up by its import name.
    pub fn from_name(name: &str) -> Option<HostFn> {
        Some(match name {
            "call_llm" => HostFn::CallLlm,
            "call_tool" => HostFn::CallTool,
            "call_agent" => HostFn::CallAgent,
            "http_fetch" => HostFn::HttpFetch,
            "kv_get" => HostFn::KvGet,
            "kv_set" => HostFn::KvSet,
            "emit" => HostFn::Emit,
            _ => return None,
        })
    }

    /// Calls the host function with raw request bytes and returns the raw response bytes
    /// (which may be an error document). The request block is freed after the call, the
    /// response block after it was copied out.
    pub fn call(self, request: &[u8]) -> Vec<u8> {
        let request = Memory::from_bytes(request);
        let handle = request.handle();
        let response = unsafe {
            match self {
                HostFn::CallLlm => ffi::cs_call_llm(handle),
                HostFn::CallTool => ffi::cs_call_tool(handle),
                HostFn::CallAgent => ffi::cs_call_agent(handle),
                HostFn::HttpFetch => ffi::cs_http_fetch(handle),
                HostFn::KvGet => ffi::cs_kv_get(handle),
                HostFn::KvSet => ffi::cs_kv_set(handle),
                HostFn::Emit => ffi::cs_emit(handle),
            }
        };
        drop(request);
        unsafe { Memory::from_raw(response) }.to_vec()
    }
}

/// Raw host call: passes `payload` verbatim to the host function `fn_name` and returns the
/// response bytes verbatim, error documents included. `Err` only when `fn_name` is not a
/// Chainsocket host function.
pub fn host_call(fn_name: &str, payload: &[u8]) -> Result<Vec<u8>, HostError> {
    match HostFn::from_name(fn_name) {
        Some(f) => Ok(f.call(payload)),
        None => Err(HostError::new("bad_request", format!("unknown host function: {}", fn_name))),
    }
}

/// Serialises `request`, calls `f`, and decodes the answer: an error document becomes
/// `Err(HostError)`, anything else must match `T`.
pub fn call_json<Req: Serialize + ?Sized, T: DeserializeOwned>(f: HostFn, request: &Req) -> Result<T, HostError> {
    let body = serde_json::to_vec(request)
        .map_err(|e| HostError::new("bad_request", format!("cannot encode request: {}", e)))?;
    let raw = f.call(&body);
    // Parse once into a tree to look for `error` before committing to the success type.
    let value: Value = serde_json::from_slice(&raw)
        .map_err(|e| HostError::new("internal", format!("host answered non-JSON: {}", e)))?;
    if let Some(err) = value.get("error") {
        if let Ok(err) = HostError::deserialize(err) {
            return Err(err);
        }
    }
    T::deserialize(value).map_err(|e| HostError::new("internal", format!("unexpected host answer: {}", e)))
}

/// `{"name": ..., <fields of T>}`: the call_* requests are the callee's input plus `name`.
#[derive(Serialize)]
struct Named<'a, T: Serialize> {
    name: &'a str,
    #[serde(flatten)]
    body: &'a T,
}

/// Asks the LLM the app config calls `name` to complete `messages`.
pub fn call_llm(name: &str, messages: Vec<Message>) -> Result<LlmResponse, HostError> {
    call_llm_with(name, &LlmRequest::new(messages))
}

/// [`call_llm`] with the optional fields (stop, max_tokens, temperature, tools...).
pub fn call_llm_with(name: &str, request: &LlmRequest) -> Result<LlmResponse, HostError> {
    call_json(HostFn::CallLlm, &Named { name, body: request })
}

/// Calls the tool the app config calls `name` with a text input.
pub fn call_tool(name: &str, input: &str) -> Result<ToolResponse, HostError> {
    call_json(HostFn::CallTool, &serde_json::json!({"name": name, "input": input}))
}

/// Calls the tool `name` with a structured arguments object.
pub fn call_tool_args(name: &str, arguments: &Value) -> Result<ToolResponse, HostError> {
    call_json(HostFn::CallTool, &serde_json::json!({"name": name, "arguments": arguments}))
}

/// Calls the agent `name`; `session` keeps its `kv_*` state apart from other sessions.
pub fn call_agent(name: &str, input: &str, session: Option<&str>) -> Result<AgentResponse, HostError> {
    #[derive(Serialize)]
    struct Req<'a> {
        name: &'a str,
        input: &'a str,
        #[serde(skip_serializing_if = "Option::is_none")]
        session: Option<&'a str>,
    }
    call_json(HostFn::CallAgent, &Req { name, input, session })
}

/// Fetches a URL through the host (granted hosts only; secrets injected and redacted there).
pub fn http_fetch(request: &HttpRequest) -> Result<HttpResponse, HostError> {
    call_json(HostFn::HttpFetch, request)
}

/// Reads a persistent value (scoped to app + plug-in + session); `None` when absent or null.
pub fn kv_get(key: &str) -> Result<Option<Value>, HostError> {
    #[derive(Deserialize)]
    struct Resp {
        #[serde(default)]
        value: Option<Value>,
    }
    let resp: Resp = call_json(HostFn::KvGet, &serde_json::json!({ "key": key }))?;
    Ok(resp.value)
}

/// Stores a persistent JSON value (at most 1 MiB, else `too_large`).
pub fn kv_set<T: Serialize + ?Sized>(key: &str, value: &T) -> Result<(), HostError> {
    #[derive(Serialize)]
    struct Req<'a, T: Serialize + ?Sized> {
        key: &'a str,
        value: &'a T,
    }
    let _: Value = call_json(HostFn::KvSet, &Req { key, value })?;
    Ok(())
}

/// Sends an event (stream chunk, progress, log line) to the host.
pub fn emit(event: &Event) -> Result<(), HostError> {
    let _: Value = call_json(HostFn::Emit, event)?;
    Ok(())
}

/// Streams a piece of output text (`emit {"type": "chunk"}`).
pub fn emit_chunk(text: &str) -> Result<(), HostError> {
    emit(&Event::Chunk { text: text.to_string() })
}
