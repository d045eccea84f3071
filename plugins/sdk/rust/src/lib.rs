//! `chainsocket`: the Rust SDK for Chainsocket plug-ins (Extism WebAssembly modules, ABI 1).
//!
//! Three layers, each usable alone:
//! - [`kernel`]: the Extism kernel ABI (input, output, config, vars, logs, errors) over
//!   `extism:host/env`, with word-wise copies so 1 MiB payloads stay cheap;
//! - [`host`]: the Chainsocket host functions of `extism:host/user`, typed
//!   ([`call_llm`], [`call_tool`], [`call_agent`], [`http_fetch`], [`kv_get`], [`kv_set`],
//!   [`emit`], and the streaming extension [`http_open`] / [`HttpStream`]) and raw ([`host_call`]);
//! - [`plugin`]: [`handle`] and the [`export!`] macro, which turn a typed function into an export.
//!
//! ```ignore
//! use chainsocket::{ToolInput, ToolOutput, BoxError};
//!
//! fn shout(input: ToolInput) -> Result<ToolOutput, BoxError> {
//!     Ok(ToolOutput::ok(input.to_text().to_uppercase()))
//! }
//! chainsocket::export!(call, shout);
//! ```
//!
//! Build for `wasm32-unknown-unknown`; the imports only exist inside an Extism host.
#![warn(missing_docs)]

pub mod host;
pub mod kernel;
pub mod plugin;
pub mod sse;
pub mod types;

pub use host::{
    call_agent, call_json, call_llm, call_llm_with, call_tool, call_tool_args, emit, emit_chunk, emit_text, host_call,
    http_fetch, http_open, kv_get, kv_set, HostError, HostFn, HttpChunk, HttpStream,
};
pub use kernel::{config, config_bytes, input, log, output, set_error, var_get, var_remove, var_set, LogLevel};
pub use plugin::{handle, handle_bytes, BoxError};
pub use sse::{SseEvent, SseParser};
pub use types::*;

/// Re-exported so plug-ins use the same serde_json as the SDK.
pub use serde_json;
