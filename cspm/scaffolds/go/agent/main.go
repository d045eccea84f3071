// {{name}}: a Chainsocket agent that hands its input to the first tool the app gave it and answers
// with what the tool said. A real agent would ask an LLM (sdk.CallLLM) which tool to call, and how.
package main

import (
	"errors"

	"chainsocket.dev/sdk"
)

// call is the export the host runs: sdk.RunJSON decodes the input into an AgentRequest (the input
// text, the session, and descriptors of the llms, tools and agents the app gave this agent) and
// encodes the AgentResponse as the output.
//
//go:wasmexport call
func call() int32 {
	return sdk.RunJSON(func(req sdk.AgentRequest) (sdk.AgentResponse, error) {
		// Tools come from app.yaml, by name: an agent never hard-codes one.
		if len(req.Tools) == 0 {
			return answerError("this agent has no tool: list one under its `tools:` in app.yaml"), nil
		}
		tool := req.Tools[0].Name
		resp, err := sdk.CallTool(tool, req.Input)
		if err != nil {
			// The host refused the call or the tool crashed: a *sdk.HostError with a code
			// (sdk.CodeNotDeclared, sdk.CodeCalleeFailed, ...) and a message. Report it as the
			// answer rather than failing the whole run.
			msg := err.Error()
			var herr *sdk.HostError
			if errors.As(err, &herr) {
				msg = herr.Message
			}
			return answerError(tool + " failed: " + msg), nil
		}
		if resp.IsError { // the tool ran and says what went wrong
			return answerError(tool + " failed: " + resp.Output), nil
		}
		return sdk.AgentResponse{Output: tool + " says: " + resp.Output, FinishReason: sdk.AgentFinishFinalAnswer}, nil
	})
}

func answerError(msg string) sdk.AgentResponse {
	return sdk.AgentResponse{Output: msg, FinishReason: sdk.AgentFinishError}
}

func main() {} // required by Go, never run: a reactor module only runs package init
