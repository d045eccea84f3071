// The Go SDK's conformance plug-in (docs/sdk/conformance.md): each export exercises one part of
// chainsocket.dev/sdk, so that tests/test_conformance.py can hold all SDKs to the same cases.
// It uses nothing but the SDK and the standard library.
package main

import (
	"bytes"
	"encoding/json"
	"errors"
	"fmt"
	"os"
	"strconv"
	"strings"

	"chainsocket.dev/sdk"
)

// main is never run: a c-shared (reactor) module only initialises its packages in _initialize.
func main() {}

//go:wasmexport call
func call() int32 {
	kind, ok := sdk.Config("kind")
	if !ok {
		kind = "tool"
	}
	switch kind {
	case "llm":
		return sdk.RunJSON(callLLM)
	case "agent":
		return sdk.RunJSON(callAgent)
	case "tool":
		return sdk.RunJSON(callTool)
	}
	return sdk.Run(func([]byte) ([]byte, error) { return nil, fmt.Errorf("unknown kind %q", kind) })
}

func callTool(req sdk.ToolRequest) (sdk.ToolResponse, error) {
	if req.HasArguments() {
		return sdk.ToolResponse{Output: req.CompactArguments()}, nil
	}
	if strings.HasPrefix(req.Input, "http://") || strings.HasPrefix(req.Input, "https://") {
		resp, err := sdk.HTTPFetch(sdk.HTTPRequest{Method: "GET", URL: req.Input})
		var herr *sdk.HostError
		if errors.As(err, &herr) {
			return sdk.ToolResponse{Output: "error: " + herr.Message, IsError: true}, nil
		} else if err != nil {
			return sdk.ToolResponse{}, err
		}
		if resp.Status >= 400 {
			return sdk.ToolResponse{Output: "HTTP " + strconv.Itoa(resp.Status), IsError: true}, nil
		}
		return sdk.ToolResponse{Output: resp.Body}, nil
	}
	return sdk.ToolResponse{Output: req.Input}, nil
}

func callLLM(req sdk.LLMRequest) (sdk.LLMResponse, error) {
	if len(req.Messages) == 0 {
		return sdk.LLMResponse{}, errors.New("no messages")
	}
	return sdk.LLMResponse{
		Content:      "echo: " + req.Messages[len(req.Messages)-1].Content,
		FinishReason: sdk.FinishStop,
		Usage:        sdk.Usage{InputTokens: len(req.Messages), OutputTokens: 1},
	}, nil
}

func callAgent(req sdk.AgentRequest) (sdk.AgentResponse, error) {
	switch {
	case len(req.Tools) > 0:
		resp, err := sdk.CallTool(req.Tools[0].Name, req.Input)
		var herr *sdk.HostError
		if errors.As(err, &herr) {
			return sdk.AgentResponse{Output: "error: " + herr.Message, FinishReason: sdk.AgentFinishError}, nil
		} else if err != nil {
			return sdk.AgentResponse{}, err
		}
		return sdk.AgentResponse{Output: resp.Output, FinishReason: sdk.AgentFinishFinalAnswer}, nil
	case len(req.LLMs) > 0:
		var msgs []sdk.Message
		if prompt, ok := sdk.Config("prompt"); ok && prompt != "" {
			msgs = append(msgs, sdk.Message{Role: sdk.RoleSystem, Content: prompt})
		}
		msgs = append(msgs, sdk.Message{Role: sdk.RoleUser, Content: req.Input})
		resp, err := sdk.CallLLM(req.LLMs[0].Name, sdk.LLMRequest{Messages: msgs})
		if err != nil {
			return sdk.AgentResponse{}, err
		}
		return sdk.AgentResponse{Output: resp.Content, FinishReason: sdk.AgentFinishFinalAnswer}, nil
	case len(req.Agents) > 0:
		resp, err := sdk.CallAgent(req.Agents[0].Name, req.Input, "")
		var herr *sdk.HostError
		if errors.As(err, &herr) {
			return sdk.AgentResponse{Output: "error: " + herr.Message, FinishReason: sdk.AgentFinishError}, nil
		} else if err != nil {
			return sdk.AgentResponse{}, err
		}
		return resp, nil
	}
	return sdk.AgentResponse{Output: req.Input, FinishReason: sdk.AgentFinishFinalAnswer}, nil
}

//go:wasmexport echo
func echo() int32 {
	return sdk.Run(func(in []byte) ([]byte, error) { return in, nil })
}

//go:wasmexport config_get
func configGet() int32 {
	return sdk.Run(func(in []byte) ([]byte, error) {
		v, ok := sdk.Config(string(in))
		if !ok {
			return nil, fmt.Errorf("missing config key: %s", in)
		}
		return []byte(v), nil
	})
}

//go:wasmexport count
func count() int32 {
	return sdk.Run(func([]byte) ([]byte, error) {
		n := 0
		if v, ok := sdk.Var("count"); ok {
			var err error
			if n, err = strconv.Atoi(string(v)); err != nil {
				return nil, fmt.Errorf("var count: %w", err)
			}
		}
		s := strconv.Itoa(n + 1)
		sdk.SetVar("count", []byte(s))
		return []byte(s), nil
	})
}

//go:wasmexport fail
func fail() int32 {
	return sdk.Run(func(in []byte) ([]byte, error) { return nil, errors.New(string(in)) })
}

// crash: Go's own failure, a fatal error that Run cannot recover: the message goes to stderr, then
// the call blocks for good ("fatal error: all goroutines are asleep - deadlock!", a trap).
//
//go:wasmexport crash
func crash() int32 {
	os.Stderr.WriteString(string(sdk.Input()) + "\n")
	<-make(chan struct{})
	return 0
}

//go:wasmexport log
func log() int32 {
	return sdk.Run(func(in []byte) ([]byte, error) {
		sdk.LogInfo(string(in))
		sdk.LogWarn("warn:" + string(in))
		return []byte("logged"), nil
	})
}

//go:wasmexport host
func host() int32 {
	return sdk.Run(func(in []byte) ([]byte, error) {
		var c struct {
			Fn      string          `json:"fn"`
			Request json.RawMessage `json:"request"`
		}
		if err := json.Unmarshal(in, &c); err != nil {
			return nil, err
		}
		resp, err := hostCase(c.Fn, c.Request)
		var herr *sdk.HostError
		if errors.As(err, &herr) {
			return json.Marshal(map[string]any{"error": herr})
		} else if err != nil {
			return nil, err
		}
		return json.Marshal(resp)
	})
}

// hostCase decodes the request fields of one host function, calls its typed wrapper and
// returns the typed response.
func hostCase(fn string, request json.RawMessage) (any, error) {
	decode := func(v any) error { return json.Unmarshal(request, v) }
	empty := struct{}{}
	switch fn {
	case "call_llm":
		var r struct {
			Name string `json:"name"`
			sdk.LLMRequest
		}
		if err := decode(&r); err != nil {
			return nil, err
		}
		return sdk.CallLLM(r.Name, r.LLMRequest)
	case "call_tool":
		var r struct{ Name, Input string }
		if err := decode(&r); err != nil {
			return nil, err
		}
		return sdk.CallTool(r.Name, r.Input)
	case "call_agent":
		var r struct{ Name, Input, Session string }
		if err := decode(&r); err != nil {
			return nil, err
		}
		return sdk.CallAgent(r.Name, r.Input, r.Session)
	case "http_fetch":
		var r sdk.HTTPRequest
		if err := decode(&r); err != nil {
			return nil, err
		}
		return sdk.HTTPFetch(r)
	case "kv_get":
		var r struct{ Key string }
		if err := decode(&r); err != nil {
			return nil, err
		}
		var value json.RawMessage // stays nil (JSON null) when the key is absent
		if _, err := sdk.KVGet(r.Key, &value); err != nil {
			return nil, err
		}
		return map[string]any{"value": value}, nil
	case "kv_set":
		var r struct {
			Key   string          `json:"key"`
			Value json.RawMessage `json:"value"`
		}
		if err := decode(&r); err != nil {
			return nil, err
		}
		return empty, sdk.KVSet(r.Key, r.Value)
	case "emit":
		var ev sdk.Event
		if err := decode(&ev); err != nil {
			return nil, err
		}
		return empty, sdk.Emit(ev)
	}
	return nil, fmt.Errorf("unknown host function %q", fn)
}

//go:wasmexport raw
func raw() int32 {
	return sdk.Run(func(in []byte) ([]byte, error) {
		fn, payload, ok := bytes.Cut(in, []byte("\n"))
		if !ok {
			return nil, errors.New("raw: expected <host function>\\n<payload>")
		}
		return sdk.HostCall(string(fn), payload)
	})
}
