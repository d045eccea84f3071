package sdk

// Binding of the Extism kernel ABI (import module "extism:host/env").
//
// The kernel keeps its own memory, separate from the plug-in's linear memory: every value that
// crosses to the host (input, output, config keys, vars, logs, errors, host-function payloads)
// lives in a kernel block named by a 64-bit handle, and bytes move in and out through
// load_*/store_* calls. This file hides that behind []byte.
//
// Ownership (extism 1.x): config_get, var_get, var_set, log_*, error_set and output_set take
// ownership of the handles passed to them, so the SDK never frees or reuses such a handle. The
// kernel resets its memory at the start of every export call, so a leaked block lives at most
// until the call returns.

import "encoding/binary"

//go:wasmimport extism:host/env alloc
func extismAlloc(length uint64) uint64

//go:wasmimport extism:host/env free
func extismFree(handle uint64)

//go:wasmimport extism:host/env length
func extismLength(handle uint64) uint64

//go:wasmimport extism:host/env load_u8
func extismLoadU8(offset uint64) uint32

//go:wasmimport extism:host/env load_u64
func extismLoadU64(offset uint64) uint64

//go:wasmimport extism:host/env store_u8
func extismStoreU8(offset uint64, value uint32)

//go:wasmimport extism:host/env store_u64
func extismStoreU64(offset uint64, value uint64)

//go:wasmimport extism:host/env input_length
func extismInputLength() uint64

//go:wasmimport extism:host/env input_load_u8
func extismInputLoadU8(offset uint64) uint32

//go:wasmimport extism:host/env input_load_u64
func extismInputLoadU64(offset uint64) uint64

//go:wasmimport extism:host/env output_set
func extismOutputSet(handle, length uint64)

//go:wasmimport extism:host/env error_set
func extismErrorSet(handle uint64)

//go:wasmimport extism:host/env config_get
func extismConfigGet(key uint64) uint64

//go:wasmimport extism:host/env var_get
func extismVarGet(key uint64) uint64

//go:wasmimport extism:host/env var_set
func extismVarSet(key, value uint64)

//go:wasmimport extism:host/env log_info
func extismLogInfo(handle uint64)

//go:wasmimport extism:host/env log_debug
func extismLogDebug(handle uint64)

//go:wasmimport extism:host/env log_warn
func extismLogWarn(handle uint64)

//go:wasmimport extism:host/env log_error
func extismLogError(handle uint64)

// store copies b into a fresh kernel block and returns its handle (0 for an empty b: the
// kernel's alloc(0) returns 0, which every kernel function reads as "nothing").
//
// It writes eight bytes per store_u64 call and only the tail byte by byte: each call crosses
// the wasm boundary, and a 1 MiB payload is 131 072 calls this way instead of a million.
// It panics when the kernel is out of memory (the plug-in's memory_pages limit); Run turns
// that panic into an error.
func store(b []byte) uint64 {
	n := uint64(len(b))
	if n == 0 {
		return 0
	}
	h := extismAlloc(n)
	if h == 0 {
		panic("chainsocket sdk: kernel alloc failed (out of memory?)")
	}
	i := uint64(0)
	for ; i+8 <= n; i += 8 {
		extismStoreU64(h+i, binary.LittleEndian.Uint64(b[i:]))
	}
	for ; i < n; i++ {
		extismStoreU8(h+i, uint32(b[i]))
	}
	return h
}

// load copies the kernel block h into a new slice, word-wise like store. Handle 0 is empty.
func load(h uint64) []byte {
	if h == 0 {
		return []byte{}
	}
	n := extismLength(h)
	b := make([]byte, n)
	i := uint64(0)
	for ; i+8 <= n; i += 8 {
		binary.LittleEndian.PutUint64(b[i:], extismLoadU64(h+i))
	}
	for ; i < n; i++ {
		b[i] = byte(extismLoadU8(h + i))
	}
	return b
}

// Input returns the bytes the host passed to the current export call.
func Input() []byte {
	n := extismInputLength()
	b := make([]byte, n)
	i := uint64(0)
	for ; i+8 <= n; i += 8 {
		binary.LittleEndian.PutUint64(b[i:], extismInputLoadU64(i))
	}
	for ; i < n; i++ {
		b[i] = byte(extismInputLoadU8(i))
	}
	return b
}

// Output sets the bytes the current export call returns to the host. An empty b sets nothing,
// which the host reads as empty output. The last call wins.
func Output(b []byte) {
	if len(b) == 0 {
		return
	}
	extismOutputSet(store(b), uint64(len(b)))
}

// OutputString is Output for a string.
func OutputString(s string) { Output([]byte(s)) }

// SetError sets the error message of the current call. The export must then return non-zero
// for the host to report it (Run does both).
func SetError(msg string) {
	if msg == "" {
		// error_set(0) clears the error, so an empty message would read as success.
		msg = "error"
	}
	extismErrorSet(store([]byte(msg)))
}

// Config returns the value of a config key and whether it is set. Extism config values are
// strings: the host passes YAML strings as they are and any other value as its JSON text.
func Config(key string) (string, bool) {
	if key == "" {
		return "", false
	}
	h := extismConfigGet(store([]byte(key)))
	if h == 0 {
		return "", false
	}
	v := load(h)
	extismFree(h)
	return string(v), true
}

// Var returns a plug-in variable and whether it is set. Vars live as long as the plug-in
// instance (across calls, not across processes; use KVGet/KVSet for that).
func Var(key string) ([]byte, bool) {
	if key == "" {
		return nil, false
	}
	h := extismVarGet(store([]byte(key)))
	if h == 0 {
		return nil, false
	}
	v := load(h)
	extismFree(h)
	return v, true
}

// SetVar stores a plug-in variable. An empty value deletes it (the kernel reads handle 0 as
// "delete").
func SetVar(key string, value []byte) {
	if key == "" {
		return
	}
	extismVarSet(store([]byte(key)), store(value))
}

// DeleteVar removes a plug-in variable.
func DeleteVar(key string) { SetVar(key, nil) }

// LogDebug, LogInfo, LogWarn and LogError write a line to the host's log of this plug-in
// (shown by `cspm run -v`). Empty messages are dropped: there is no block to hand over.
func LogDebug(msg string) { logWith(extismLogDebug, msg) }

// LogInfo logs at info level; see LogDebug.
func LogInfo(msg string) { logWith(extismLogInfo, msg) }

// LogWarn logs at warn level; see LogDebug.
func LogWarn(msg string) { logWith(extismLogWarn, msg) }

// LogError logs at error level; see LogDebug.
func LogError(msg string) { logWith(extismLogError, msg) }

func logWith(f func(uint64), msg string) {
	if msg != "" {
		f(store([]byte(msg)))
	}
}
