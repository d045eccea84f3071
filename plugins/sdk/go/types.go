package sdk

// Typed messages of the Chainsocket ABI 1 (docs/abi.md; the JSON Schemas in
// cspm/schemas/abi/v1.json are the source of truth). Optional fields are omitted when zero,
// except where zero is a meaningful value (temperature 0): those are pointers.

import (
	"bytes"
	"encoding/json"
)

// HostError is an error document {"error": {"code", "message"}} answered by the host: the
// request was refused, never trapped. Test Code against the Code* constants with errors.As.
type HostError struct {
	Code    string `json:"code"`
	Message string `json:"message"`
}

func (e *HostError) Error() string { return e.Code + ": " + e.Message }

// Error codes of docs/abi.md.
const (
	CodeBadRequest   = "bad_request"
	CodeNotDeclared  = "not_declared"
	CodeCycle        = "cycle"
	CodeDepth        = "depth"
	CodeNotGranted   = "not_granted"
	CodeUnsupported  = "unsupported"
	CodeCalleeFailed = "callee_failed"
	CodeHTTPError    = "http_error"
	CodeTimeout      = "timeout" // the call's wall-clock limit (timeout_ms, or its caller's) ran out
	CodeTooLarge     = "too_large"
	CodeInternal     = "internal"
)

// Message roles.
const (
	RoleSystem    = "system"
	RoleUser      = "user"
	RoleAssistant = "assistant"
	RoleTool      = "tool"
)

// Finish reasons of LLMs (Finish*) and agents (AgentFinish*).
const (
	FinishStop      = "stop"
	FinishLength    = "length"
	FinishError     = "error"
	FinishToolCalls = "tool_calls"

	AgentFinishFinalAnswer = "final_answer"
	AgentFinishMaxSteps    = "max_steps"
	AgentFinishError       = "error"
)

// Message is one chat message.
type Message struct {
	Role       string     `json:"role"`
	Content    string     `json:"content"`
	ToolCallID string     `json:"tool_call_id,omitempty"`
	ToolCalls  []ToolCall `json:"tool_calls,omitempty"`
}

// ToolCall is a call an LLM asks for (finish_reason "tool_calls"); Arguments is a JSON object.
type ToolCall struct {
	ID        string          `json:"id"`
	Name      string          `json:"name"`
	Arguments json.RawMessage `json:"arguments"`
}

// ToolSpec describes a tool offered to an LLM; InputSchema is a JSON Schema object.
type ToolSpec struct {
	Name        string          `json:"name"`
	Description string          `json:"description,omitempty"`
	InputSchema json.RawMessage `json:"input_schema,omitempty"`
}

// LLMRequest is what CallLLM sends (with the name) and what an llm plug-in's call receives.
type LLMRequest struct {
	Messages    []Message  `json:"messages"`
	Stop        []string   `json:"stop,omitempty"`
	MaxTokens   int        `json:"max_tokens,omitempty"`
	Temperature *float64   `json:"temperature,omitempty"`
	TopP        *float64   `json:"top_p,omitempty"`
	Seed        *int64     `json:"seed,omitempty"`
	Stream      bool       `json:"stream,omitempty"`
	Tools       []ToolSpec `json:"tools,omitempty"`
	ToolChoice  string     `json:"tool_choice,omitempty"`
}

// Usage counts tokens.
type Usage struct {
	InputTokens  int `json:"input_tokens"`
	OutputTokens int `json:"output_tokens"`
}

// LLMResponse is what CallLLM returns and what an llm plug-in's call outputs. Error is the
// model's own error text with finish_reason "error" (a refused request is a *HostError instead).
type LLMResponse struct {
	Content      string     `json:"content"`
	FinishReason string     `json:"finish_reason"`
	Usage        Usage      `json:"usage"`
	ToolCalls    []ToolCall `json:"tool_calls,omitempty"`
	Error        string     `json:"error,omitempty"`
}

// ToolRequest is what a tool plug-in's call receives: either a free-text Input, or structured
// Arguments (a JSON object, nil when the caller sent input).
type ToolRequest struct {
	Input     string          `json:"input"`
	Arguments json.RawMessage `json:"arguments,omitempty"`
}

// HasArguments reports whether the caller sent structured arguments rather than input.
func (r ToolRequest) HasArguments() bool { return len(r.Arguments) > 0 }

// CompactArguments returns Arguments as compact JSON text ("" without arguments).
func (r ToolRequest) CompactArguments() string {
	var b bytes.Buffer
	if json.Compact(&b, r.Arguments) != nil {
		return string(r.Arguments)
	}
	return b.String()
}

// ToolResponse is what CallTool returns and what a tool plug-in's call outputs. IsError marks
// an output that describes a failure the caller (an LLM, typically) should see.
type ToolResponse struct {
	Output  string `json:"output"`
	IsError bool   `json:"is_error"`
}

// Descriptor describes an llm, tool or agent the app gave to an agent, so that an agent never
// hard-codes a name.
type Descriptor struct {
	Name        string          `json:"name"`
	Description string          `json:"description"`
	InputSchema json.RawMessage `json:"input_schema,omitempty"`
}

// AgentRequest is what an agent plug-in's call receives.
type AgentRequest struct {
	Input   string       `json:"input"`
	Session string       `json:"session,omitempty"`
	LLMs    []Descriptor `json:"llms,omitempty"`
	Tools   []Descriptor `json:"tools,omitempty"`
	Agents  []Descriptor `json:"agents,omitempty"`
}

// AgentResponse is what CallAgent returns and what an agent plug-in's call outputs.
type AgentResponse struct {
	Output       string `json:"output"`
	FinishReason string `json:"finish_reason"`
}

// HTTPRequest is an http_fetch request; Method defaults to GET on the host.
type HTTPRequest struct {
	Method  string            `json:"method,omitempty"`
	URL     string            `json:"url"`
	Headers map[string]string `json:"headers,omitempty"`
	Body    string            `json:"body,omitempty"`
}

// HTTPResponse is an http_fetch response. Secret values are redacted from it by the host.
type HTTPResponse struct {
	Status  int               `json:"status"`
	Headers map[string]string `json:"headers"`
	Body    string            `json:"body"`
}

// Event types of Emit.
const (
	EventChunk    = "chunk"
	EventProgress = "progress"
	EventLog      = "log"
)

// Event is an emit request. Text belongs to chunks, Message/Level to logs, Message/Done/Total
// to progress; MarshalJSON keeps the field each type requires even when it is empty.
type Event struct {
	Type    string `json:"type"`
	Text    string `json:"text,omitempty"`
	Message string `json:"message,omitempty"`
	Level   string `json:"level,omitempty"`
	Done    *int   `json:"done,omitempty"`
	Total   *int   `json:"total,omitempty"`
}

// MarshalJSON writes the required "text" of a chunk and "message" of a log even when empty,
// which the omitempty tags alone would drop.
func (e Event) MarshalJSON() ([]byte, error) {
	type plain Event // no methods: avoids recursing into MarshalJSON
	switch e.Type {
	case EventChunk:
		return json.Marshal(struct {
			plain
			Text string `json:"text"`
		}{plain(e), e.Text})
	case EventLog:
		return json.Marshal(struct {
			plain
			Message string `json:"message"`
		}{plain(e), e.Message})
	}
	return json.Marshal(plain(e))
}
