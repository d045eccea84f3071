//! Helpers to write a plug-in's exports (`call` and friends).
//!
//! An export is `extern "C" fn() -> i32`: it reads its input with the kernel, writes its output,
//! and returns `0`, or sets an error message and returns non-zero. [`handle`] does that plumbing
//! around a typed closure; [`export!`](crate::export) and [`export_bytes!`](crate::export_bytes)
//! generate the `#[no_mangle]` function.

use std::fmt::Display;
use std::sync::Once;

use serde::de::DeserializeOwned;
use serde::Serialize;

use crate::kernel;

/// A catch-all error type for handlers: `?` converts `HostError`, `serde_json::Error`,
/// `String` and `&str` into it.
pub type BoxError = Box<dyn std::error::Error>;

static PANIC_HOOK: Once = Once::new();

/// Panics abort the wasm instance (`unreachable` trap) and the host would only see "wasm
/// backtrace". This hook first sets the panic message as the call's error, so the host reports
/// the actual cause.
fn install_panic_hook() {
    PANIC_HOOK.call_once(|| {
        std::panic::set_hook(Box::new(|info| kernel::set_error(&info.to_string())));
    });
}

/// Runs a JSON handler: parses the input as `I`, calls `f`, writes the result as JSON.
/// Returns the value the export must return: `0` on success; on a bad input or an `Err`, sets
/// the error message and returns `1`.
pub fn handle<I, O, E, F>(f: F) -> i32
where
    I: DeserializeOwned,
    O: Serialize,
    E: Display,
    F: FnOnce(I) -> Result<O, E>,
{
    handle_bytes(|bytes| {
        let input: I = serde_json::from_slice(&bytes).map_err(|e| format!("invalid input: {}", e))?;
        let output = f(input).map_err(|e| e.to_string())?;
        serde_json::to_vec(&output).map_err(|e| format!("cannot encode output: {}", e))
    })
}

/// Runs a bytes handler: input bytes in, output bytes out, same error convention as [`handle`].
pub fn handle_bytes<E, F>(f: F) -> i32
where
    E: Display,
    F: FnOnce(Vec<u8>) -> Result<Vec<u8>, E>,
{
    install_panic_hook();
    match f(kernel::input()) {
        Ok(out) => {
            kernel::output(&out);
            0
        }
        Err(e) => {
            kernel::set_error(&e.to_string());
            1
        }
    }
}

/// Exports a JSON handler `fn(I) -> Result<O, E>` under `name`:
/// `chainsocket::export!(call, my_tool);` defines `#[no_mangle] extern "C" fn call() -> i32`.
#[macro_export]
macro_rules! export {
    ($name:ident, $handler:expr) => {
        #[no_mangle]
        pub extern "C" fn $name() -> i32 {
            $crate::handle($handler)
        }
    };
}

/// Exports a bytes handler `fn(Vec<u8>) -> Result<Vec<u8>, E>` under `name`.
#[macro_export]
macro_rules! export_bytes {
    ($name:ident, $handler:expr) => {
        #[no_mangle]
        pub extern "C" fn $name() -> i32 {
            $crate::handle_bytes($handler)
        }
    };
}
