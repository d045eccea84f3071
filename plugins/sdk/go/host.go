package sdk

// The Chainsocket host functions (import module "extism:host/user"), all (i64) -> i64: the
// parameter is a kernel block holding the JSON request, which the host does NOT take ownership
// of; the result is a block the host allocated holding the JSON response, which the guest owns.

import (
	"encoding/json"
	"errors"
	"fmt"
)

//go:wasmimport extism:host/user call_llm
func hostCallLLM(request uint64) uint64

//go:wasmimport extism:host/user call_tool
func hostCallTool(request uint64) uint64

//go:wasmimport extism:host/user call_agent
func hostCallAgent(request uint64) uint64

//go:wasmimport extism:host/user http_fetch
func hostHTTPFetch(request uint64) uint64

//go:wasmimport extism:host/user kv_get
func hostKVGet(request uint64) uint64

//go:wasmimport extism:host/user kv_set
func hostKVSet(request uint64) uint64

//go:wasmimport extism:host/user emit
func hostEmit(request uint64) uint64

// The streaming extension (docs/abi.md, "Streaming HTTP"), raw through HostCall.

//go:wasmimport extism:host/user http_open
func hostHTTPOpen(request uint64) uint64

//go:wasmimport extism:host/user http_read
func hostHTTPRead(request uint64) uint64

//go:wasmimport extism:host/user http_close
func hostHTTPClose(request uint64) uint64

// ErrUnknownFunction is returned by HostCall for a name that is not a Chainsocket host function.
var ErrUnknownFunction = errors.New("chainsocket sdk: unknown host function")

// invoke passes request to one host function and returns its response bytes. The request
// block is freed right after the call (the host only borrowed it), the response block as soon
// as it is copied out.
func invoke(fn func(uint64) uint64, request []byte) []byte {
	req := store(request)
	resp := fn(req)
	extismFree(req)
	out := load(resp)
	extismFree(resp)
	return out
}

// HostCall is the raw escape hatch: it passes request verbatim to the named host function
// ("call_llm", "call_tool", "call_agent", "http_fetch", "kv_get", "kv_set", "emit", "http_open",
// "http_read", "http_close") and returns
// the response verbatim, error documents included. Its only error is ErrUnknownFunction.
//
// Using HostCall links all ten host-function imports into the module; the typed calls only
// link the ones a plug-in uses.
func HostCall(fn string, request []byte) ([]byte, error) {
	var f func(uint64) uint64
	switch fn {
	case "call_llm":
		f = hostCallLLM
	case "call_tool":
		f = hostCallTool
	case "call_agent":
		f = hostCallAgent
	case "http_fetch":
		f = hostHTTPFetch
	case "kv_get":
		f = hostKVGet
	case "kv_set":
		f = hostKVSet
	case "emit":
		f = hostEmit
	case "http_open":
		f = hostHTTPOpen
	case "http_read":
		f = hostHTTPRead
	case "http_close":
		f = hostHTTPClose
	default:
		return nil, fmt.Errorf("%w: %q", ErrUnknownFunction, fn)
	}
	return invoke(f, request), nil
}

// call is the typed path: marshal req, call fn, turn an error document into a *HostError,
// else unmarshal the response into resp (which may be nil to ignore it).
func call(fn func(uint64) uint64, req any, resp any) error {
	body, err := json.Marshal(req)
	if err != nil {
		return fmt.Errorf("chainsocket sdk: encoding request: %w", err)
	}
	out := invoke(fn, body)
	if herr := errorDocument(out); herr != nil {
		return herr
	}
	if resp == nil {
		return nil
	}
	if err := json.Unmarshal(out, resp); err != nil {
		return fmt.Errorf("chainsocket sdk: decoding response: %w", err)
	}
	return nil
}

// errorDocument returns the error of a {"error": {"code", "message"}} response, or nil. Only an
// object under "error" counts: an LLM response may carry "error" as a plain string next to its
// content, and that is a successful response.
func errorDocument(out []byte) *HostError {
	var doc struct {
		Error json.RawMessage `json:"error"`
	}
	if json.Unmarshal(out, &doc) != nil || len(doc.Error) == 0 || doc.Error[0] != '{' {
		return nil
	}
	var herr HostError
	if json.Unmarshal(doc.Error, &herr) != nil {
		return nil
	}
	return &herr
}

// CallLLM asks the LLM declared as name in the app config to complete req.
func CallLLM(name string, req LLMRequest) (LLMResponse, error) {
	var resp LLMResponse
	err := call(hostCallLLM, struct {
		Name string `json:"name"`
		LLMRequest
	}{name, req}, &resp)
	return resp, err
}

// CallTool runs the tool declared as name with a free-text input.
func CallTool(name, input string) (ToolResponse, error) {
	var resp ToolResponse
	err := call(hostCallTool, struct {
		Name  string `json:"name"`
		Input string `json:"input"`
	}{name, input}, &resp)
	return resp, err
}

// CallToolArgs runs the tool declared as name with structured arguments; args must marshal to
// a JSON object (a struct or a map).
func CallToolArgs(name string, args any) (ToolResponse, error) {
	var resp ToolResponse
	err := call(hostCallTool, struct {
		Name      string `json:"name"`
		Arguments any    `json:"arguments"`
	}{name, args}, &resp)
	return resp, err
}

// CallAgent runs the agent declared as name. An empty session lets the host pick the caller's.
func CallAgent(name, input, session string) (AgentResponse, error) {
	var resp AgentResponse
	err := call(hostCallAgent, struct {
		Name    string `json:"name"`
		Input   string `json:"input"`
		Session string `json:"session,omitempty"`
	}{name, input, session}, &resp)
	return resp, err
}

// HTTPFetch makes an HTTP request through the host, which only lets through the hosts granted
// to this plug-in and injects the secrets bound to them.
func HTTPFetch(req HTTPRequest) (HTTPResponse, error) {
	var resp HTTPResponse
	err := call(hostHTTPFetch, req, &resp)
	return resp, err
}

// KVGet reads key from the persistent store (scoped to app, plug-in and session) into v, which
// is anything json.Unmarshal accepts (a *json.RawMessage keeps the raw JSON). It reports false,
// leaving v untouched, when the key is absent (or holds null).
func KVGet(key string, v any) (bool, error) {
	var resp struct {
		Value json.RawMessage `json:"value"`
	}
	if err := call(hostKVGet, struct {
		Key string `json:"key"`
	}{key}, &resp); err != nil {
		return false, err
	}
	if len(resp.Value) == 0 || string(resp.Value) == "null" {
		return false, nil
	}
	if err := json.Unmarshal(resp.Value, v); err != nil {
		return false, fmt.Errorf("chainsocket sdk: decoding kv value: %w", err)
	}
	return true, nil
}

// KVSet stores value (anything json.Marshal accepts, at most 1 MiB encoded) under key.
func KVSet(key string, value any) error {
	return call(hostKVSet, struct {
		Key   string `json:"key"`
		Value any    `json:"value"`
	}{key, value}, nil)
}

// Emit sends an event (a streamed chunk, progress, or a log line) to whoever runs the app.
func Emit(ev Event) error { return call(hostEmit, ev, nil) }

// EmitChunk streams a piece of the answer.
func EmitChunk(text string) error { return Emit(Event{Type: EventChunk, Text: text}) }

// EmitProgress reports progress; done and total are optional (pass 0, 0 to leave them out).
func EmitProgress(message string, done, total int) error {
	ev := Event{Type: EventProgress, Message: message}
	if done != 0 || total != 0 {
		ev.Done, ev.Total = &done, &total
	}
	return Emit(ev)
}

// EmitLog logs through the Chainsocket layer; level is "debug", "info", "warn" or "error"
// ("" for the host's default).
func EmitLog(level, message string) error {
	return Emit(Event{Type: EventLog, Level: level, Message: message})
}
