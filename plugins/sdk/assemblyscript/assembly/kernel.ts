// Kernel layer: input, output, errors, config, vars and logs.
//
// The kernel imports (`extism:host/env`) are the ones @extism/as-pdk already declares; this file
// only adds helpers that as-pdk 1.0.0 gets wrong or lacks:
//   - as-pdk's `Memory.allocateBytes` stores ONE byte per host call (`store_u8`), which makes a
//     1 MiB payload cost a million host calls; `allocBytes` below stores 8 bytes per call;
//   - as-pdk's word-wise `load`/`store` ignore a Uint8Array's `byteOffset` (wrong bytes for any
//     `subarray`); ours work from `dataStart`;
//   - `Host.outputString` allocates `string.length` (UTF-16 units) bytes, not the UTF-8 length;
//   - there is no `error_set` wrapper.
// Ownership (extism 1.1.1): config_get, var_get, var_set, log_* and error_set take ownership of
// the handles passed to them, so those handles are never freed or reused here.
// Empty blocks: the kernel's `alloc(0)` returns handle 0, which the kernel reads as "none"
// (var_set with 0 deletes, error_set with 0 clears) and the runtime may refuse as a key or log
// message; so an empty config value reads as missing, an empty var value deletes the var, and
// empty keys / log messages are not sent at all.

import {
  alloc,
  config_get,
  error_set,
  free,
  length,
  load_u64,
  load_u8,
  log_debug,
  log_error,
  log_info,
  log_warn,
  output_set,
  store_u64,
  store_u8,
  var_get,
  var_set,
} from "@extism/as-pdk/lib/env";
import { Host, LogLevel } from "@extism/as-pdk";

export { LogLevel };

/** Encodes a string as UTF-8 bytes (no terminator). */
export function utf8(s: string): Uint8Array {
  return Uint8Array.wrap(String.UTF8.encode(s));
}

/** Decodes UTF-8 bytes (any view, any offset) to a string. */
export function fromUtf8(b: Uint8Array): string {
  return String.UTF8.decodeUnsafe(b.dataStart, <usize>b.length);
}

/**
 * Copies `len` bytes of guest memory at `ptr` into kernel memory at `offset`,
 * 8 bytes per host call plus at most 7 single bytes for the tail.
 */
export function storeWords(offset: u64, ptr: usize, len: usize): void {
  let i: usize = 0;
  const words = len & ~(<usize>7);
  for (; i < words; i += 8) store_u64(offset + <u64>i, load<u64>(ptr + i));
  for (; i < len; i++) store_u8(offset + <u64>i, load<u8>(ptr + i));
}

/** Copies `len` bytes of kernel memory at `offset` into guest memory at `ptr`, word-wise. */
export function loadWords(offset: u64, ptr: usize, len: usize): void {
  let i: usize = 0;
  const words = len & ~(<usize>7);
  for (; i < words; i += 8) store<u64>(ptr + i, load_u64(offset + <u64>i));
  for (; i < len; i++) store<u8>(ptr + i, load_u8(offset + <u64>i));
}

/** Allocates a kernel block holding `data`; returns its handle (the caller owns it; 0 when empty). */
export function allocBytes(data: Uint8Array): u64 {
  const h = alloc(<u64>data.length);
  storeWords(h, data.dataStart, <usize>data.length);
  return h;
}

/** Allocates a kernel block holding `s` as UTF-8. */
export function allocString(s: string): u64 {
  return allocBytes(utf8(s));
}

/** Reads a whole kernel block into a new Uint8Array. Does not free it. */
export function readBlock(h: u64): Uint8Array {
  const n = <i32>length(h);
  const out = new Uint8Array(n);
  loadWords(h, out.dataStart, <usize>n);
  return out;
}

/** Reads a kernel block the guest owns, then frees it. */
export function takeBlock(h: u64): Uint8Array {
  const out = readBlock(h);
  free(h);
  return out;
}

/** The call's input bytes (as-pdk reads them word-wise already). */
export function input(): Uint8Array {
  return Host.input();
}

/** The call's input as a UTF-8 string. */
export function inputString(): string {
  return fromUtf8(Host.input());
}

/** Sets the call's output (word-wise copy, any view). */
export function output(data: Uint8Array): void {
  output_set(allocBytes(data), <u64>data.length);
}

/** Sets the call's output to `s` encoded as UTF-8. */
export function outputString(s: string): void {
  output(utf8(s));
}

/**
 * Sets the call's error message. The host reports it only if the export then returns
 * non-zero (or traps), so pair it with `return 1` — `fail()` does both.
 */
export function setError(message: string): void {
  error_set(allocString(message));
}

/** `setError(message)` and 1, for `return fail("...")` in an export. */
export function fail(message: string): i32 {
  setError(message);
  return 1;
}

/** A config value, or null when the key is missing (or its value is empty: see above). */
export function configGet(key: string): string | null {
  if (key.length == 0) return null;
  const h = config_get(allocString(key));
  if (h == 0) return null;
  return fromUtf8(takeBlock(h));
}

/** A plug-in variable (kept across calls of this instance), or null when unset. */
export function varGet(key: string): Uint8Array | null {
  if (key.length == 0) return null;
  const h = var_get(allocString(key));
  if (h == 0) return null;
  return takeBlock(h);
}

/** Sets a plug-in variable (an empty value deletes it). */
export function varSet(key: string, value: Uint8Array): void {
  if (key.length == 0) return;
  var_set(allocString(key), allocBytes(value));
}

/** Deletes a plug-in variable. */
export function varRemove(key: string): void {
  if (key.length == 0) return;
  var_set(allocString(key), 0);
}

/** Writes a line to the host's log at `level` (shown by `cspm run -v`); "" is skipped. */
export function log(level: LogLevel, message: string): void {
  if (message.length == 0) return;
  const h = allocString(message);
  switch (level) {
    case LogLevel.Debug:
      log_debug(h);
      break;
    case LogLevel.Warn:
      log_warn(h);
      break;
    case LogLevel.Error:
      log_error(h);
      break;
    default:
      log_info(h);
  }
}

/**
 * The module's abort handler. asc calls `abort` on a failed assertion, `throw`, an
 * out-of-bounds access or `unwrap()` of an error; without `--use abort=…` the module would
 * import `env.abort`, which the host does not provide. This sets the message as the call's
 * error (so the host reports it, not just "unreachable") and traps.
 * Build with `--use abort=~lib/@chainsocket/as-sdk/assembly/kernel/abortHandler`.
 */
export function abortHandler(
  message: string | null = null,
  fileName: string | null = null,
  line: u32 = 0,
  column: u32 = 0,
): void {
  let m = message !== null ? message : "abort";
  if (fileName !== null) m += " (" + fileName + ":" + line.toString() + ":" + column.toString() + ")";
  setError(m);
  unreachable();
}
