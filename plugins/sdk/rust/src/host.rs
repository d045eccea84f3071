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
        #[link_name = "http_open"]
        pub fn cs_http_open(request: u64) -> u64;
        #[link_name = "http_read"]
        pub fn cs_http_read(request: u64) -> u64;
        #[link_name = "http_close"]
        pub fn cs_http_close(request: u64) -> u64;
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
    /// `http_open` (streaming extension)
    HttpOpen,
    /// `http_read` (streaming extension)
    HttpRead,
    /// `http_close` (streaming extension)
    HttpClose,
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
            "http_open" => HostFn::HttpOpen,
            "http_read" => HostFn::HttpRead,
            "http_close" => HostFn::HttpClose,
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
                HostFn::HttpOpen => ffi::cs_http_open(handle),
                HostFn::HttpRead => ffi::cs_http_read(handle),
                HostFn::HttpClose => ffi::cs_http_close(handle),
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

/// An answer whose body is read in pieces (`http_open`, docs/abi.md "Streaming HTTP"): status and
/// headers at once, then [`HttpStream::read`] until `done`. Dropping it closes it (`http_close`);
/// the host also closes every stream when the plug-in's call ends.
#[derive(Debug)]
pub struct HttpStream {
    /// HTTP status.
    pub status: u16,
    /// Response headers (secrets redacted).
    pub headers: std::collections::BTreeMap<String, String>,
    /// The host's number for this stream.
    pub id: u64,
    done: bool,
}

/// One piece of a streamed body: text (secrets redacted, never a split character) and whether the
/// body has ended (the last piece may be empty).
#[derive(Clone, Debug, PartialEq, Eq, Serialize, Deserialize)]
pub struct HttpChunk {
    /// The text of this piece.
    pub data: String,
    /// The body has ended: there is nothing more to read.
    pub done: bool,
}

impl HttpStream {
    /// The next piece, at most `max_bytes` bytes of UTF-8 (the host's default 64 KiB when `None`).
    pub fn read(&mut self, max_bytes: Option<u32>) -> Result<HttpChunk, HostError> {
        if self.done {
            return Ok(HttpChunk { data: String::new(), done: true });
        }
        let request = match max_bytes {
            Some(n) => serde_json::json!({"stream": self.id, "max_bytes": n}),
            None => serde_json::json!({ "stream": self.id }),
        };
        let result: Result<HttpChunk, HostError> = call_json(HostFn::HttpRead, &request);
        match &result {
            Ok(chunk) if chunk.done => self.done = true,
            Err(_) => self.done = true, // the host closed it
            _ => {}
        }
        result
    }

    /// A successful answer in server-sent events (`2xx`, `content-type: text/event-stream`): what a
    /// streaming LLM reads event by event; anything else (an error status, a server that ignored the
    /// request to stream) is read whole with [`HttpStream::read_to_end`].
    pub fn is_event_stream(&self) -> bool {
        (200..300).contains(&self.status)
            && self.headers.get("content-type").map_or(false, |t| t.starts_with("text/event-stream"))
    }

    /// The rest of the body as one response (an error status's message, a server that ignored a
    /// request to stream); text past `max_bytes` is read and dropped, so the stream still ends.
    pub fn read_to_end(&mut self, max_bytes: usize) -> Result<HttpResponse, HostError> {
        let mut body = String::new();
        loop {
            let chunk = self.read(None)?;
            if body.len() + chunk.data.len() <= max_bytes {
                body.push_str(&chunk.data);
            }
            if chunk.done {
                break;
            }
        }
        Ok(HttpResponse { status: self.status, headers: self.headers.clone(), body })
    }

    /// Closes the stream now (also done on drop); closing one that ended is a no-op.
    pub fn close(&mut self) {
        if !self.done {
            self.done = true;
            let _: Result<Value, HostError> = call_json(HostFn::HttpClose, &serde_json::json!({ "stream": self.id }));
        }
    }
}

impl Drop for HttpStream {
    fn drop(&mut self) {
        self.close();
    }
}

/// Sends a request like [`http_fetch`] (same grants, secrets and redaction) and returns as soon as
/// the status and headers arrive; the body is read with [`HttpStream::read`]. A host that cannot
/// stream answers `unsupported`: fall back to [`http_fetch`].
pub fn http_open(request: &HttpRequest) -> Result<HttpStream, HostError> {
    #[derive(Deserialize)]
    struct Opened {
        status: u16,
        #[serde(default)]
        headers: std::collections::BTreeMap<String, String>,
        stream: u64,
    }
    let opened: Opened = call_json(HostFn::HttpOpen, request)?;
    Ok(HttpStream { status: opened.status, headers: opened.headers, id: opened.stream, done: false })
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

/// Streams a whole text as chunks of at most 16,384 characters (the host refuses a chunk over
/// 65,536 bytes): for an answer that arrived whole but should still reach a streaming caller.
pub fn emit_text(text: &str) -> Result<(), HostError> {
    let chars: Vec<char> = text.chars().collect();
    for piece in chars.chunks(16 * 1024) {
        emit_chunk(&piece.iter().collect::<String>())?;
    }
    Ok(())
}
