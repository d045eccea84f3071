// chainsocket/kb: answers questions about named entities from a knowledge file (JSON or JSON
// Lines) that the app grants read-only through `paths`. "When was Ada Lovelace born?" ->
// "Ada Lovelace — born: 1815".
package main

import (
	"encoding/json"
	"errors"
	"fmt"
	"strconv"
	"strings"

	"chainsocket.dev/sdk"
)

const defaultMaxBytes = 16 << 20

// main is never run: a reactor module only initialises its packages.
func main() {}

// loaded is the knowledge file of this instance, read on the first call and kept: the file is
// read-only to the plug-in, and reparsing megabytes per question would dominate every call.
var (
	loaded     *Knowledge
	loadedWith Options
)

//go:wasmexport call
func call() int32 {
	return sdk.RunJSON(lookup)
}

func options() (Options, error) {
	opts := Options{NameField: "name", Format: "auto", MaxBytes: defaultMaxBytes}
	file, ok := sdk.Config("file")
	if !ok || strings.TrimSpace(file) == "" {
		return opts, &loadError{"config `file` is not set: name the knowledge file inside the plug-in, " +
			"e.g. `config: {file: /kb/people.json}` with `grant: {paths: {./data: /kb}}`"}
	}
	opts.File = strings.TrimSpace(file)
	if v, ok := sdk.Config("name_field"); ok && strings.TrimSpace(v) != "" {
		opts.NameField = strings.TrimSpace(v)
	}
	if v, ok := sdk.Config("format"); ok && strings.TrimSpace(v) != "" {
		opts.Format = strings.ToLower(strings.TrimSpace(v))
		if opts.Format != "auto" && opts.Format != "json" && opts.Format != "jsonl" {
			return opts, &loadError{fmt.Sprintf("config `format` is %q; use auto, json or jsonl", v)}
		}
	}
	if v, ok := sdk.Config("max_bytes"); ok && strings.TrimSpace(v) != "" {
		n, err := strconv.ParseInt(strings.TrimSpace(v), 10, 64)
		if err != nil || n < 1 {
			return opts, &loadError{fmt.Sprintf("config `max_bytes` is %q; it must be a positive number of bytes", v)}
		}
		opts.MaxBytes = n
	}
	return opts, nil
}

func knowledge() (*Knowledge, error) {
	opts, err := options()
	if err != nil {
		return nil, err
	}
	if loaded != nil && loadedWith == opts {
		return loaded, nil
	}
	k, err := Load(opts)
	if err != nil {
		return nil, err // not cached: a fixed file is picked up by the next call
	}
	if k.Skipped > 0 {
		sdk.LogWarn(fmt.Sprintf("%s: %d records without a %q string were skipped", opts.File, k.Skipped, opts.NameField))
	}
	loaded, loadedWith = k, opts
	return k, nil
}

func question(req sdk.ToolRequest) string {
	if !req.HasArguments() {
		return strings.TrimSpace(req.Input)
	}
	var args struct {
		Query string `json:"query"`
		Input string `json:"input"`
	}
	_ = json.Unmarshal(req.Arguments, &args)
	if args.Query == "" {
		args.Query = args.Input
	}
	return strings.TrimSpace(args.Query)
}

func lookup(req sdk.ToolRequest) (sdk.ToolResponse, error) {
	q := question(req)
	if q == "" {
		return sdk.ToolResponse{Output: `empty query: send {"input": "Ada Lovelace birth year"} or {"arguments": {"query": "..."}}`, IsError: true}, nil
	}
	k, err := knowledge()
	if err != nil {
		var le *loadError
		if errors.As(err, &le) {
			return sdk.ToolResponse{Output: le.msg, IsError: true}, nil
		}
		return sdk.ToolResponse{}, err
	}
	return sdk.ToolResponse{Output: Answer(k, q)}, nil
}

// Answer is the text for question q. A question about no known entity is answered, not failed:
// "No entry found" is a fact about the knowledge the agent can act on (rephrase, search
// elsewhere), like a search that returns nothing; is_error is kept for what the app must fix.
func Answer(k *Knowledge, q string) string {
	qw := words(q)
	matches := FindEntities(k, qw)
	if len(matches) == 0 {
		out := fmt.Sprintf("No entry found for %q", q)
		if close := Suggest(k, qw); len(close) > 0 {
			out += "; close names: " + strings.Join(close, ", ")
		}
		return out
	}
	lines := make([]string, 0, len(matches))
	for i, m := range matches {
		if i == 5 {
			lines = append(lines, fmt.Sprintf("(%d more entries share this name)", len(matches)-5))
			break
		}
		rest := append([]string{}, qw...)
		for j := m.Start; j < m.Start+m.Len; j++ {
			rest[j] = gap
		}
		lines = append(lines, describe(m.Record, FindFields(k, m.Record, rest)))
	}
	if longer := longerNearMisses(k, qw, matches); len(longer) > 0 {
		// "Ada Lovelase" matched the record "Ada": say that a longer name was probably meant.
		lines = append(lines, "(close names that did not match exactly: "+strings.Join(longer, ", ")+")")
	}
	return strings.Join(lines, "\n")
}

// longerNearMisses are close names longer than the matched one, which a typo may have hidden.
func longerNearMisses(k *Knowledge, q []string, matches []EntityMatch) []string {
	var out []string
	for _, name := range Suggest(k, q) {
		if len(strings.Join(words(name), "")) <= matches[0].Score {
			continue
		}
		matched := false
		for _, m := range matches {
			matched = matched || m.Record.Name == name
		}
		if !matched {
			out = append(out, name)
		}
	}
	return out
}

// describe renders the asked fields of rec, or all its facts when none was asked.
func describe(rec *Record, fields []string) string {
	if len(fields) == 0 {
		head := rec.Name
		if len(rec.Aliases) > 0 {
			head += " (also: " + strings.Join(rec.Aliases, ", ") + ")"
		}
		if len(rec.Facts) == 0 {
			return head + " — no facts recorded"
		}
		parts := make([]string, len(rec.Facts))
		for i, f := range rec.Facts {
			parts[i] = f.Field + ": " + f.Value
		}
		return head + " — " + strings.Join(parts, "; ")
	}
	var parts, missing []string
	for _, field := range fields {
		if v, ok := factOf(rec, field); ok {
			parts = append(parts, field+": "+v)
		} else {
			missing = append(missing, field)
		}
	}
	if len(missing) > 0 {
		known := make([]string, len(rec.Facts))
		for i, f := range rec.Facts {
			known[i] = f.Field
		}
		parts = append(parts, fmt.Sprintf("%s not recorded (known: %s)", strings.Join(missing, ", "), strings.Join(known, ", ")))
	}
	return rec.Name + " — " + strings.Join(parts, "; ")
}

func factOf(rec *Record, field string) (string, bool) {
	for _, f := range rec.Facts {
		if f.Field == field {
			return f.Value, true
		}
	}
	return "", false
}
