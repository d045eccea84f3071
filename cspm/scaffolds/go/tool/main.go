// {{name}}: a Chainsocket tool that counts the words of a text.
//
// An agent (or `cspm call . --args '{"text": "..."}'`) sends structured arguments, which the host
// checks against the input_schema of plugin.yaml before this code runs; a person (or `cspm call .
// --input "..."`) sends plain text. The answer is "<N> <unit>", unit from the app's config.
package main

import (
	"encoding/json"
	"fmt"
	"strings"

	"chainsocket.dev/sdk"
)

// args is the tool's input_schema as a Go type.
type args struct {
	Text string `json:"text"`
}

// call is the export the host runs: sdk.RunJSON decodes the input into a ToolRequest, encodes the
// ToolResponse as the output, and turns a returned error (or a panic) into a failed call.
//
//go:wasmexport call
func call() int32 {
	return sdk.RunJSON(func(req sdk.ToolRequest) (sdk.ToolResponse, error) {
		text := req.Input       // {"input": "..."}
		if req.HasArguments() { // {"arguments": {"text": "..."}}
			var a args
			if err := json.Unmarshal(req.Arguments, &a); err != nil {
				// The caller's mistake, not a crash: answer it (an LLM can read it and retry).
				return sdk.ToolResponse{Output: "bad arguments: " + err.Error(), IsError: true}, nil
			}
			text = a.Text
		}
		unit, ok := sdk.Config("unit") // plugin.yaml declares it; the app sets it
		if !ok {
			unit = "words"
		}
		return sdk.ToolResponse{Output: fmt.Sprintf("%d %s", len(strings.Fields(text)), unit)}, nil
	})
}

func main() {} // required by Go, never run: a reactor module only runs package init
