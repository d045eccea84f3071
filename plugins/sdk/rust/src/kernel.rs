//! Binding of the Extism kernel ABI (import module `extism:host/env`).
//!
//! The kernel keeps its own memory, separate from the plug-in's linear memory: every value that
//! crosses to the host (input, output, config keys, vars, logs, errors, host-function payloads)
//! lives in a kernel block named by a 64-bit handle, and bytes are moved in and out with
//! `load_*`/`store_*` calls. This module hides that behind `&[u8]`/`Vec<u8>`.
//!
//! Ownership rules (extism 1.x): `config_get`, `var_get`, `var_set`, `log_*`, `error_set` and
//! `output_set` take ownership of the handles passed to them; the guest must never free or reuse
//! those handles afterwards. [`Memory::into_raw`] is how this module hands a block over.

use std::mem;

/// Raw imports. The Rust-side names are prefixed so they cannot be mistaken for the safe wrappers
/// below; the wasm import names are the kernel's (`link_name`). A plug-in may still export a
/// function with a kernel name (the conformance plug-in exports `config_get`): rustc keeps
/// imports and exports apart.
mod ffi {
    #[link(wasm_import_module = "extism:host/env")]
    extern "C" {
        #[link_name = "alloc"]
        pub fn extism_alloc(len: u64) -> u64;
        #[link_name = "free"]
        pub fn extism_free(handle: u64);
        #[link_name = "length"]
        pub fn extism_length(handle: u64) -> u64;
        #[link_name = "load_u8"]
        pub fn extism_load_u8(offset: u64) -> u8;
        #[link_name = "load_u64"]
        pub fn extism_load_u64(offset: u64) -> u64;
        #[link_name = "store_u8"]
        pub fn extism_store_u8(offset: u64, value: u8);
        #[link_name = "store_u64"]
        pub fn extism_store_u64(offset: u64, value: u64);
        #[link_name = "input_length"]
        pub fn extism_input_length() -> u64;
        #[link_name = "input_load_u8"]
        pub fn extism_input_load_u8(offset: u64) -> u8;
        #[link_name = "input_load_u64"]
        pub fn extism_input_load_u64(offset: u64) -> u64;
        #[link_name = "output_set"]
        pub fn extism_output_set(handle: u64, len: u64);
        #[link_name = "error_set"]
        pub fn extism_error_set(handle: u64);
        #[link_name = "config_get"]
        pub fn extism_config_get(key: u64) -> u64;
        #[link_name = "var_get"]
        pub fn extism_var_get(key: u64) -> u64;
        #[link_name = "var_set"]
        pub fn extism_var_set(key: u64, value: u64);
        #[link_name = "log_info"]
        pub fn extism_log_info(handle: u64);
        #[link_name = "log_debug"]
        pub fn extism_log_debug(handle: u64);
        #[link_name = "log_warn"]
        pub fn extism_log_warn(handle: u64);
        #[link_name = "log_error"]
        pub fn extism_log_error(handle: u64);
    }
}

/// An owned block of kernel memory. It is freed on drop unless ownership was handed to the
/// kernel or host with [`Memory::into_raw`].
///
/// Handle `0` stands for "no block": the kernel's `alloc(0)` returns it, so empty byte strings
/// are represented by `0` and never touch the allocator.
#[derive(Debug)]
pub struct Memory {
    handle: u64,
    len: u64,
}

impl Memory {
    /// Copies `bytes` into a fresh kernel block, eight bytes per `store_u64` call (a 1 MiB
    /// payload is 131 072 calls instead of a million), the tail byte by byte.
    ///
    /// Panics if the kernel is out of memory (the plug-in's `memory_pages` limit).
    pub fn from_bytes(bytes: &[u8]) -> Memory {
        let len = bytes.len() as u64;
        if len == 0 {
            return Memory { handle: 0, len: 0 };
        }
        let handle = unsafe { ffi::extism_alloc(len) };
        if handle == 0 {
            panic!("extism: out of memory allocating {} bytes", len);
        }
        let words = bytes.chunks_exact(8);
        let tail = words.remainder();
        let mut offset = handle;
        for word in words {
            let mut buf = [0u8; 8];
            buf.copy_from_slice(word);
            unsafe { ffi::extism_store_u64(offset, u64::from_le_bytes(buf)) };
            offset += 8;
        }
        for &b in tail {
            unsafe { ffi::extism_store_u8(offset, b) };
            offset += 1;
        }
        Memory { handle, len }
    }

    /// Takes ownership of a handle returned by the kernel or a host function (`0` is allowed
    /// and reads as empty). The length is asked from the kernel.
    ///
    /// # Safety
    /// `handle` must be `0` or a live block the guest owns, not owned by anything else.
    pub unsafe fn from_raw(handle: u64) -> Memory {
        let len = if handle == 0 { 0 } else { ffi::extism_length(handle) };
        Memory { handle, len }
    }

    /// The raw handle (still owned by `self`).
    pub fn handle(&self) -> u64 {
        self.handle
    }

    /// Length of the block in bytes.
    pub fn len(&self) -> u64 {
        self.len
    }

    /// True for the empty block (handle `0`).
    pub fn is_empty(&self) -> bool {
        self.len == 0
    }

    /// Copies the block out of kernel memory, word-wise like [`Memory::from_bytes`].
    pub fn to_vec(&self) -> Vec<u8> {
        read_words(self.len, |off| unsafe { ffi::extism_load_u64(self.handle + off) }, |off| unsafe {
            ffi::extism_load_u8(self.handle + off)
        })
    }

    /// Gives the handle away (to a kernel call that takes ownership); it will not be freed.
    pub fn into_raw(self) -> u64 {
        let handle = self.handle;
        mem::forget(self);
        handle
    }
}

impl Drop for Memory {
    fn drop(&mut self) {
        if self.handle != 0 {
            unsafe { ffi::extism_free(self.handle) };
        }
    }
}

/// Reads `len` bytes with a word loader and a byte loader (shared by block and input reads).
fn read_words(len: u64, word: impl Fn(u64) -> u64, byte: impl Fn(u64) -> u8) -> Vec<u8> {
    let mut out = Vec::with_capacity(len as usize);
    let mut off = 0;
    while off + 8 <= len {
        out.extend_from_slice(&word(off).to_le_bytes());
        off += 8;
    }
    while off < len {
        out.push(byte(off));
        off += 1;
    }
    out
}

/// The bytes the host passed to the current call.
pub fn input() -> Vec<u8> {
    let len = unsafe { ffi::extism_input_length() };
    read_words(len, |off| unsafe { ffi::extism_input_load_u64(off) }, |off| unsafe {
        ffi::extism_input_load_u8(off)
    })
}

/// Sets the output of the current call (the last call wins).
pub fn output(bytes: &[u8]) {
    let mem = Memory::from_bytes(bytes);
    let len = mem.len();
    unsafe { ffi::extism_output_set(mem.into_raw(), len) };
}

/// Sets the error message of the current call; the export must then return non-zero.
///
/// An empty message would be handle `0`, which the kernel reads as "clear the error", so it is
/// replaced by `"plug-in failed"`.
pub fn set_error(message: &str) {
    let message = if message.is_empty() { "plug-in failed" } else { message };
    let mem = Memory::from_bytes(message.as_bytes());
    unsafe { ffi::extism_error_set(mem.into_raw()) };
}

/// A config value as raw bytes, `None` when the key is absent (or empty: an empty key cannot be
/// passed to the kernel, see [`Memory`]).
pub fn config_bytes(key: &str) -> Option<Vec<u8>> {
    if key.is_empty() {
        return None;
    }
    let key = Memory::from_bytes(key.as_bytes());
    let value = unsafe { Memory::from_raw(ffi::extism_config_get(key.into_raw())) };
    if value.handle() == 0 {
        None
    } else {
        Some(value.to_vec())
    }
}

/// A config value as a string (Extism config values are strings; non-string YAML values arrive
/// as their JSON text). Invalid UTF-8 is replaced lossily.
pub fn config(key: &str) -> Option<String> {
    config_bytes(key).map(|b| String::from_utf8_lossy(&b).into_owned())
}

/// A plug-in variable (kept across calls of the same plug-in instance), `None` when unset.
pub fn var_get(key: &str) -> Option<Vec<u8>> {
    if key.is_empty() {
        return None;
    }
    let key = Memory::from_bytes(key.as_bytes());
    let value = unsafe { Memory::from_raw(ffi::extism_var_get(key.into_raw())) };
    if value.handle() == 0 {
        None
    } else {
        Some(value.to_vec())
    }
}

/// Sets a plug-in variable. An empty value deletes the variable (the kernel cannot tell an empty
/// block from "no value"). Extism caps all vars of an instance at 1 MiB by default; going over
/// traps the call.
pub fn var_set(key: &str, value: &[u8]) {
    if key.is_empty() {
        return;
    }
    let key = Memory::from_bytes(key.as_bytes());
    let value = Memory::from_bytes(value);
    unsafe { ffi::extism_var_set(key.into_raw(), value.into_raw()) };
}

/// Deletes a plug-in variable.
pub fn var_remove(key: &str) {
    var_set(key, &[]);
}

/// Log levels, shared by the kernel logger and `emit` log events.
#[derive(Clone, Copy, Debug, PartialEq, Eq, serde::Serialize, serde::Deserialize)]
#[serde(rename_all = "lowercase")]
pub enum LogLevel {
    /// `log_debug`
    Debug,
    /// `log_info`
    Info,
    /// `log_warn`
    Warn,
    /// `log_error`
    Error,
}

/// Writes a line to the host's log for this plug-in (`cspm run -v` shows it). Empty messages
/// are skipped: they cannot be passed to the kernel.
pub fn log(level: LogLevel, message: &str) {
    if message.is_empty() {
        return;
    }
    let handle = Memory::from_bytes(message.as_bytes()).into_raw();
    unsafe {
        match level {
            LogLevel::Debug => ffi::extism_log_debug(handle),
            LogLevel::Info => ffi::extism_log_info(handle),
            LogLevel::Warn => ffi::extism_log_warn(handle),
            LogLevel::Error => ffi::extism_log_error(handle),
        }
    }
}
