package main

// Reading the knowledge file: JSON (a list of records, or {"entries": [...], "fields": {...}})
// or JSON Lines, through WASI from a folder the app granted. Errors name the file and the line,
// because the person who fixes them edits that file.

import (
	"bytes"
	"encoding/json"
	"errors"
	"fmt"
	"io"
	"io/fs"
	"os"
	"strings"
	"syscall"
)

// Fact is one field of a record, in file order.
type Fact struct {
	Field string
	Value string
}

// Record is one entity: its display name, aliases, and facts.
type Record struct {
	Name    string
	Aliases []string
	Facts   []Fact
}

// Knowledge is a loaded file: its records and the field synonyms of the {"entries"} form.
type Knowledge struct {
	Records  []Record
	Synonyms map[string][]string // field -> phrases that mean it ("birth year", "when was … born")
	Skipped  int                 // records without a name, left out (logged)
}

// Options are the config keys that decide how a file is read.
type Options struct {
	File      string
	NameField string
	Format    string // auto | json | jsonl
	MaxBytes  int64
}

// loadError is a knowledge-file problem the app's author must fix; it becomes an is_error answer.
type loadError struct{ msg string }

func (e *loadError) Error() string { return e.msg }

func failf(format string, args ...any) error { return &loadError{fmt.Sprintf(format, args...)} }

// Load reads and parses the file named by opts.
func Load(opts Options) (*Knowledge, error) {
	data, err := readBounded(opts.File, opts.MaxBytes)
	if err != nil {
		return nil, err
	}
	format := opts.Format
	if format == "" || format == "auto" {
		format = sniff(opts.File, data)
	}
	if format == "jsonl" {
		return parseLines(opts, data)
	}
	return parseDocument(opts, data)
}

func grantHint(file string) string {
	dir := file
	if i := strings.LastIndex(file, "/"); i > 0 {
		dir = file[:i]
	}
	return fmt.Sprintf("the app must grant the folder that holds it, read-only, e.g. `grant: {paths: {./data: %s}}`, "+
		"and config `file` must be the path inside the plug-in (%s/…)", dir, dir)
}

func readBounded(file string, max int64) ([]byte, error) {
	f, err := os.Open(file)
	if err != nil {
		if errors.Is(err, fs.ErrNotExist) {
			return nil, failf("knowledge file %s does not exist in the plug-in's sandbox: %s", file, grantHint(file))
		}
		if errors.Is(err, syscall.EBADF) || errors.Is(err, syscall.ENOTCAPABLE) {
			// WASI resolves a path only inside a preopened (granted) folder.
			return nil, failf("knowledge file %s is outside every folder granted to the plug-in: %s", file, grantHint(file))
		}
		return nil, failf("cannot open knowledge file %s (%v): %s", file, unwrap(err), grantHint(file))
	}
	defer f.Close()
	if info, err := f.Stat(); err == nil {
		if info.IsDir() {
			return nil, failf("knowledge file %s is a folder; config `file` must name a .json or .jsonl file in it", file)
		}
		if info.Size() > max {
			return nil, failf("knowledge file %s is %d bytes, over the limit of %d (config max_bytes)", file, info.Size(), max)
		}
	}
	data, err := io.ReadAll(io.LimitReader(f, max+1))
	if err != nil {
		return nil, failf("cannot read knowledge file %s: %v", file, unwrap(err))
	}
	if int64(len(data)) > max {
		return nil, failf("knowledge file %s is over the limit of %d bytes (config max_bytes)", file, max)
	}
	return data, nil
}

// unwrap drops the "open /path:" prefix of a PathError, which the message already names.
func unwrap(err error) error {
	var pe *fs.PathError
	if errors.As(err, &pe) {
		return pe.Err
	}
	return err
}

// sniff picks JSON Lines for .jsonl/.ndjson, JSON for .json, else by content: several lines that
// each start with "{" and the whole not being one JSON value.
func sniff(file string, data []byte) string {
	lower := strings.ToLower(file)
	switch {
	case strings.HasSuffix(lower, ".jsonl"), strings.HasSuffix(lower, ".ndjson"):
		return "jsonl"
	case strings.HasSuffix(lower, ".json"):
		return "json"
	}
	if !json.Valid(data) && bytes.HasPrefix(bytes.TrimSpace(data), []byte("{")) {
		return "jsonl"
	}
	return "json"
}

// position turns a byte offset into "line L, column C" (1-based) for error messages.
func position(data []byte, offset int64) string {
	if offset > int64(len(data)) {
		offset = int64(len(data))
	}
	before := data[:offset]
	line := bytes.Count(before, []byte("\n")) + 1
	col := int(offset) - (bytes.LastIndexByte(before, '\n') + 1)
	if col < 1 {
		col = 1
	}
	return fmt.Sprintf("line %d, column %d (byte %d)", line, col, offset)
}

func jsonError(file string, data []byte, base int64, err error) error {
	var syn *json.SyntaxError
	if errors.As(err, &syn) {
		return failf("knowledge file %s is not valid JSON at %s: %s", file, position(data, base+syn.Offset), syn.Error())
	}
	var typ *json.UnmarshalTypeError
	if errors.As(err, &typ) {
		return failf("knowledge file %s: unexpected %s at %s", file, typ.Value, position(data, base+typ.Offset))
	}
	return failf("knowledge file %s is not valid JSON: %v", file, err)
}

func parseDocument(opts Options, data []byte) (*Knowledge, error) {
	var top json.RawMessage
	if err := json.Unmarshal(data, &top); err != nil {
		return nil, jsonError(opts.File, data, 0, err)
	}
	k := &Knowledge{Synonyms: map[string][]string{}}
	var items []json.RawMessage
	switch trimmed := bytes.TrimSpace(top); {
	case bytes.HasPrefix(trimmed, []byte("[")):
		if err := json.Unmarshal(top, &items); err != nil {
			return nil, jsonError(opts.File, data, 0, err)
		}
	case bytes.HasPrefix(trimmed, []byte("{")):
		var doc struct {
			Entries *[]json.RawMessage         `json:"entries"`
			Fields  map[string]json.RawMessage `json:"fields"`
		}
		if err := json.Unmarshal(top, &doc); err != nil {
			return nil, jsonError(opts.File, data, 0, err)
		}
		if doc.Entries == nil {
			return nil, failf(`knowledge file %s: an object at the top must have "entries": [...] (or use a list of records)`, opts.File)
		}
		items = *doc.Entries
		for field, raw := range doc.Fields {
			phrases, err := stringList(raw)
			if err != nil {
				return nil, failf(`knowledge file %s: "fields"."%s" must be a list of phrases`, opts.File, field)
			}
			k.Synonyms[field] = phrases
		}
	default:
		return nil, failf("knowledge file %s must hold a list of records or {\"entries\": [...]}", opts.File)
	}
	for i, raw := range items {
		rec, ok, err := parseRecord(raw, opts.NameField)
		if err != nil {
			return nil, failf("knowledge file %s, record %d: %v", opts.File, i+1, err)
		}
		k.add(rec, ok)
	}
	return k, nil
}

func parseLines(opts Options, data []byte) (*Knowledge, error) {
	k := &Knowledge{Synonyms: map[string][]string{}}
	var offset int64
	for n, line := range bytes.Split(data, []byte("\n")) {
		start := offset
		offset += int64(len(line)) + 1
		if len(bytes.TrimSpace(line)) == 0 {
			continue
		}
		var probe json.RawMessage
		if err := json.Unmarshal(line, &probe); err != nil {
			var syn *json.SyntaxError
			if errors.As(err, &syn) {
				return nil, failf("knowledge file %s is not valid JSON Lines at line %d (byte %d): %s",
					opts.File, n+1, start+syn.Offset, syn.Error())
			}
			return nil, failf("knowledge file %s, line %d: %v", opts.File, n+1, err)
		}
		rec, ok, err := parseRecord(probe, opts.NameField)
		if err != nil {
			return nil, failf("knowledge file %s, line %d: %v", opts.File, n+1, err)
		}
		k.add(rec, ok)
	}
	return k, nil
}

func (k *Knowledge) add(rec Record, named bool) {
	if named {
		k.Records = append(k.Records, rec)
	} else {
		k.Skipped++
	}
}

// parseRecord reads one object, keeping its key order; ok is false when it has no name.
func parseRecord(raw json.RawMessage, nameField string) (Record, bool, error) {
	dec := json.NewDecoder(bytes.NewReader(raw))
	dec.UseNumber()
	if tok, err := dec.Token(); err != nil || tok != json.Delim('{') {
		return Record{}, false, errors.New("a record must be a JSON object")
	}
	var rec Record
	named := false
	for dec.More() {
		tok, err := dec.Token()
		if err != nil {
			return Record{}, false, err
		}
		key, _ := tok.(string)
		var value json.RawMessage
		if err := dec.Decode(&value); err != nil {
			return Record{}, false, err
		}
		switch key {
		case nameField:
			var name string
			if json.Unmarshal(value, &name) == nil && strings.TrimSpace(name) != "" {
				rec.Name, named = strings.TrimSpace(name), true
			}
		case "aliases":
			aliases, err := stringList(value)
			if err != nil {
				return Record{}, false, errors.New(`"aliases" must be a list of names`)
			}
			rec.Aliases = aliases
		default:
			if text := valueText(value); text != "" {
				rec.Facts = append(rec.Facts, Fact{key, text})
			}
		}
	}
	return rec, named, nil
}

// stringList accepts a list of strings or a single string.
func stringList(raw json.RawMessage) ([]string, error) {
	var one string
	if json.Unmarshal(raw, &one) == nil {
		return []string{one}, nil
	}
	var list []string
	err := json.Unmarshal(raw, &list)
	return list, err
}

// valueText renders a fact's value: strings as they are, numbers as written, lists joined with
// ", ", objects as compact JSON; null is no fact.
func valueText(raw json.RawMessage) string {
	trimmed := bytes.TrimSpace(raw)
	if len(trimmed) == 0 || string(trimmed) == "null" {
		return ""
	}
	switch trimmed[0] {
	case '"':
		var s string
		_ = json.Unmarshal(trimmed, &s)
		return strings.TrimSpace(s)
	case '[':
		var items []json.RawMessage
		if json.Unmarshal(trimmed, &items) == nil {
			parts := make([]string, 0, len(items))
			for _, item := range items {
				if t := valueText(item); t != "" {
					parts = append(parts, t)
				}
			}
			return strings.Join(parts, ", ")
		}
	}
	var b bytes.Buffer
	if json.Compact(&b, trimmed) == nil {
		return b.String()
	}
	return string(trimmed)
}
