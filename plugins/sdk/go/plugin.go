// Package sdk is the Go SDK of Chainsocket plug-ins: Extism WebAssembly modules built with
// GOOS=wasip1 GOARCH=wasm -buildmode=c-shared. It binds the Extism kernel ABI (input, output,
// config, vars, logs, errors) and the Chainsocket host functions (CallLLM, CallTool, CallAgent,
// HTTPFetch, KVGet, KVSet, Emit, and the raw HostCall), and helps write the exported call:
//
//	//go:wasmexport call
//	func call() int32 {
//		return sdk.RunJSON(func(req sdk.ToolRequest) (sdk.ToolResponse, error) {
//			return sdk.ToolResponse{Output: strings.ToUpper(req.Input)}, nil
//		})
//	}
//
//	func main() {}
//
// See docs/sdk/go.md.
package sdk

import (
	"encoding/json"
	"fmt"
)

// Run implements an export: it passes the call's input to f, sets f's result as the output
// and returns 0; if f fails (or panics) it sets the error message instead and returns 1, which
// is what the host expects from a failing export. Use it as `return sdk.Run(f)`.
func Run(f func(input []byte) ([]byte, error)) (rc int32) {
	// A panic would otherwise abort the whole Go runtime with a bare trap: report it as this
	// call's error instead (the host then replaces the instance, as after any failed call).
	defer func() {
		if p := recover(); p != nil {
			SetError(fmt.Sprint("panic: ", p))
			rc = 1
		}
	}()
	out, err := f(Input())
	if err != nil {
		SetError(err.Error())
		return 1
	}
	Output(out)
	return 0
}

// RunJSON is Run for JSON in and out: the input is decoded into Req (a malformed input is the
// call's error) and the Resp that f returns is encoded as the output.
func RunJSON[Req, Resp any](f func(Req) (Resp, error)) int32 {
	return Run(func(input []byte) ([]byte, error) {
		var req Req
		if err := json.Unmarshal(input, &req); err != nil {
			return nil, fmt.Errorf("invalid input: %w", err)
		}
		resp, err := f(req)
		if err != nil {
			return nil, err
		}
		return json.Marshal(resp)
	})
}
