// {{name}}: an offline stand-in LLM. It answers with the last user message after a prefix, which is
// enough to build and test an app before a real model (or a REST API) takes its place.
package main

import (
	"strings"

	"chainsocket.dev/sdk"
)

// call is the export the host runs: sdk.RunJSON decodes the input into an LLMRequest (messages,
// stop, max_tokens, ...), encodes the LLMResponse as the output, and turns a returned error (or a
// panic) into a failed call.
//
//go:wasmexport call
func call() int32 {
	return sdk.RunJSON(func(req sdk.LLMRequest) (sdk.LLMResponse, error) {
		prefix, ok := sdk.Config("prefix") // plugin.yaml declares it; the app sets it
		if !ok {
			prefix = "You said: "
		}
		last, inputTokens := "", 0
		for _, m := range req.Messages {
			inputTokens += len(strings.Fields(m.Content)) // a "token" here is a word
			if m.Role == sdk.RoleUser {
				last = m.Content
			}
		}
		content := prefix + last
		return sdk.LLMResponse{
			Content:      content,
			FinishReason: sdk.FinishStop,
			Usage:        sdk.Usage{InputTokens: inputTokens, OutputTokens: len(strings.Fields(content))},
		}, nil
	})
}

func main() {} // required by Go, never run: a reactor module only runs package init
